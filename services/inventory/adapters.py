"""Inventory's persistence: tables, repositories and its unit of work (SQLAlchemy Core).

A reservation locks the order's balance rows in key order (one SELECT ... FOR UPDATE),
checks availability on those current numbers, and updates them; the CHECK constraints
on stock_balances are the backstop. Balances are a
projection of stock_ledger, written in the same transaction as each ledger entry.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from decimal import Decimal
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by, insert

from mesh import bulk, sql
from mesh.uow import UnitOfWork
from services.inventory.domain import LedgerEntry, LedgerKind, Product, StockLevel, Valuation, Warehouse

metadata = sa.MetaData()

products = sa.Table(
    "products", metadata,
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("unit_of_measure", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

warehouses = sa.Table(
    "warehouses", metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

stock_balances = sa.Table(
    "stock_balances", metadata,
    sa.Column("sku", sa.Text, sa.ForeignKey("products.sku"), primary_key=True),
    sa.Column("warehouse_code", sa.Text, sa.ForeignKey("warehouses.code"), primary_key=True),
    sa.Column("on_hand", sa.BigInteger, nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("reorder_point", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reorder_quantity", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("reorder_alerted", sa.Boolean, nullable=False, server_default=sa.false()),
    # Valuation (migration 0006): what on hand is worth, and value / on hand (the last one
    # in force when nothing is on hand). Written with every valued ledger entry.
    sa.Column("value", sa.Numeric(18, 2), nullable=False, server_default="0"),
    sa.Column("unit_cost", sa.Numeric(28, 10), nullable=False, server_default="0"),
    sa.CheckConstraint("value >= 0", name="value_not_negative"),
    sa.CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
    sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    sa.CheckConstraint("reserved <= on_hand", name="no_oversell"),
)

stock_ledger = sa.Table(
    "stock_ledger", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("on_hand_delta", sa.BigInteger, nullable=False),
    sa.Column("reserved_delta", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("request_id", sa.Text, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("value_delta", sa.Numeric(18, 2), nullable=False, server_default="0"),
    sa.Column("unit_cost", sa.Numeric(28, 10)),
)

reservations = sa.Table(
    "reservations", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("warehouse_code", sa.Text, primary_key=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("status", sa.Text, nullable=False),  # reserved | released | issued
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Orders whose reservation was released before it was made (events out of order):
# a late OrderPlaced for them must not reserve.
closed_orders = sa.Table(
    "closed_orders", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Each order whose reservation failed, with the StockReservationFailed it was answered with: an
# OrderPlaced published again (orders' saga deadline) gets that answer again, not a new attempt.
reservation_failures = sa.Table(
    "reservation_failures", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("answer", sa.LargeBinary, nullable=False),  # the StockReservationFailed payload, serialized
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

_LEVEL_COLUMNS = (stock_balances.c.sku, stock_balances.c.warehouse_code, stock_balances.c.on_hand,
                  stock_balances.c.reserved, stock_balances.c.version, stock_balances.c.reorder_point,
                  stock_balances.c.reorder_quantity, stock_balances.c.reorder_alerted)


def _level(row) -> StockLevel:
    return StockLevel(row.sku, row.warehouse_code, row.on_hand, row.reserved, row.version, row.reorder_point,
                      row.reorder_quantity, row.reorder_alerted)


class CatalogRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def product(self, sku: str) -> Product | None:
        row = self.conn.execute(sa.select(products).where(products.c.sku == sku)).first()
        return Product(row.sku, row.name, row.unit_of_measure) if row else None

    def add_product(self, product: Product) -> None:
        self.conn.execute(products.insert().values(sku=product.sku, name=product.name,
                                                   unit_of_measure=product.unit_of_measure))

    def warehouse(self, code: str) -> Warehouse | None:
        row = self.conn.execute(sa.select(warehouses).where(warehouses.c.code == code)).first()
        return Warehouse(row.code, row.name) if row else None

    def add_warehouse(self, warehouse: Warehouse) -> None:
        self.conn.execute(warehouses.insert().values(code=warehouse.code, name=warehouse.name))


# The statements of the order path, built once: SQLAlchemy then reuses their compiled form
# instead of building and hashing a new statement per call (measured: a third of a reservation's CPU).
_b = stock_balances.c
_KEY = sa.and_(_b.sku == sa.bindparam("k_sku"), _b.warehouse_code == sa.bindparam("k_wh"))
_GET = sa.select(*_LEVEL_COLUMNS).where(_KEY)
_ENSURE_ROW = insert(stock_balances).values(sku=sa.bindparam("k_sku"), warehouse_code=sa.bindparam("k_wh"),
                                            on_hand=0, reserved=0, version=0).on_conflict_do_nothing()
_MOVE = (stock_balances.update().where(_KEY)
         .values(on_hand=_b.on_hand + sa.bindparam("on_hand_delta", type_=sa.BigInteger),
                 reserved=_b.reserved + sa.bindparam("reserved_delta", type_=sa.BigInteger),
                 version=_b.version + 1)
         .returning(*_LEVEL_COLUMNS))
# Which SKUs and warehouse codes exist, in one round trip: ("sku", value) and ("warehouse", value) rows.
_FOUND = sa.union_all(
    sa.select(sa.literal("sku").label("kind"), products.c.sku.label("value"))
    .where(products.c.sku.in_(sa.bindparam("skus", expanding=True))),
    sa.select(sa.literal("warehouse"), warehouses.c.code)
    .where(warehouses.c.code.in_(sa.bindparam("codes", expanding=True))))
_FAILURE_INSERT = insert(reservation_failures).on_conflict_do_nothing()
_LEDGER_INSERT = stock_ledger.insert()


# Balances locked in key order (so reservations cannot deadlock; MATERIALIZED: locked whatever the
# outer query reads), each looked up by its key (mesh.bulk.planned_as_few), beside which of the
# keys' SKUs and warehouses exist: one row per locked balance, or one row with no balance.
_LOCKED_KEYS = (
    "WITH locked AS MATERIALIZED ("
    " SELECT b.sku, b.warehouse_code, b.on_hand, b.reserved, b.version, b.reorder_point, b.reorder_quantity,"
    "  b.reorder_alerted FROM stock_balances AS b"
    " JOIN unnest(CAST(:skus AS text[]), CAST(:codes AS text[])) WITH ORDINALITY AS k(sku, code, n)"
    f"  ON b.sku = k.sku AND b.warehouse_code = k.code AND {bulk.planned_as_few('k.n')}"
    " ORDER BY b.sku, b.warehouse_code FOR UPDATE OF b)"
    " SELECT {seen}"
    " ARRAY(SELECT sku FROM products WHERE sku = ANY(CAST(:skus AS text[]))) AS known_skus,"
    " ARRAY(SELECT code FROM warehouses WHERE code = ANY(CAST(:codes AS text[]))) AS known_codes,"
    " locked.* FROM (SELECT) AS one LEFT JOIN locked ON true")
# What a reservation looks at, in one statement: what was done with the order already, and its keys.
_BEFORE_RESERVING = sa.text(_LOCKED_KEYS.format(seen=(
    "EXISTS (SELECT 1 FROM reservations WHERE order_id = :order_id) AS seen_reserved,"
    " EXISTS (SELECT 1 FROM closed_orders WHERE order_id = :order_id) AS seen_closed,"
    " (SELECT answer FROM reservation_failures WHERE order_id = :order_id) AS seen_failure,")))
# A consumer batch's: the keys of all its orders, and what was done with each order.
_LOCK_KEYS = sa.text(_LOCKED_KEYS.format(seen=""))
_SEEN = sa.text(
    "SELECT v.order_id, EXISTS (SELECT 1 FROM reservations r WHERE r.order_id = v.order_id) AS reserved,"
    " EXISTS (SELECT 1 FROM closed_orders c WHERE c.order_id = v.order_id) AS closed,"
    " (SELECT f.answer FROM reservation_failures f WHERE f.order_id = v.order_id) AS failure"
    f" FROM {bulk.recordset(reservations, ['order_id'], ['order_id'])} AS v")
# Reservations' writes in one statement: the balances (each by the sum of its orders' quantities,
# its version by their number), the reservation rows and the ledger entries, in the order given
# (an order's merged lines, order after order).
_RESERVED = ["order_id", "sku", "warehouse_code", "quantity", "reason"]
_reserved = bulk.recordset(stock_ledger, _RESERVED, ["reference", "sku", "warehouse_code", "reserved_delta", "reason"],
                           numbered=True)
_RESERVE = sa.text(
    f"WITH m AS MATERIALIZED (SELECT * FROM {_reserved} AS m({', '.join(_RESERVED)}, row_no)),"
    " moved AS (UPDATE stock_balances AS b SET reserved = b.reserved + t.quantity, version = b.version + t.n"
    "  FROM (SELECT sku, warehouse_code, sum(quantity)::bigint AS quantity, count(*) AS n FROM m"
    "   GROUP BY sku, warehouse_code) AS t"
    "  WHERE b.sku = t.sku AND b.warehouse_code = t.warehouse_code),"
    " held AS (INSERT INTO reservations (order_id, sku, warehouse_code, quantity, status)"
    "  SELECT order_id, sku, warehouse_code, quantity, 'reserved' FROM m ORDER BY row_no)"
    " INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, reason, reference)"
    " SELECT sku, warehouse_code, :kind, 0, quantity, reason, order_id FROM m ORDER BY row_no")


class OrderSeen(NamedTuple):
    reserved: bool  # it has reservation rows (in any status)
    closed: bool  # rejected or cancelled (released, or closed before it was seen)
    failure: bytes | None  # the StockReservationFailed it got, serialized, when its reservation failed


class BeforeReserving(NamedTuple):
    seen: OrderSeen
    skus: set[str]  # which of the order's SKUs exist
    codes: set[str]  # and which of its warehouses
    levels: dict[tuple[str, str], StockLevel]  # its balances that exist, locked


Key = tuple[str, str]  # (sku, warehouse code)


class _Reservations:
    """A transaction's reservations. A consumer batch reads what all its OrderPlaced look at up
    front (read): what was done with each order, and the balances of all their keys, locked in
    one global key order. Each reservation then reads from that and changes it in memory, and the
    reservations are written in one statement (flush): at the commit, or before any other
    statement of the repository, which also drops what was read (it may change it)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.seen: dict[str, OrderSeen] = {}  # by order: used once
        self.keys: set[Key] = set()  # read up front; levels holds those with a balance
        self.levels: dict[Key, StockLevel] = {}  # locked, as this transaction has them
        self.skus: set[str] = set()
        self.codes: set[str] = set()
        self.pending: list[dict[str, object]] = []  # rows of _RESERVE

    def read(self, orders: list[tuple[str, list[Key]]]) -> None:
        keys = sorted({key for _, order_keys in orders for key in order_keys})
        rows = sql.run(self.conn, _LOCK_KEYS, {"skus": [k[0] for k in keys], "codes": [k[1] for k in keys]}).all()
        self.keys.update(keys)
        self.skus.update(rows[0].known_skus)
        self.codes.update(rows[0].known_codes)
        self.levels.update({(r.sku, r.warehouse_code): _level(r) for r in rows if r.sku is not None})
        for row in sql.run(self.conn, _SEEN, bulk.rows([{"order_id": order_id} for order_id, _ in orders])):
            self.seen[row.order_id] = OrderSeen(row.reserved, row.closed, row.failure)

    def flush(self) -> None:
        if self.pending:
            sql.run(self.conn, _RESERVE, {"kind": str(LedgerKind.RESERVATION), **bulk.rows(self.pending)})
            self.pending = []

    def forget(self) -> None:
        self.seen, self.keys, self.levels, self.skus, self.codes = {}, set(), {}, set(), set()


