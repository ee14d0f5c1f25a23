"""After quiescence: holds the mesh to the journal, reading it over gRPC only (as any caller could).

Each count must be zero. What "expected" means, at rest:
- every order the mesh answered for exists, and each placement request id gave at most one order;
- no order is PENDING;
- stock: reserved = the quantities of CONFIRMED (unshipped) orders, on hand = opening stock - shipped,
  reserved never above on hand;
- finance: one invoice per order that reached CONFIRMED (confirmed, shipped, completed; a cancelled one
  may have one, credited in full); none for rejected orders; a payment applied at most once;
- crm: each customer's exposure = what is still due on its invoices that are not credited;
- the trial balance balances; no (event, channel, recipient) was notified twice;
- each delivery that ended (sent, or given up) is one step on its order's timeline: notification's
  DeliveriesSettled reached orders through the faults, once;
- no message waits in a dead-letter queue.
"""
from __future__ import annotations

import collections
import time
from collections.abc import Callable
from decimal import Decimal

from chaos.workload import SCARCE_SKU, SCARCE_STOCK, SKUS, STOCK, WAREHOUSE, Journal
from erp.common.v1 import paging_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.notification.v1 import notification_pb2 as notif
from erp.orders.v1 import orders_pb2 as ord_pb
from erp_client import ErpClient

CHECKS = ("orders lost", "orders duplicated", "orders stuck", "units oversold", "stock drift",
          "reservations held by closed orders", "reservations missing", "invoices missing", "invoices extra",
          "credit notes missing", "credit notes extra", "payments doubled", "crm exposure drift",
          "trial balance imbalance", "duplicate notifications", "notifications failed", "notification steps missing",
          "notification steps extra", "dead letters")
HOLDS_STOCK = {ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_INVOICED}
INVOICED = {ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_SHIPPED,
            ord_pb.ORDER_STATUS_COMPLETED}
SHIPPED = {ord_pb.ORDER_STATUS_SHIPPED, ord_pb.ORDER_STATUS_COMPLETED}
NOTIFICATION_STEPS = {ord_pb.TIMELINE_STEP_KIND_NOTIFIED, ord_pb.TIMELINE_STEP_KIND_NOTIFICATION_FAILED}
# The mesh is quiet once stock and books stop moving; a delivery that ended just before still has its
# DeliveriesSettled on the way to orders, so the timelines get this long to catch up.
TIMELINE_CATCH_UP_SECONDS = 30.0


def _all_orders(client: ErpClient, customer: str) -> list[ord_pb.Order]:
    orders, token = [], ""
    while True:
        page = client.list_orders(customer, page_size=200, page_token=token)
        orders += page.orders
        token = page.next_page_token
        if not token:
            return orders


def _all_deliveries(client: ErpClient, customer: str) -> list:
    deliveries, token = [], ""
    while True:
        page = client.notification.ListDeliveries(notif.ListDeliveriesRequest(
            customer_id=customer, page=paging_pb2.PageRequest(page_size=200, page_token=token)), timeout=30)
        deliveries += page.deliveries
        token = page.next_page_token
        if not token:
            return deliveries


def audit(client: ErpClient, journal: Journal, customer_ids: list[str],
          dead_letters: Callable[[], int]) -> dict[str, int]:
    found = dict.fromkeys(CHECKS, 0)
    answered = {rid: p for rid, p in journal.placed.items() if "order_id" in p}
    orders: dict[str, ord_pb.Order] = {}
    for customer in sorted({p["customer"] for p in journal.placed.values()} | set(customer_ids)):
        listed = _all_orders(client, customer)
        attempted = sum(1 for p in journal.placed.values() if p["customer"] == customer)
        found["orders duplicated"] += max(0, len(listed) - attempted)
        orders.update({o.order_id: o for o in listed})
    found["orders lost"] = sum(1 for p in answered.values() if p["order_id"] not in orders)
    found["orders stuck"] = sum(1 for o in orders.values() if o.status == ord_pb.ORDER_STATUS_PENDING)

    _audit_stock(client, orders, found)
    invoices = _audit_invoices(client, orders, found)
    _audit_payments(journal, invoices, found)
    _audit_exposure(client, customer_ids, invoices, found)
    balance = client.trial_balance("EUR")
    found["trial balance imbalance"] = int(Decimal(balance.total_debit.amount or "0")
                                           != Decimal(balance.total_credit.amount or "0"))
    for customer in customer_ids:
        deliveries = _all_deliveries(client, customer)
        seen = collections.Counter((d.event_id, d.channel, d.recipient) for d in deliveries)
        found["duplicate notifications"] += sum(n - 1 for n in seen.values() if n > 1)
        # The relay always comes back: an email given up means attempts were spent on its outage.
        found["notifications failed"] += sum(d.status == notif.DELIVERY_STATUS_FAILED for d in deliveries)
    _audit_notification_steps(client, orders, customer_ids, found)
    found["dead letters"] = dead_letters()
    return found


