"""Sales orders: what a valid order is, and the state machine as an explicit table."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from decimal import Decimal

from mesh import money
from mesh.errors import FailedPrecondition, Violations

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
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.PENDING: frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.CONFIRMED: frozenset({OrderStatus.SHIPPED, OrderStatus.CANCELLED}),
    OrderStatus.SHIPPED: frozenset({OrderStatus.INVOICED}),
    OrderStatus.INVOICED: frozenset({OrderStatus.COMPLETED}),
}


class InvalidTransition(FailedPrecondition):
    pass


@dataclasses.dataclass(frozen=True)
class OrderLine:
    line_no: int
    sku: str
    warehouse_code: str
    quantity: int
    unit_price: Decimal

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
        self.version += 1
        self.updated_at = dt.datetime.now(dt.UTC)
        if target is OrderStatus.REJECTED:
            self.rejection_reason = reason

    def confirm(self) -> None:
        self.move_to(OrderStatus.CONFIRMED)

    def reject(self, reason: str) -> None:
        self.move_to(OrderStatus.REJECTED, reason)


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
