"""CRM's exposure against its sources (mesh/reconcile.py runs it): the open orders it counts
against the orders (orders' API), the unpaid invoices against finance's invoices (its API).

- an order crm still counts as open though it was rejected or cancelled is closed, as its lost
  OrderRejected / OrderCancelled would have closed it (the same handler, under the customer's
  lock); the credit it held is free again;
- reported only: an open order that was invoiced (crm missed the InvoiceIssued), an open order
  orders does not know, a confirmed order crm does not count, and an invoice whose amount due
  differs from finance's (or that one side lacks).

Orders still PENDING are left alone: their credit check is in flight (or the deadline drives it).
The per-order exposure has no RPC (GetCustomer gives totals): it is read from crm's own schema.
"""
from __future__ import annotations

from decimal import Decimal

from erp.orders.v1 import orders_pb2 as ord_pb
from mesh import money, protoconv
from mesh.reconcile import Check, Finding, Owner, Sources
from services.crm import handlers
from services.crm.domain import ClosedBy

S = ord_pb.OrderStatus
CLOSING = {S.ORDER_STATUS_REJECTED: ClosedBy.REJECTED, S.ORDER_STATUS_CANCELLED: ClosedBy.CANCELLED}
COUNTED = {S.ORDER_STATUS_CONFIRMED, S.ORDER_STATUS_SHIPPED}  # approved; open in crm until invoiced
CHECK = "crm.exposure"


def exposure(sources: Sources) -> list[Finding]:
    owner = sources.owner("crm")
    counted = {row.order_id: row for row in owner.rows(
        "SELECT order_id, customer_id, currency_code, amount, closed_by FROM open_orders")}
    due = {row.invoice_id: row for row in owner.rows(
        "SELECT invoice_id, customer_id, order_id, currency_code, amount_due FROM unpaid_invoices")}
    orders = sources.orders()  # the sources after the projection: nothing crm counts is newer
    findings = [f for row in counted.values() if row.closed_by is None and row.amount is not None
                for f in [_open(owner, row, orders.get(row.order_id))] if f is not None]
    for order in orders.values():
        if order.status in COUNTED and not order.invoice_id and order.order_id not in counted:
            findings.append(Finding(CHECK, "confirmed order crm does not count", f"order {order.order_id}",
                                    f"customer {order.customer_id}, {protoconv.money_text(order.total)}; "
                                    f"order is {S.Name(order.status).removeprefix('ORDER_STATUS_')}"))
    findings += _invoices(due, sources.invoices())
    return findings


def _open(owner: Owner, row, order) -> Finding | None:
    key, held = f"order {row.order_id}", f"customer {row.customer_id} counts {money.format_amount(row.amount)} " \
                                         f"{row.currency_code} open"
    if order is None:
        return Finding(CHECK, "open order orders does not know", key, held)
    if order.status in CLOSING:
        closed_by = CLOSING[order.status]
        return Finding(CHECK, "open order that was closed", key, f"{held}; order is {closed_by}",
                       lambda: _close(owner, row.order_id, row.customer_id, closed_by))
    if order.invoice_id:
        return Finding(CHECK, "open order that was invoiced", key,
                       f"{held}; order has invoice {order.invoice_id} (crm missed its InvoiceIssued)")
    return None


def _close(owner: Owner, order_id: str, customer_id: str, closed_by: ClosedBy) -> str:
    with owner.uow() as uow:
        uow.lock("customer", customer_id)
        handlers.order_closed(uow, order_id, customer_id, closed_by)
        uow.commit()
    return f"closed as {closed_by}, as its Order{str(closed_by).capitalize()} does: the credit is free again"


def _invoices(due: dict, invoices: list) -> list[Finding]:
    findings, seen = [], set()
    for invoice in invoices:
        seen.add(invoice.invoice_id)
        finance_due = protoconv.amount_of(invoice.amount_due)
        row = due.get(invoice.invoice_id)
        crm_due = Decimal(row.amount_due) if row is not None else None
        if crm_due is None and finance_due > 0 or crm_due is not None and crm_due != finance_due:
            shown = "no row" if crm_due is None else money.format_amount(crm_due)
            findings.append(Finding(CHECK, "invoice amount due differs from finance's", f"invoice {invoice.invoice_id}",
                                    f"customer {invoice.customer_id}: crm {shown}, finance "
                                    f"{money.format_amount(finance_due)} {invoice.amount_due.currency_code}"))
    for invoice_id, row in due.items():
        if invoice_id not in seen and row.amount_due > 0:
            findings.append(Finding(CHECK, "unpaid invoice finance does not know", f"invoice {invoice_id}",
                                    f"customer {row.customer_id} owes {money.format_amount(row.amount_due)} "
                                    f"{row.currency_code} in crm"))
    return findings


CHECKS = [Check(CHECK, "customers' open orders and unpaid invoices against orders and finance", exposure)]
