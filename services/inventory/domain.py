"""Inventory's rules: what a valid product, warehouse and stock change is, and how
stock levels move. No I/O here."""
from __future__ import annotations

import dataclasses
import decimal
import enum
import re
from decimal import ROUND_HALF_UP, Decimal

from mesh.errors import FailedPrecondition, Violations
from mesh.identifiers import check_request_id, check_sku, check_warehouse

# Patterns are used with fullmatch (a trailing newline never passes).
UOM_RE = re.compile(r"[A-Za-z0-9]{1,16}")
MAX_BATCH = 1000
MAX_QUANTITY = 10**12


@dataclasses.dataclass(frozen=True)
class Product:
    sku: str
    name: str
    unit_of_measure: str


@dataclasses.dataclass(frozen=True)
class Warehouse:
    code: str
    name: str


@dataclasses.dataclass(frozen=True)
class StockLevel:
    sku: str
    warehouse_code: str
    on_hand: int
    reserved: int
    version: int
    reorder_point: int = 0
    reorder_quantity: int = 0
    reorder_alerted: bool = False  # a StockBelowReorderPoint is out for the current shortage

    @property
    def available(self) -> int:
        return max(0, self.on_hand - self.reserved)

    @property
    def below_reorder_point(self) -> bool:
        return self.reorder_point > 0 and self.available < self.reorder_point

    @classmethod
    def empty(cls, sku: str, warehouse_code: str) -> StockLevel:
        return cls(sku, warehouse_code, 0, 0, 0)


class LedgerKind(enum.StrEnum):
    """Every kind of stock movement. The balance is the sum of the ledger's deltas."""

    ADJUSTMENT = "adjustment"  # on hand +/- with a reason
    RECEIPT = "receipt"  # on hand + (goods received)
    RESERVATION = "reservation"  # reserved +
    RELEASE = "release"  # reserved -
    ISSUE = "issue"  # on hand - and reserved - (shipment)


@dataclasses.dataclass(frozen=True)
class LedgerEntry:
    sku: str
    warehouse_code: str
    kind: LedgerKind
    on_hand_delta: int
    reserved_delta: int
    reason: str
    reference: str = ""
    request_id: str | None = None
    value_delta: Decimal = Decimal(0)  # what the movement changed the stock's value by (2 decimals)
    unit_cost: Decimal | None = None  # the moving average cost after it (None: no valued movement)


@dataclasses.dataclass(frozen=True)
class CreateProduct:
    sku: str
    name: str
    unit_of_measure: str


@dataclasses.dataclass(frozen=True)
class CreateWarehouse:
    code: str
    name: str


@dataclasses.dataclass(frozen=True)
class AdjustStock:
    request_id: str
    sku: str
    warehouse_code: str
    quantity_delta: int
    reason: str
    unit_cost: str = ""  # opening balances only (see opening_cost)


@dataclasses.dataclass(frozen=True)
class ReserveLine:
    line_no: int
    sku: str
    warehouse_code: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class ReserveOrder:
    order_id: str
    lines: tuple[ReserveLine, ...]


def validate_product(cmd: CreateProduct) -> Product:
    v = Violations()
    check_sku(v, "product.sku", cmd.sku)
    v.check(0 < len(cmd.name.strip()) <= 200, "product.name", "must be 1-200 characters")
    v.check(bool(UOM_RE.fullmatch(cmd.unit_of_measure)), "product.unit_of_measure",
            "must be 1-16 letters or digits, for example EA or KG")
    v.raise_if_any()
    return Product(cmd.sku, cmd.name.strip(), cmd.unit_of_measure.upper())


def validate_warehouse(cmd: CreateWarehouse) -> Warehouse:
    v = Violations()
    check_warehouse(v, "warehouse.code", cmd.code)
    v.check(0 < len(cmd.name.strip()) <= 200, "warehouse.name", "must be 1-200 characters")
    v.raise_if_any()
    return Warehouse(cmd.code, cmd.name.strip())