def _audit_notification_steps(client: ErpClient, orders: dict[str, ord_pb.Order], customer_ids: list[str],
                              found: dict) -> None:
    """Per customer, the deliveries that ended against the notification steps on its orders' timelines
    (every delivery to a customer is about one of its orders); waits for late steps, not for extra ones."""
    deadline = time.monotonic() + TIMELINE_CATCH_UP_SECONDS
    while True:
        ended = collections.Counter({customer: sum(d.status != notif.DELIVERY_STATUS_PENDING
                                                   for d in _all_deliveries(client, customer))
                                     for customer in customer_ids})
        steps: collections.Counter[str] = collections.Counter()
        for o in orders.values():
            steps[o.customer_id] += sum(s.kind in NOTIFICATION_STEPS for s in client.order_timeline(o.order_id).steps)
        missing = sum(max(0, ended[c] - steps[c]) for c in customer_ids)
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    found["notification steps missing"] = missing
    found["notification steps extra"] = sum(max(0, steps[c] - ended[c]) for c in customer_ids)


def _audit_stock(client: ErpClient, orders: dict[str, ord_pb.Order], found: dict) -> None:
    reserved, shipped = collections.Counter(), collections.Counter()
    for o in orders.values():
        for line in o.lines:
            if o.status in HOLDS_STOCK:
                reserved[line.sku] += line.quantity
            elif o.status in SHIPPED:
                shipped[line.sku] += line.quantity
    levels = client.batch_get_stock([(sku, WAREHOUSE) for sku in [*SKUS, SCARCE_SKU]])
    for level in levels.stocks:
        opening = SCARCE_STOCK if level.sku == SCARCE_SKU else STOCK
        found["units oversold"] += max(0, level.reserved - level.on_hand) + max(0, -level.on_hand)
        found["stock drift"] += abs(level.on_hand - (opening - shipped[level.sku]))
        found["reservations held by closed orders"] += max(0, level.reserved - reserved[level.sku])
        found["reservations missing"] += max(0, reserved[level.sku] - level.reserved)


def _audit_invoices(client: ErpClient, orders: dict[str, ord_pb.Order], found: dict) -> dict[str, fin.Invoice]:
    invoices: dict[str, fin.Invoice] = {}
    for o in orders.values():
        mine = client.invoices_for_order(o.order_id)
        invoices.update({i.invoice_id: i for i in mine})
        credited = [i for i in mine if i.status == fin.INVOICE_STATUS_CREDITED]
        if o.status in INVOICED:
            found["invoices missing"] += int(not mine)
            found["invoices extra"] += max(0, len(mine) - 1)
            found["credit notes extra"] += len(credited)
        elif o.status == ord_pb.ORDER_STATUS_CANCELLED:
            found["invoices extra"] += max(0, len(mine) - 1)
            found["credit notes missing"] += len(mine) - len(credited)
        else:  # rejected (or pending, counted as stuck)
            found["invoices extra"] += len(mine)
    return invoices


def _audit_payments(journal: Journal, invoices: dict[str, fin.Invoice], found: dict) -> None:
    sent = collections.defaultdict(Decimal)
    for p in journal.payments.values():
        sent[p["invoice_id"]] += Decimal(p["amount"])
    for invoice_id, amount in sent.items():
        invoice = invoices.get(invoice_id)
        if invoice is not None and Decimal(invoice.amount_paid.amount or "0") > amount:
            found["payments doubled"] += 1


def _audit_exposure(client: ErpClient, customer_ids: list[str], invoices: dict[str, fin.Invoice],
                    found: dict) -> None:
    due = collections.defaultdict(Decimal)
    for i in invoices.values():
        if i.status != fin.INVOICE_STATUS_CREDITED:
            due[i.customer_id] += Decimal(i.amount_due.amount or "0")
    for customer in customer_ids:
        exposure = client.get_customer(customer).exposure
        found["crm exposure drift"] += int(Decimal(exposure.total.amount or "0") != due[customer])
