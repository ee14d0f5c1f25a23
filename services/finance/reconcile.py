"""Finance's invoices against the orders they bill (mesh/reconcile.py runs it), both through the
services' APIs (finance's ListInvoices, orders' ListOrders):

- an order that was confirmed (and not cancelled) has exactly one invoice, the one orders
  recorded; a cancelled order's invoice is credited; an order that never was confirmed
  (rejected, or unknown to orders) has none; an invoice's subtotal is its order's lines, each rounded
  as finance rounds them.

Nothing here is repaired: an invoice missing, doubled or extra is money, for a person to look at.
Orders still PENDING are left alone: their saga is in flight.
"""
from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from erp.finance.v1 import finance_pb2 as fin_pb
from erp.orders.v1 import orders_pb2 as ord_pb
from mesh import money, protoconv
from mesh.reconcile import Check, Finding, Sources
from services.finance.ledger.domain import line_amount

S = ord_pb.OrderStatus
BILLED = {S.ORDER_STATUS_CONFIRMED, S.ORDER_STATUS_INVOICED, S.ORDER_STATUS_SHIPPED, S.ORDER_STATUS_COMPLETED}
CHECK = "finance.invoices"


def invoices(sources: Sources) -> list[Finding]:
    by_order: dict[str, list] = defaultdict(list)
    for invoice in sources.invoices():
        by_order[invoice.order_id].append(invoice)
    orders = sources.orders()  # after the invoices: every invoiced order is in it
    findings = []
    for order_id, found in by_order.items():
        findings += _invoiced(order_id, found, orders.get(order_id))
    for order in orders.values():
        if order.status in BILLED and order.order_id not in by_order:
            findings.append(Finding(CHECK, "confirmed order without an invoice", f"order {order.order_id}",
                                    f"order is {_status(order)}, total {protoconv.money_text(order.total)}"
                                    + (f", records invoice {order.invoice_id}" if order.invoice_id else "")))
    return findings


def _invoiced(order_id: str, found: list, order) -> list[Finding]:
    key = f"order {order_id}"
    numbers = ", ".join(f"{i.number} ({i.invoice_id})" for i in found)
    if order is None:
        return [Finding(CHECK, "invoice of an order orders does not know", key, numbers)]
    if order.status == S.ORDER_STATUS_PENDING:
        return []
    if order.status == S.ORDER_STATUS_REJECTED:
        return [Finding(CHECK, "invoice of a rejected order", key, numbers)]
    if order.status == S.ORDER_STATUS_CANCELLED:
        return [Finding(CHECK, "cancelled order's invoice not credited", key, f"{i.number} is {_invoice_status(i)}")
                for i in found if i.status != fin_pb.INVOICE_STATUS_CREDITED]
    if len(found) > 1:
        return [Finding(CHECK, "order invoiced more than once", key, numbers)]
    [invoice] = found
    findings = []
    if order.invoice_id and order.invoice_id != invoice.invoice_id:
        findings.append(Finding(CHECK, "order records another invoice", key,
                                f"order records {order.invoice_id}, finance issued {numbers}"))
    subtotal = sum((line_amount(line.quantity, protoconv.amount_of(line.unit_price)) for line in order.lines),
                   Decimal(0))
    if protoconv.amount_of(invoice.subtotal) != subtotal or invoice.subtotal.currency_code != order.total.currency_code:
        findings.append(Finding(CHECK, "invoice subtotal differs from the order's lines", key,
                                f"{invoice.number} subtotal {protoconv.money_text(invoice.subtotal)}, "
                                "the order's lines rounded "
                                f"{money.format_amount(subtotal)} {order.total.currency_code}"))
    return findings


def _status(order) -> str:
    return S.Name(order.status).removeprefix("ORDER_STATUS_")


def _invoice_status(invoice) -> str:
    return fin_pb.InvoiceStatus.Name(invoice.status).removeprefix("INVOICE_STATUS_")


CHECKS = [Check(CHECK, "invoices against the orders they bill (one per confirmed order)", invoices)]