def validate_adjustment(cmd: AdjustStock) -> None:
    v = Violations()
    check_request_id(v, "request_id", cmd.request_id)
    check_sku(v, "sku", cmd.sku)
    check_warehouse(v, "warehouse_code", cmd.warehouse_code)
    v.check(cmd.quantity_delta != 0, "quantity_delta", "must not be zero")
    v.check(abs(cmd.quantity_delta) <= MAX_QUANTITY, "quantity_delta", f"must be at most {MAX_QUANTITY} in size")
    v.check(0 < len(cmd.reason.strip()) <= 500, "reason", "must be 1-500 characters")
    v.raise_if_any()


def adjusted(level: StockLevel, delta: int) -> StockLevel:
    """The level after changing on hand by delta; refuses to go below what is reserved."""
    on_hand = level.on_hand + delta
    if on_hand < 0:
        raise FailedPrecondition(
            f"cannot remove {-delta} of {level.sku} in {level.warehouse_code}: only {level.on_hand} on hand")
    if on_hand < level.reserved:
        raise FailedPrecondition(
            f"cannot remove {-delta} of {level.sku} in {level.warehouse_code}: {level.reserved} of "
            f"{level.on_hand} on hand are reserved")
    return dataclasses.replace(level, on_hand=on_hand, version=level.version + 1)


def reorder_signal(level: StockLevel) -> str | None:
    """"alert" when a shortage starts (one event per shortage), "rearm" when it ends."""
    if level.below_reorder_point and not level.reorder_alerted:
        return "alert"
    if level.reorder_alerted and not level.below_reorder_point:
        return "rearm"
    return None


@dataclasses.dataclass(frozen=True)
class SetReorderPoint:
    sku: str
    warehouse_code: str
    reorder_point: int
    reorder_quantity: int


def validate_reorder_point(cmd: SetReorderPoint) -> None:
    v = Violations()
    check_sku(v, "sku", cmd.sku)
    check_warehouse(v, "warehouse_code", cmd.warehouse_code)
    v.check(0 <= cmd.reorder_point <= MAX_QUANTITY, "reorder_point", f"must be 0-{MAX_QUANTITY}")
    if cmd.reorder_point:
        v.check(0 < cmd.reorder_quantity <= MAX_QUANTITY, "reorder_quantity",
                f"must be 1-{MAX_QUANTITY} when reorder_point is set")
    else:
        v.check(cmd.reorder_quantity == 0, "reorder_quantity", "must be 0 when reorder_point is 0")
    v.raise_if_any()


def merge_lines(lines: tuple[ReserveLine, ...]) -> list[tuple[str, str, int]]:
    """(sku, warehouse, quantity) per distinct pair, in sorted order: reserving in one
    global order means two multi-line reservations can never deadlock each other."""
    totals: dict[tuple[str, str], int] = {}
    for line in lines:
        key = (line.sku, line.warehouse_code)
        totals[key] = totals.get(key, 0) + line.quantity
    return [(sku, wh, qty) for (sku, wh), qty in sorted(totals.items())]


# ---------------------------------------------------------------- valuation
#
# Moving weighted average cost per SKU and warehouse. The stock's value is kept in cents
# beside its quantity; the cost in force is value / quantity, exact (never a rounded copy).
#   - a receipt adds quantity x its purchase price (rounded to cents, as finance posts it);
#   - an issue or an adjustment out takes quantity x value / quantity, rounded half up to
#     cents; the last units out take whatever value is left, so no cent stays behind on
#     empty stock (and value is zero whenever quantity is);
#   - an adjustment in adds quantity x the cost in force, or the last cost in force when
#     nothing is on hand (zero when the SKU was never valued; an opening balance may name
#     its cost instead).
# Receipt into zero stock: on hand never goes below zero (the balance's CHECK constraint
# refuses it), and zero stock carries zero value, so such a receipt simply starts again at
# its purchase price. A receipt into negative stock cannot happen.
# One currency: inventory values stock in ERP_INVENTORY_CURRENCY (default EUR, finance's
# default); a receipt priced in another currency is a fault and dead-letters.