def _after_flush(method):
    """A statement of StockRepository other than a reservation's: the batch's reservations are
    written first, and what was read for them is dropped."""
    @functools.wraps(method)
    def flushed(self: StockRepository, *args, **kwargs):
        self.reservations.flush()
        self.reservations.forget()
        return method(self, *args, **kwargs)
    return flushed


class StockRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.reservations = _Reservations(conn)

    def read_all(self, orders: list[tuple[str, list[Key]]]) -> None:
        """What a batch's reservations look at (its orders and their keys), read and locked at once."""
        self.reservations.flush()
        self.reservations.read(orders)

    @_after_flush
    def get(self, sku: str, warehouse_code: str, for_update: bool = False) -> StockLevel | None:
        query = _GET.with_for_update() if for_update else _GET
        row = self.conn.execute(query, {"k_sku": sku, "k_wh": warehouse_code}).first()
        return _level(row) if row else None

    @_after_flush
    def many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StockLevel]:
        if not keys:
            return {}
        pairs = sa.tuple_(stock_balances.c.sku, stock_balances.c.warehouse_code).in_(keys)
        return {(r.sku, r.warehouse_code): _level(r) for r in self.conn.execute(sa.select(*_LEVEL_COLUMNS).where(pairs))}

    @_after_flush
    def existing(self, keys: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
        """Which of the keys' SKUs and warehouses exist."""
        skus = sorted({k[0] for k in keys})
        codes = sorted({k[1] for k in keys})
        found: dict[str, set[str]] = {"sku": set(), "warehouse": set()}
        for kind, value in self.conn.execute(_FOUND, {"skus": skus, "codes": codes}):
            found[kind].add(value)
        return found["sku"], found["warehouse"]

    @_after_flush
    def ensure_row(self, sku: str, warehouse_code: str) -> None:
        self.conn.execute(_ENSURE_ROW, {"k_sku": sku, "k_wh": warehouse_code})

    @_after_flush
    def save(self, level: StockLevel) -> None:
        self.conn.execute(stock_balances.update().where(
            stock_balances.c.sku == level.sku, stock_balances.c.warehouse_code == level.warehouse_code,
        ).values(on_hand=level.on_hand, reserved=level.reserved, version=level.version))

    @_after_flush
    def append(self, *entries: LedgerEntry) -> None:
        """Writes ledger entries (several in one statement)."""
        if entries:
            self.conn.execute(_LEDGER_INSERT, [{
                "sku": e.sku, "warehouse_code": e.warehouse_code, "kind": str(e.kind),
                "on_hand_delta": e.on_hand_delta, "reserved_delta": e.reserved_delta, "reason": e.reason,
                "reference": e.reference, "request_id": e.request_id, "value_delta": e.value_delta,
                "unit_cost": e.unit_cost} for e in entries])

    @_after_flush
    def request_target(self, request_id: str) -> tuple[str, str] | None:
        """The (sku, warehouse) an already-applied request changed, if any."""
        row = self.conn.execute(sa.select(stock_ledger.c.sku, stock_ledger.c.warehouse_code)
                                .where(stock_ledger.c.request_id == request_id)).first()
        return (row.sku, row.warehouse_code) if row else None

    def before_reserving(self, order_id: str, keys: list[tuple[str, str]]) -> BeforeReserving:
        """What reserving an order's (sku, warehouse) keys looks at, its balances locked: what the
        batch read up front, with its reservations before this one; else one statement."""
        batch = self.reservations
        seen = batch.seen.pop(order_id, None)
        if seen is not None and batch.keys.issuperset(keys):
            return BeforeReserving(seen, batch.skus, batch.codes, {k: batch.levels[k] for k in keys if k in batch.levels})
        batch.flush()
        rows = sql.run(self.conn, _BEFORE_RESERVING, {"order_id": order_id, "skus": [k[0] for k in keys],
                                                      "codes": [k[1] for k in keys]}).all()
        first = rows[0]
        return BeforeReserving(OrderSeen(first.seen_reserved, first.seen_closed, first.seen_failure),
                               set(first.known_skus), set(first.known_codes),
                               {(r.sku, r.warehouse_code): _level(r) for r in rows if r.sku is not None})

    def reserve_order(self, order_id: str, moves: list[tuple[StockLevel, int]], reason: str) -> list[StockLevel]:
        """Reserves quantity on each level, which this transaction holds locked (before_reserving),
        so availability was checked on current numbers; records the order's reservations and their
        ledger entries (kind RESERVATION, referencing the order). Written with the batch's other
        reservations (flush), or at once when its balances were not read up front. The new
        levels. The CHECK constraints still refuse an oversell."""
        if len({(level.sku, level.warehouse_code) for level, _ in moves}) != len(moves):
            raise ValueError("reserve_order takes each balance once (merge the lines first)")
        batch = self.reservations
        reserved = [dataclasses.replace(level, reserved=level.reserved + qty, version=level.version + 1)
                    for level, qty in moves]
        batch.pending.extend({"order_id": order_id, "sku": level.sku, "warehouse_code": level.warehouse_code,
                              "quantity": qty, "reason": reason} for level, qty in moves)
        for level in reserved:
            if (level.sku, level.warehouse_code) in batch.levels:
                batch.levels[(level.sku, level.warehouse_code)] = level
        if not all((level.sku, level.warehouse_code) in batch.keys for level in reserved):
            batch.flush()
        return reserved

    def add_failure(self, order_id: str, answer: bytes) -> None:
        """Records that the order's reservation failed, with the answer given (serialized): what
        the batch read for other orders still holds."""
        self.conn.execute(_FAILURE_INSERT, {"order_id": order_id, "answer": answer})

    @_after_flush
    def reservations_for(self, order_id: str, status: str = "reserved") -> list[tuple[str, str, int]]:
        """(sku, warehouse, quantity) of an order's reservations in a status, in sorted order."""
        rows = self.conn.execute(
            sa.select(reservations.c.sku, reservations.c.warehouse_code, reservations.c.quantity)
            .where(reservations.c.order_id == order_id, reservations.c.status == status)
            .order_by(reservations.c.sku, reservations.c.warehouse_code)
        ).all()
        return [(r.sku, r.warehouse_code, r.quantity) for r in rows]

    @_after_flush
    def set_reservations_status(self, order_id: str, status: str) -> None:
        self.conn.execute(reservations.update().where(reservations.c.order_id == order_id,
                                                      reservations.c.status == "reserved").values(status=status))

    @_after_flush
    def move(self, sku: str, warehouse_code: str, on_hand_delta: int, reserved_delta: int) -> StockLevel:
        """Applies deltas to a balance (the CHECK constraints refuse an impossible result)."""
        row = self.conn.execute(_MOVE, {"k_sku": sku, "k_wh": warehouse_code, "on_hand_delta": on_hand_delta,
                                        "reserved_delta": reserved_delta}).first()
        return _level(row)

    @_after_flush
    def close(self, order_id: str) -> None:
        self.conn.execute(insert(closed_orders).values(order_id=order_id).on_conflict_do_nothing())

    @_after_flush
    def set_reorder(self, sku: str, warehouse_code: str, point: int, quantity: int) -> StockLevel:
        row = self.conn.execute(
            stock_balances.update()
            .where(stock_balances.c.sku == sku, stock_balances.c.warehouse_code == warehouse_code)
            .values(reorder_point=point, reorder_quantity=quantity)
            .returning(*_LEVEL_COLUMNS)
        ).first()
        return _level(row)

    def set_reorder_alerted(self, sku: str, warehouse_code: str, alerted: bool) -> None:
        """A reservation's reorder alert (another column than its pending writes change)."""
        self.conn.execute(stock_balances.update().where(
            stock_balances.c.sku == sku, stock_balances.c.warehouse_code == warehouse_code,
        ).values(reorder_alerted=alerted))
        level = self.reservations.levels.get((sku, warehouse_code))
        if level is not None:
            self.reservations.levels[(sku, warehouse_code)] = dataclasses.replace(level, reorder_alerted=alerted)

    @_after_flush
    def page(self, *, warehouse_code: str, sku_prefix: str, below_reorder_point: bool,
             after: tuple[str, str] | None, limit: int) -> list[StockLevel]:
        """Levels ordered by (warehouse, sku), after a key, for keyset paging."""
        b = stock_balances.c
        query = sa.select(*_LEVEL_COLUMNS).order_by(b.warehouse_code, b.sku).limit(limit)
        if warehouse_code:
            query = query.where(b.warehouse_code == warehouse_code)
        if sku_prefix:
            escaped = sku_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(b.sku.like(escaped + "%", escape="\\"))
        if below_reorder_point:
            query = query.where(b.reorder_point > 0, b.on_hand - b.reserved < b.reorder_point)
        if after is not None:
            query = query.where(sa.tuple_(b.warehouse_code, b.sku) > sa.tuple_(*after))
        return [_level(r) for r in self.conn.execute(query)]


    # ------------------------------------------------------------ valuation

    @_after_flush
    def valuation(self, sku: str, warehouse_code: str) -> Valuation:
        """The balance's quantity on hand and value. Read after the balance's row was
        changed (move) or locked in this transaction, so no other writer is between."""
        row = self.conn.execute(sa.select(_b.on_hand, _b.value, _b.unit_cost).where(
            _b.sku == sku, _b.warehouse_code == warehouse_code)).first()
        if row is None:
            return Valuation(0, Decimal("0.00"), Decimal(0))
        return Valuation(row.on_hand, row.value, row.unit_cost)

    @_after_flush
    def set_valuation(self, sku: str, warehouse_code: str, value: Decimal, unit_cost: Decimal) -> None:
        self.conn.execute(stock_balances.update().where(_b.sku == sku, _b.warehouse_code == warehouse_code)
                          .values(value=value, unit_cost=unit_cost))

    @_after_flush
    def valuation_page(self, *, as_of: dt.datetime | None, warehouse_code: str, sku_prefix: str,
                       after: tuple[str, str] | None, limit: int | None) -> list[tuple[str, str, int, Decimal, Decimal]]:
        """(sku, warehouse, quantity, value, unit cost) by (warehouse, sku): the balances
        now, or the ledger summed up to as_of. limit None: every line (for the totals)."""
        query = _valuation_source(as_of, warehouse_code, sku_prefix)
        if after is not None:
            query = query.where(sa.tuple_(query.selected_columns.warehouse_code,
                                          query.selected_columns.sku) > sa.tuple_(*after))
        if limit is not None:
            query = query.limit(limit)
        return [(r.sku, r.warehouse_code, int(r.quantity), r.value, r.unit_cost) for r in self.conn.execute(query)]

    @_after_flush
    def valuation_totals(self, *, as_of: dt.datetime | None, warehouse_code: str,
                         sku_prefix: str) -> tuple[int, Decimal]:
        lines = _valuation_source(as_of, warehouse_code, sku_prefix).subquery()
        row = self.conn.execute(sa.select(sa.func.coalesce(sa.func.sum(lines.c.quantity), 0),
                                          sa.func.coalesce(sa.func.sum(lines.c.value), 0))).one()
        return int(row[0]), Decimal(row[1]).quantize(Decimal("0.01"))


def _prefix_filter(column, sku_prefix: str):
    escaped = sku_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


def _valuation_source(as_of: dt.datetime | None, warehouse_code: str, sku_prefix: str):
    """A select of (sku, warehouse_code, quantity, value, unit_cost) ordered by warehouse and
    SKU, leaving out lines with neither quantity nor value."""
    if as_of is None:
        b = stock_balances.c
        query = (sa.select(b.sku, b.warehouse_code, b.on_hand.label("quantity"), b.value, b.unit_cost)
                 .where(sa.or_(b.on_hand != 0, b.value != 0)).order_by(b.warehouse_code, b.sku))
        if warehouse_code:
            query = query.where(b.warehouse_code == warehouse_code)
        if sku_prefix:
            query = query.where(_prefix_filter(b.sku, sku_prefix))
        return query
    led = stock_ledger.c
    conditions = [led.created_at <= as_of]
    if warehouse_code:
        conditions.append(led.warehouse_code == warehouse_code)
    if sku_prefix:
        conditions.append(_prefix_filter(led.sku, sku_prefix))
    sums = (sa.select(led.sku, led.warehouse_code, sa.func.sum(led.on_hand_delta).label("quantity"),
                      sa.func.sum(led.value_delta).label("value"),
                      # the unit cost after the last valued entry up to then (the last in force)
                      sa.func.coalesce(
                          sa.func.array_agg(aggregate_order_by(led.unit_cost, led.id.desc()))
                          .filter(led.unit_cost.is_not(None))[1], 0).label("unit_cost"))
            .where(*conditions).group_by(led.sku, led.warehouse_code).subquery())
    return (sa.select(sums.c.sku, sums.c.warehouse_code, sums.c.quantity, sums.c.value, sums.c.unit_cost)
            .where(sa.or_(sums.c.quantity != 0, sums.c.value != 0))
            .order_by(sums.c.warehouse_code, sums.c.sku))


class InventoryUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.catalog = CatalogRepository(self.connection)
        self.stock = StockRepository(self.connection)

    def flush(self) -> None:
        self.stock.reservations.flush()


def ledger_mismatches(conn: sa.Connection) -> list[tuple]:
    """Balances whose quantities or value differ from the sums of their ledger (empty when all agree)."""
    sums = (sa.select(stock_ledger.c.sku, stock_ledger.c.warehouse_code,
                      sa.func.sum(stock_ledger.c.on_hand_delta).label("on_hand"),
                      sa.func.sum(stock_ledger.c.reserved_delta).label("reserved"),
                      sa.func.sum(stock_ledger.c.value_delta).label("value"))
            .group_by(stock_ledger.c.sku, stock_ledger.c.warehouse_code).subquery())
    query = sa.select(stock_balances.c.sku, stock_balances.c.warehouse_code, stock_balances.c.on_hand,
                      stock_balances.c.reserved, sums.c.on_hand, sums.c.reserved).select_from(
        stock_balances.outerjoin(sums, sa.and_(sums.c.sku == stock_balances.c.sku,
                                               sums.c.warehouse_code == stock_balances.c.warehouse_code))
    ).where(sa.or_(sa.func.coalesce(sums.c.on_hand, 0) != stock_balances.c.on_hand,
                   sa.func.coalesce(sums.c.reserved, 0) != stock_balances.c.reserved,
                   sa.func.coalesce(sums.c.value, 0) != stock_balances.c.value))
    return [tuple(r) for r in conn.execute(query)]


def rebuild_balances(conn: sa.Connection) -> int:
    """Recomputes every balance (quantities and value; the unit cost as value / on hand, kept
    when nothing is on hand) from the ledger; returns how many rows changed."""
    return conn.execute(sa.text("""
        UPDATE stock_balances b SET on_hand = s.on_hand, reserved = s.reserved, value = s.value,
               unit_cost = CASE WHEN s.on_hand > 0 THEN round(s.value / s.on_hand, 10) ELSE b.unit_cost END,
               version = b.version + 1
        FROM (SELECT sku, warehouse_code, sum(on_hand_delta) AS on_hand, sum(reserved_delta) AS reserved,
                     sum(value_delta) AS value
              FROM stock_ledger GROUP BY sku, warehouse_code) s
        WHERE b.sku = s.sku AND b.warehouse_code = s.warehouse_code
          AND (b.on_hand <> s.on_hand OR b.reserved <> s.reserved OR b.value <> s.value)
    """)).rowcount
