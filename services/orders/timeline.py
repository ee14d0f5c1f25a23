"""An order's timeline: every step of one order across the services, and what it still awaits.

Orders keeps it as its own projection (no service reads another's tables): the steps it takes
itself are written in the transaction that takes them, the others come from the events it
consumes. Each step has a key unique within its order, one per business fact, so an event
delivered again, or published again under a new id (inventory and crm answer an order driven
again with their first answer), adds no second step. No I/O here.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Iterable
from decimal import Decimal

from mesh import money
from services.orders.domain import Order, OrderStatus, PaymentStatus

MAX_DETAIL = 1000  # characters of a step's detail kept; reasons can list every refused line
MAX_LINES_SHOWN = 5


class StepKind(enum.StrEnum):
    PLACED = "placed"
    STOCK_RESERVED = "stock_reserved"
    STOCK_REFUSED = "stock_refused"
    CREDIT_APPROVED = "credit_approved"
    CREDIT_REJECTED = "credit_rejected"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    DRIVEN_AGAIN = "driven_again"
    INVOICED = "invoiced"
    NOTIFIED = "notified"
    NOTIFICATION_FAILED = "notification_failed"
    SHIPPED = "shipped"
    STOCK_ISSUED = "stock_issued"
    PAID = "paid"
    CANCELLED = "cancelled"
    STOCK_RELEASED = "stock_released"
    CREDIT_NOTED = "credit_noted"
    COMPLETED = "completed"


@dataclasses.dataclass(frozen=True)
class Step:
    order_id: str
    key: str  # unique within the order: the business fact, whatever event carried it
    kind: StepKind
    service: str
    at: dt.datetime  # by the clock of the service that took the step
    detail: str
    event_id: str = ""  # the event that told orders; empty for orders' own steps
    seq: int = 0  # the order it was recorded in (set when stored): ties at one instant


@dataclasses.dataclass(frozen=True)
class Awaited:
    service: str
    description: str


@dataclasses.dataclass(frozen=True)
class Timeline:
    """One page of an order's steps and what the order awaits now."""

    order: Order
    steps: list[Step]
    awaiting: list[Awaited]
    next_page_token: str


def step(order_id: str, kind: StepKind, service: str, at: dt.datetime, detail: str, *,
         key: str = "", event_id: str = "") -> Step:
    """A step keyed by its kind unless a key is given (steps that happen more than once)."""
    return Step(order_id, key or str(kind), kind, service, at, detail[:MAX_DETAIL], event_id)


# ---------------------------------------------------------------- orders' own steps

# The status an order enters -> the step it is. INVOICED is finance's step (InvoiceIssued).
ENTERED = {
    OrderStatus.CONFIRMED: StepKind.CONFIRMED,
    OrderStatus.REJECTED: StepKind.REJECTED,
    OrderStatus.CANCELLED: StepKind.CANCELLED,
    OrderStatus.SHIPPED: StepKind.SHIPPED,
    OrderStatus.COMPLETED: StepKind.COMPLETED,
}


def placed(order: Order) -> Step:
    units = sum(line.quantity for line in order.lines)
    return step(order.order_id, StepKind.PLACED, "orders", order.created_at,
                f"{len(order.lines)} line(s), {units} unit(s), total {_amount(order, order.total)} before tax")


def entered(order: Order, status: OrderStatus) -> Step:
    """The step of entering a status (any but PENDING and INVOICED)."""
    kind = ENTERED[status]
    return step(order.order_id, kind, "orders", order.updated_at, _entered_detail(order, kind))


def _entered_detail(order: Order, kind: StepKind) -> str:
    if kind is StepKind.CONFIRMED:
        return "stock reserved and credit approved"
    if kind is StepKind.REJECTED:
        return order.rejection_reason
    if kind is StepKind.CANCELLED:
        follows = "; a credit note follows" if order.invoice_id else ""
        return f"{order.cancellation_reason}{follows}"
    if kind is StepKind.SHIPPED:
        return f"{sum(line.quantity for line in order.lines)} unit(s) shipped in full"
    return "shipped and paid in full"


def driven_again(order: Order) -> Step:
    who = " and ".join(order.unanswered) or "the saga"
    return step(order.order_id, StepKind.DRIVEN_AGAIN, "orders", order.driven_at or order.updated_at,
                f"no answer from {who} in time: the order was asked again (drive {order.drives})",
                key=f"drive:{order.drives}")


# ---------------------------------------------------------------- details of other services' steps


def lines_detail(verb: str, lines: Iterable[tuple[str, str, int]]) -> str:
    """'reserved 3 x CHAIR@MAIN, 1 x DESK@MAIN' from (sku, warehouse, quantity)."""
    lines = list(lines)
    shown = [f"{qty} x {sku}@{warehouse}" for sku, warehouse, qty in lines[:MAX_LINES_SHOWN]]
    more = f" and {len(lines) - MAX_LINES_SHOWN} more line(s)" if len(lines) > MAX_LINES_SHOWN else ""
    return f"{verb} {', '.join(shown) or 'nothing'}{more}"


def notification_detail(event_type: str, channel: str, attempts: int, error: str = "") -> str:
    """'order confirmed: email delivered' from erp.events.v1.OrderConfirmed and email."""
    about = _words(event_type.rsplit(".", 1)[-1])
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    if error:
        return f"{about}: {channel} failed{tries}: {error}"
    return f"{about}: {channel} delivered{tries}"


def _words(camel: str) -> str:
    return "".join(f" {c.lower()}" if c.isupper() else c for c in camel).strip()


# ---------------------------------------------------------------- what is still awaited


def awaiting(order: Order, seen: set[StepKind]) -> list[Awaited]:
    """What the order waits for now, from its state and the kinds of steps it has."""
    if order.status is OrderStatus.PENDING:
        return [_ANSWERS[who] for who in order.unanswered]
    if order.status in (OrderStatus.REJECTED, OrderStatus.CANCELLED):
        return _compensations(order, seen)
    found = []
    if not order.invoice_id:
        found.append(Awaited("finance", "the invoice"))
    if order.status in (OrderStatus.CONFIRMED, OrderStatus.INVOICED):
        found.append(Awaited("orders", "shipment (someone marks the order shipped)"))
    if order.invoice_id and order.payment_status is not PaymentStatus.PAID:
        found.append(Awaited("finance", f"payment: {_amount(order, order.invoiced_amount - order.amount_paid)} due"))
    if order.status in (OrderStatus.SHIPPED, OrderStatus.COMPLETED) and StepKind.STOCK_ISSUED not in seen:
        found.append(Awaited("inventory", "the shipped stock issued"))
    return found


# Order.unanswered's names -> what a PENDING order awaits from each.
_ANSWERS = {"inventory (stock)": Awaited("inventory", "stock reservation (reserved or refused)"),
            "crm (credit)": Awaited("crm", "credit decision (approved or rejected)")}


def _compensations(order: Order, seen: set[StepKind]) -> list[Awaited]:
    """A closed order still waits for its reservation's release and its invoice's credit note."""
    found = []
    if StepKind.STOCK_RESERVED in seen and StepKind.STOCK_RELEASED not in seen:
        found.append(Awaited("inventory", "the reservation released"))
    if order.status is OrderStatus.CANCELLED and order.invoice_id and StepKind.CREDIT_NOTED not in seen:
        found.append(Awaited("finance", f"a credit note for invoice {order.invoice_id}"))
    return found


def _amount(order: Order, value: Decimal) -> str:
    return f"{money.format_amount(value)} {order.currency_code}"