CENT = Decimal("0.01")
COST_PLACES = Decimal("0.0000000001")  # 10 decimals: how a unit cost is stored and carried
MAX_VALUE = Decimal("9999999999999999.99")  # Numeric(18, 2)


@dataclasses.dataclass(frozen=True)
class Valuation:
    """The value of a SKU in a warehouse, beside its quantity on hand."""

    quantity: int
    value: Decimal
    unit_cost: Decimal  # value / quantity; the last one in force when quantity is 0


def to_cents(amount: Decimal) -> Decimal:
    with decimal.localcontext(prec=60):
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def _cost(value: Decimal, quantity: int) -> Decimal:
    with decimal.localcontext(prec=60):
        return (value / quantity).quantize(COST_PLACES, rounding=ROUND_HALF_UP)


def receipt_value(quantity: int, unit_price: Decimal) -> Decimal:
    """A receipt line's value: quantity x purchase price, rounded half up to cents (the
    rule finance's receipt entry uses, so both sides post the same cents)."""
    with decimal.localcontext(prec=60):
        return to_cents(unit_price * quantity)


def cost_out(val: Valuation, quantity: int) -> Decimal:
    """The value quantity units take out: quantity x value / on hand, rounded half up to
    cents; all of it for the last units."""
    if quantity >= val.quantity:
        return val.value
    with decimal.localcontext(prec=60):
        return to_cents(val.value * quantity / val.quantity)


def receive_into(val: Valuation, quantity: int, unit_price: Decimal) -> tuple[Valuation, Decimal]:
    """(valuation after a receipt, the receipt's value)."""
    value = receipt_value(quantity, unit_price)
    total = val.value + value
    on_hand = val.quantity + quantity
    return Valuation(on_hand, total, _cost(total, on_hand)), value


def take_out(val: Valuation, quantity: int) -> tuple[Valuation, Decimal]:
    """(valuation after taking quantity out at the cost in force, the value taken)."""
    cost = cost_out(val, quantity)
    left = val.quantity - quantity
    return Valuation(left, val.value - cost, _cost(val.value - cost, left) if left > 0 else val.unit_cost), cost


def put_in(val: Valuation, quantity: int, unit_cost: Decimal | None = None) -> tuple[Valuation, Decimal]:
    """(valuation after an adjustment in, its value): at the cost in force (the last one
    when nothing is on hand), or at unit_cost for an opening balance."""
    with decimal.localcontext(prec=60):
        if unit_cost is not None:
            value = to_cents(unit_cost * quantity)
        elif val.quantity == 0:
            value = to_cents(val.unit_cost * quantity)
        else:
            value = to_cents(val.value * quantity / val.quantity)
    total = val.value + value
    on_hand = val.quantity + quantity
    return Valuation(on_hand, total, _cost(total, on_hand)), value


def opening_cost(cmd: AdjustStock, val: Valuation) -> Decimal | None:
    """The unit cost an adjustment names (None when it names none); only an adjustment in
    of stock that has no cost yet may name one."""
    if not cmd.unit_cost:
        return None
    from mesh import money

    v = Violations()
    cost = money.parse_amount(cmd.unit_cost)
    v.check(cost is not None and cost >= 0, "unit_cost", "must be a non-negative decimal with at most 4 decimals")
    v.check(cmd.quantity_delta > 0, "unit_cost", "only stock added can name its cost")
    v.raise_if_any()
    if val.value != 0 or val.unit_cost != 0:
        raise FailedPrecondition(f"{cmd.sku} in {cmd.warehouse_code} has a cost in force ({val.unit_cost}); "
                                 "adjustments are valued at it")
    return cost


def format_cost(cost: Decimal) -> str:
    """A unit cost as a decimal string without insignificant zeros beyond 2 decimals."""
    text = format(cost.quantize(COST_PLACES), "f").rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"
