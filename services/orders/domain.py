"""Sales orders: what a valid order is, and the state machine as an explicit table."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from decimal import Decimal

from mesh import money
from mesh.errors import FailedPrecondition, Violations
from mesh.settings import Settings

MAX_LINES = 200
MAX_QUANTITY = 10**9


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    COMPLETED = "completed"


# Every allowed move; anything not listed is refused. Terminal states have no entry.
# The status is the furthest milestone reached: finance invoices on confirmation
# (invoice on order), so the usual path is CONFIRMED -> INVOICED -> SHIPPED ->
# COMPLETED; an order shipped before its invoice arrives goes CONFIRMED -> SHIPPED and
# records the invoice without moving back. COMPLETED = shipped and paid in full.
# Fulfilment and payment status are derived from quantities and amounts, not stored.
# An order can be cancelled until it ships.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.INVOICED, OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.INVOICED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.COMPLETED}),
}


class SagaStep(enum.StrEnum):
    """Where one of the parallel checks of a pending order stands."""

    PENDING = "pending"
    OK = "ok"
    FAILED = "failed"


class FulfilmentStatus(enum.StrEnum):
    UNFULFILLED = "unfulfilled"
    PARTLY_SHIPPED = "partly_shipped"
    SHIPPED = "shipped"


class PaymentStatus(enum.StrEnum):
    NOT_INVOICED = "not_invoiced"
    UNPAID = "unpaid"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"


class InvalidTransition(FailedPrecondition):
    pass


@dataclasses.dataclass(frozen=True)
class OrderLine:
    line_no: int
    sku: str
    warehouse_code: str
    quantity: int
    unit_price: Decimal
    shipped_quantity: int = 0

    @property
    def amount(self) -> Decimal:
        with decimal.localcontext(prec=60):
            return self.unit_price * self.quantity


@dataclasses.dataclass(frozen=True)
class LineInput:
    sku: str
    warehouse_code: str
    quantity: int
    unit_price: str
    currency_code: str


@dataclasses.dataclass(frozen=True)
class PlaceOrder:
    request_id: str
    customer_id: str
    currency_code: str
    lines: tuple[LineInput, ...]


@dataclasses.dataclass
class Order:
    order_id: str
    request_id: str
    customer_id: str
    currency_code: str
    lines: list[OrderLine]
    status: OrderStatus = OrderStatus.PENDING
    version: int = 1
    rejection_reason: str = ""
    created_at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))
    updated_at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))
    stock_step: SagaStep = SagaStep.PENDING
    credit_step: SagaStep = SagaStep.PENDING
    invoice_id: str = ""
    invoiced_amount: Decimal = Decimal(0)
    amount_paid: Decimal = Decimal(0)
    cancellation_reason: str = ""
    # The saga's deadline (services/orders/deadline.py): how often this PENDING order was driven
    # again (its OrderPlaced published anew, the database's clock), and when it last was.
    drives: int = 0
    driven_at: dt.datetime | None = None
    # Statuses entered since loading, in order (not stored): each becomes an event.
    entered: list[OrderStatus] = dataclasses.field(default_factory=list, compare=False, repr=False)
    # The version as loaded (not stored): saving checks the row still has it.
    loaded_version: int = dataclasses.field(default=0, compare=False, repr=False)

    @property
    def total(self) -> Decimal:
        # Exact at every size the limits allow (200 lines x 10^9 units x 10^14 per unit,
        # 4 decimals): the default 28-digit context would round such sums.
        with decimal.localcontext(prec=60):
            return sum((line.amount for line in self.lines), Decimal(0))

    def can_move_to(self, target: OrderStatus) -> bool:
        return target in TRANSITIONS.get(self.status, frozenset())

    def move_to(self, target: OrderStatus, reason: str = "") -> None:
        if not self.can_move_to(target):
            raise InvalidTransition(f"order {self.order_id} is {self.status} and cannot become {target}")
        self.status = target
        self.entered.append(target)
        self.version += 1
        self.updated_at = dt.datetime.now(dt.UTC)
        if target is OrderStatus.REJECTED:
            self.rejection_reason = reason

    def confirm(self) -> None:
        self.move_to(OrderStatus.CONFIRMED)

    def reject(self, reason: str) -> None:
        self.move_to(OrderStatus.REJECTED, reason)

    # The saga: stock and credit are checked in parallel; the order is confirmed when
    # both pass and rejected as soon as one fails. Each returns the new status when
    # the order moved, None when the answer changed nothing (late, repeated or stale).
    def stock_answer(self, ok: bool, reason: str = "") -> OrderStatus | None:
        return self._answer("stock_step", ok, reason)

    def credit_answer(self, ok: bool, reason: str = "") -> OrderStatus | None:
        return self._answer("credit_step", ok, reason)

    def _answer(self, step: str, ok: bool, reason: str) -> OrderStatus | None:
        if self.status is not OrderStatus.PENDING or getattr(self, step) is not SagaStep.PENDING:
            return None
        setattr(self, step, SagaStep.OK if ok else SagaStep.FAILED)
        if not ok:
            self.reject(reason)
        elif self.stock_step is SagaStep.OK and self.credit_step is SagaStep.OK:
            self.confirm()
        else:
            self.version += 1  # recorded half of the answer
            self.updated_at = dt.datetime.now(dt.UTC)
            return None
        return self.status

    @property
    def unanswered(self) -> list[str]:
        """Who still owes the pending saga an answer."""
        steps = (("inventory (stock)", self.stock_step), ("crm (credit)", self.credit_step))
        return [who for who, step in steps if step is SagaStep.PENDING]

    def past_deadline(self, now: dt.datetime, deadline: dt.timedelta) -> bool:
        """Whether the order is still PENDING a deadline after its placement or its last drive."""
        return self.status is OrderStatus.PENDING and (self.driven_at or self.created_at) + deadline <= now

    def drive_again(self, now: dt.datetime, max_drives: int) -> bool:
        """An order past its deadline: True when it is driven again (its requests are to be
        published anew; the consumers answer a repeat with their first answer), until
        max_drives are spent; then it is rejected (False), and the rejection compensates."""
        if self.drives < max_drives:
            self.drives += 1
            self.driven_at = now
            self._touch()
            return True
        who = " and ".join(self.unanswered) or "the saga"
        self.reject(f"no answer from {who}: asked {self.drives + 1} times, the deadline passed each time")
        return False

    @property
    def fulfilment_status(self) -> FulfilmentStatus:
        shipped = sum(line.shipped_quantity for line in self.lines)
        if shipped == 0:
            return FulfilmentStatus.UNFULFILLED
        if shipped < sum(line.quantity for line in self.lines):
            return FulfilmentStatus.PARTLY_SHIPPED
        return FulfilmentStatus.SHIPPED

    @property
    def payment_status(self) -> PaymentStatus:
        if not self.invoice_id:
            return PaymentStatus.NOT_INVOICED
        if self.amount_paid <= 0:
            return PaymentStatus.UNPAID
        if self.amount_paid < self.invoiced_amount:
            return PaymentStatus.PARTLY_PAID
        return PaymentStatus.PAID

    def invoiced(self, invoice_id: str, amount: Decimal) -> bool:
        """Records the invoice; returns whether anything changed."""
        if self.invoice_id:
            return False
        self.invoice_id, self.invoiced_amount = invoice_id, amount
        if self.status is OrderStatus.CONFIRMED:
            self.move_to(OrderStatus.INVOICED)
        else:
            self._touch()
        self._complete_if_done()
        return True

    def paid(self, amount: Decimal) -> None:
        self.amount_paid += amount
        self._touch()
        self._complete_if_done()

    def ship(self) -> bool:
        """Ships every line in full; returns False when it had shipped already."""
        if self.fulfilment_status is FulfilmentStatus.SHIPPED:
            return False
        if self.status not in (OrderStatus.CONFIRMED, OrderStatus.INVOICED):
            raise InvalidTransition(f"order {self.order_id} is {self.status} and cannot ship")
        self.lines = [dataclasses.replace(line, shipped_quantity=line.quantity) for line in self.lines]
        self.move_to(OrderStatus.SHIPPED)
        self._complete_if_done()
        return True

    def cancel(self, reason: str) -> bool:
        """Cancels before shipment; returns False when it was cancelled already."""
        if self.status is OrderStatus.CANCELLED:
            return False
        if not self.can_move_to(OrderStatus.CANCELLED):
            raise InvalidTransition(f"order {self.order_id} is {self.status} and can no longer be cancelled")
        self.cancellation_reason = reason
        self.move_to(OrderStatus.CANCELLED)
        return True

    def _complete_if_done(self) -> None:
        if (self.status is OrderStatus.SHIPPED and self.payment_status is PaymentStatus.PAID):
            self.move_to(OrderStatus.COMPLETED)

    def _touch(self) -> None:
        self.version += 1
        self.updated_at = dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class OrdersConfig:
    default_warehouse: str  # where a line that names no warehouse is reserved

    @classmethod
    def from_settings(cls, settings: Settings) -> OrdersConfig:
        return cls(default_warehouse=settings.variables.text("ERP_DEFAULT_WAREHOUSE", "MAIN"))


def new_order(order_id: str, cmd: PlaceOrder, default_warehouse: str) -> Order:
    """Validates a placement and returns the PENDING order; every problem is reported at once."""
    v = Violations()
    v.check(0 < len(cmd.request_id) <= 64, "request_id", "must be 1-64 characters (a UUID is a good choice)")
    v.check(0 < len(cmd.customer_id) <= 64, "customer_id", "must be 1-64 characters")
    v.check(money.valid_currency(cmd.currency_code), "currency_code", "must be an ISO 4217 code such as EUR")
    v.check(0 < len(cmd.lines) <= MAX_LINES, "lines", f"must hold 1-{MAX_LINES} lines")
    lines: list[OrderLine] = []
    seen: set[tuple[str, str]] = set()
    for i, line in enumerate(cmd.lines[:MAX_LINES]):
        field = f"lines[{i}]"
        warehouse = line.warehouse_code or default_warehouse
        v.check(0 < len(line.sku) <= 64, f"{field}.sku", "must be 1-64 characters")
        v.check(0 < len(warehouse) <= 32, f"{field}.warehouse_code", "must be at most 32 characters")
        v.check(0 < line.quantity <= MAX_QUANTITY, f"{field}.quantity", f"must be 1-{MAX_QUANTITY}")
        price = money.parse_amount(line.unit_price)
        if price is None:
            v.add(f"{field}.unit_price.amount", "must be a decimal such as 12.50 (at most 4 decimals)")
        elif price < 0:
            v.add(f"{field}.unit_price.amount", "must not be negative")
        if line.currency_code != cmd.currency_code:
            v.add(f"{field}.unit_price.currency_code", "must equal the order's currency_code")
        if (line.sku, warehouse) in seen:
            v.add(f"{field}.sku", "appears twice for the same warehouse; merge the lines")
        seen.add((line.sku, warehouse))
        lines.append(OrderLine(i + 1, line.sku, warehouse, line.quantity, price or Decimal(0)))
    v.raise_if_any()
    return Order(order_id=order_id, request_id=cmd.request_id, customer_id=cmd.customer_id,
                 currency_code=cmd.currency_code, lines=lines)


def rejection_reason(failures: list[tuple[int, str, str, int, int, str]]) -> str:
    """Human readable reason from (line_no, sku, warehouse, requested, available, why) tuples."""
    parts = [f"line {n} {sku}@{wh}: {why} (requested {req}, available {avail})"
             for n, sku, wh, req, avail, why in failures]
    return "stock not available: " + "; ".join(parts)
