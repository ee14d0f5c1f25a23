"""Inventory's rules: what a valid product, warehouse and stock change is, and how
stock levels move. No I/O here."""
from __future__ import annotations

import dataclasses
import enum
import re

from mesh.errors import FailedPrecondition, Violations
from mesh.identifiers import SKU_RE, WAREHOUSE_RE, check_request_id, check_sku, check_warehouse  # noqa: F401

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
