"""In-memory stand-ins for the units of work, repositories and cache.

They keep the contracts the handlers rely on, including the ones the database
enforces (unique keys, foreign keys, the stock CHECK constraints, the orders
version check), so a handler that breaks a rule fails here as it would against
PostgreSQL. Stored values are immutable or copied, so a handler that changes an
object and forgets to save it changes nothing, as with a real database.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NamedTuple

from google.protobuf import message

from mesh.errors import Aborted
from services.inventory.adapters import BeforeReserving, OrderSeen
from services.inventory.domain import LedgerEntry, LedgerKind, Product, StockLevel, Valuation, Warehouse
from services.orders.domain import Order, OrderStatus
from services.orders.timeline import Step, StepKind


class FakeIntegrityError(Exception):
    """What PostgreSQL would refuse: a duplicate key, a missing foreign key, a CHECK."""


class Emitted(NamedTuple):
    aggregate_type: str
    aggregate_id: str
    version: int
    payload: message.Message


# ---------------------------------------------------------------- unit of work


class FakeUnitOfWork:
    """One transaction over the given repositories.

    On enter it snapshots every repository; rollback (or leaving without commit)
    restores that snapshot and drops the events emitted and the hooks registered
    since. Commit keeps the changes, then runs the after-commit hooks. Hook errors
    propagate (the real unit of work only logs them) so a broken hook fails a test.
    """

    def __init__(self, **repos: Any) -> None:
        self._repos = repos
        for name, repo in repos.items():
            setattr(self, name, repo)
        self.events: list[Emitted] = []
        self.committed = False
        self.commits = 0
        self.rollbacks = 0
        self.active = False
        self._hooks: list[Callable[[], None]] = []
        self._snapshot: dict[str, Any] = {}
        self._events_mark = 0
        self.locked: list[tuple[str, str]] = []

    # transaction
    def __enter__(self) -> FakeUnitOfWork:
        assert not self.active, "unit of work entered twice"
        self.active = True
        self.committed = False
        self._hooks = []
        self._mark()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if not self.committed:
                self.rollback()
        finally:
            self.active = False
            self._hooks = []

    def _mark(self) -> None:
        self._snapshot = {name: repo.snapshot() for name, repo in self._repos.items()}
        self._events_mark = len(self.events)

    def lock(self, kind: str, *ids: str) -> None:
        """Aggregate locks (mesh.locks) serialize transactions; one thread needs none. Kept for
        tests that check which aggregates a handler locks."""
        assert self.active, "lock outside the unit of work"
        self.locked.extend((kind, ident) for ident in ids)

    def lock_all(self, refs, then_lock_timeout=None) -> None:
        for kind, ident in refs:
            self.lock(kind, ident)

    def try_lock(self, kind: str, ident: str) -> bool:
        """Never busy: one thread holds every lock it asks for."""
        self.lock(kind, ident)
        return True

    def commit(self) -> None:
        assert self.active, "commit outside the unit of work"
        self.committed = True
        self.commits += 1
        self._mark()
        hooks, self._hooks = self._hooks, []
        for fn in hooks:
            fn()

    def rollback(self) -> None:
        assert self.active, "rollback outside the unit of work"
        self.rollbacks += 1
        for name, repo in self._repos.items():
            repo.restore(self._snapshot[name])
        del self.events[self._events_mark:]
        self._hooks = []

    # outbox and hooks
    def emit(self, *, aggregate_type: str, aggregate_id: str, version: int, payload: message.Message) -> str:
        assert self.active, "emit outside the unit of work"
        assert isinstance(payload, message.Message), f"payload must be a protobuf message, got {payload!r}"
        self.events.append(Emitted(aggregate_type, aggregate_id, version, payload))
        return f"event-{len(self.events)}"

    def after_commit(self, fn: Callable[[], None]) -> None:
        assert self.active, "after_commit outside the unit of work"
        self._hooks.append(fn)

    # helpers for tests
    def payloads(self, cls: type[message.Message] | None = None) -> list[message.Message]:
        return [e.payload for e in self.events if cls is None or isinstance(e.payload, cls)]


# ---------------------------------------------------------------- inventory


class FakeCatalog:
    def __init__(self) -> None:
        self.products: dict[str, Product] = {}
        self.warehouses: dict[str, Warehouse] = {}

    def snapshot(self):
        return dict(self.products), dict(self.warehouses)

    def restore(self, snap) -> None:
        products, warehouses = snap
        self.products, self.warehouses = dict(products), dict(warehouses)

    def product(self, sku: str) -> Product | None:
        return self.products.get(sku)

    def add_product(self, product: Product) -> None:
        if product.sku in self.products:
            raise FakeIntegrityError(f"duplicate product {product.sku}")
        self.products[product.sku] = product

    def warehouse(self, code: str) -> Warehouse | None:
        return self.warehouses.get(code)

    def add_warehouse(self, warehouse: Warehouse) -> None:
        if warehouse.code in self.warehouses:
            raise FakeIntegrityError(f"duplicate warehouse {warehouse.code}")
        self.warehouses[warehouse.code] = warehouse


def _check_level(level: StockLevel) -> None:
    """The CHECK constraints on stock_balances."""
    if level.on_hand < 0:
        raise FakeIntegrityError(f"on_hand_not_negative: {level}")
    if level.reserved < 0:
        raise FakeIntegrityError(f"reserved_not_negative: {level}")
    if level.reserved > level.on_hand:
        raise FakeIntegrityError(f"no_oversell: {level}")


class FakeStock:
    """Balances, ledger and reservations; products and warehouses come from the catalog."""

    def __init__(self, catalog: FakeCatalog) -> None:
        self.catalog = catalog
        self.levels: dict[tuple[str, str], StockLevel] = {}
        self.ledger: list[LedgerEntry] = []
        self.reservations: dict[tuple[str, str, str], int] = {}  # (order, sku, warehouse) -> quantity
        self.reservation_status: dict[tuple[str, str, str], str] = {}
        self.closed: set[str] = set()
        self.failures: dict[str, bytes] = {}  # order -> its StockReservationFailed, serialized
        self.values: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}  # -> (value, unit cost)
        self.calls: list[str] = []

    def snapshot(self):
        return (dict(self.levels), list(self.ledger), dict(self.reservations), dict(self.reservation_status),
                set(self.closed), dict(self.values), dict(self.failures))

    def restore(self, snap) -> None:
        levels, ledger, reservations, status, closed, values, failures = snap
        self.levels, self.ledger, self.reservations = dict(levels), list(ledger), dict(reservations)
        self.reservation_status, self.closed, self.failures = dict(status), set(closed), dict(failures)
        self.values = dict(values)

    def valuation(self, sku: str, warehouse_code: str) -> Valuation:
        level = self.levels.get((sku, warehouse_code))
        value, cost = self.values.get((sku, warehouse_code), (Decimal("0.00"), Decimal(0)))
        return Valuation(level.on_hand if level else 0, value, cost)

    def set_valuation(self, sku: str, warehouse_code: str, value: Decimal, unit_cost: Decimal) -> None:
        if value < 0:
            raise FakeIntegrityError(f"value_not_negative: {sku} {warehouse_code} {value}")
        self.values[(sku, warehouse_code)] = (value, unit_cost)

    def reservations_for(self, order_id: str, status: str = "reserved") -> list[tuple[str, str, int]]:
        self.calls.append("reservations_for")
        return sorted((sku, wh, qty) for (order, sku, wh), qty in self.reservations.items()
                      if order == order_id and self.reservation_status[(order, sku, wh)] == status)

    def set_reservations_status(self, order_id: str, status: str) -> None:
        for key, current in self.reservation_status.items():
            if key[0] == order_id and current == "reserved":
                self.reservation_status[key] = status

    def move(self, sku: str, warehouse_code: str, on_hand_delta: int, reserved_delta: int) -> StockLevel:
        self.calls.append("move")
        level = self.levels[(sku, warehouse_code)]
        new = dataclasses.replace(level, on_hand=level.on_hand + on_hand_delta,
                                  reserved=level.reserved + reserved_delta, version=level.version + 1)
        _check_level(new)
        self.levels[(sku, warehouse_code)] = new
        return new

    def close(self, order_id: str) -> None:
        self.closed.add(order_id)

    def set_reorder(self, sku: str, warehouse_code: str, point: int, quantity: int) -> StockLevel:
        level = dataclasses.replace(self.levels[(sku, warehouse_code)], reorder_point=point,
                                    reorder_quantity=quantity)
        self.levels[(sku, warehouse_code)] = level
        return level

    def set_reorder_alerted(self, sku: str, warehouse_code: str, alerted: bool) -> None:
        key = (sku, warehouse_code)
        self.levels[key] = dataclasses.replace(self.levels[key], reorder_alerted=alerted)

    def page(self, *, warehouse_code, sku_prefix, below_reorder_point, after, limit) -> list[StockLevel]:
        rows = sorted(self.levels.values(), key=lambda x: (x.warehouse_code, x.sku))
        rows = [x for x in rows if (not warehouse_code or x.warehouse_code == warehouse_code)
                and x.sku.startswith(sku_prefix) and (not below_reorder_point or x.below_reorder_point)
                and (after is None or (x.warehouse_code, x.sku) > tuple(after))]
        return rows[:limit]

    def get(self, sku: str, warehouse_code: str, for_update: bool = False) -> StockLevel | None:
        self.calls.append("get")
        return self.levels.get((sku, warehouse_code))

    def many(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], StockLevel]:
        self.calls.append("many")
        return {k: self.levels[k] for k in keys if k in self.levels}

    def existing(self, keys: list[tuple[str, str]]) -> tuple[set[str], set[str]]:
        self.calls.append("existing")
        skus = {sku for sku, _ in keys if sku in self.catalog.products}
        codes = {code for _, code in keys if code in self.catalog.warehouses}
        return skus, codes

    def ensure_row(self, sku: str, warehouse_code: str) -> None:
        self.calls.append("ensure_row")
        if sku not in self.catalog.products or warehouse_code not in self.catalog.warehouses:
            raise FakeIntegrityError(f"foreign key: no product {sku} or warehouse {warehouse_code}")
        self.levels.setdefault((sku, warehouse_code), StockLevel.empty(sku, warehouse_code))

    def save(self, level: StockLevel) -> None:
        self.calls.append("save")
        key = (level.sku, level.warehouse_code)
        assert key in self.levels, f"save of a row that does not exist: {key}"
        _check_level(level)
        self.levels[key] = level

    def reserve_order(self, order_id: str, moves: list[tuple[StockLevel, int]], reason: str) -> list[StockLevel]:
        self.calls.append("reserve_order")
        new_levels = []
        for level, qty in moves:
            current = self.levels[(level.sku, level.warehouse_code)]
            assert current == level, "reserve_order on a level that changed since before_reserving()"
            new = dataclasses.replace(current, reserved=current.reserved + qty, version=current.version + 1)
            _check_level(new)
            self.levels[(level.sku, level.warehouse_code)] = new
            new_levels.append(new)
            key = (order_id, level.sku, level.warehouse_code)
            if key in self.reservations:
                raise FakeIntegrityError(f"duplicate reservation {key}")
            self.reservations[key] = qty
            self.reservation_status[key] = "reserved"
        self.ledger.extend(LedgerEntry(level.sku, level.warehouse_code, LedgerKind.RESERVATION, 0, qty, reason,
                                       reference=order_id) for level, qty in moves)
        return new_levels

    def append(self, *entries: LedgerEntry) -> None:
        self.calls.append("append")
        for entry in entries:
            if entry.request_id is not None and any(e.request_id == entry.request_id for e in self.ledger):
                raise FakeIntegrityError(f"duplicate ledger request_id {entry.request_id}")
            self.ledger.append(entry)

    def request_target(self, request_id: str) -> tuple[str, str] | None:
        self.calls.append("request_target")
        for entry in self.ledger:
            if entry.request_id == request_id:
                return entry.sku, entry.warehouse_code
        return None

    def before_reserving(self, order_id: str, keys: list[tuple[str, str]]) -> BeforeReserving:
        self.calls.append("before_reserving")
        seen = OrderSeen(any(order == order_id for order, _, _ in self.reservations), order_id in self.closed,
                         self.failures.get(order_id))
        skus, codes = ({sku for sku, _ in keys if sku in self.catalog.products},
                       {code for _, code in keys if code in self.catalog.warehouses})
        return BeforeReserving(seen, skus, codes, {k: self.levels[k] for k in sorted(keys) if k in self.levels})

    def add_failure(self, order_id: str, answer: bytes) -> None:
        self.calls.append("add_failure")
        self.failures.setdefault(order_id, answer)  # as the real one: ON CONFLICT DO NOTHING



# ---------------------------------------------------------------- orders


class FakeOrders:
    def __init__(self, timeline: FakeTimeline) -> None:
        self.timeline = timeline
        self.rows: dict[str, Order] = {}
        self.saves = 0
        self.clock = dt.datetime.now(dt.UTC)  # the database's now(): tests move it

    def now(self) -> dt.datetime:
        return self.clock

    def past_deadline(self, deadline: dt.timedelta, after, limit: int) -> list[tuple[dt.datetime, str]]:
        due = sorted((o.created_at, o.order_id) for o in self.rows.values()
                     if o.status is OrderStatus.PENDING and (o.driven_at or o.created_at) <= self.clock - deadline)
        return [key for key in due if after is None or key > tuple(after)][:limit]

    def snapshot(self):
        return copy.deepcopy(self.rows)

    def restore(self, snap) -> None:
        self.rows = copy.deepcopy(snap)

    def add(self, order: Order, first_step: Step) -> bool:
        """With its first step, into the timeline it was given, as the real one's statement does."""
        if order.order_id in self.rows:
            raise FakeIntegrityError(f"duplicate order {order.order_id}")
        if any(o.request_id == order.request_id for o in self.rows.values()):
            return False  # as the real one: ON CONFLICT (request_id) DO NOTHING
        self.rows[order.order_id] = copy.deepcopy(order)
        self.timeline.add(first_step)
        return True

    @staticmethod
    def _loaded(order: Order) -> Order:
        loaded = copy.deepcopy(order)
        loaded.loaded_version = loaded.version
        return loaded

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        order = self.rows.get(order_id)
        return self._loaded(order) if order is not None else None

    def by_request(self, request_id: str) -> Order | None:
        for order in self.rows.values():
            if order.request_id == request_id:
                return self._loaded(order)
        return None

    def page(self, *, customer_id, status, created_after, created_before, after, limit) -> list[Order]:
        rows = sorted(self.rows.values(), key=lambda o: (o.created_at, o.order_id), reverse=True)
        rows = [o for o in rows if (not customer_id or o.customer_id == customer_id)
                and (status is None or o.status is status)
                and (created_after is None or o.created_at >= created_after)
                and (created_before is None or o.created_at < created_before)
                and (after is None or (o.created_at.isoformat(), o.order_id) < tuple(after))]
        return [self._loaded(o) for o in rows[:limit]]

    def save(self, order: Order) -> None:
        """Same rule as the SQL UPDATE ... WHERE version = <version as loaded>."""
        stored = self.rows.get(order.order_id)
        if stored is None or stored.version != order.loaded_version:
            raise Aborted(f"order {order.order_id} changed concurrently")
        order.loaded_version = order.version
        self.rows[order.order_id] = copy.deepcopy(order)
        self.saves += 1


class FakeTimeline:
    """An order's steps, one per (order, key), as the real table's unique constraint."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Step] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, step: Step) -> bool:
        if (step.order_id, step.key) in self.rows:
            return False  # as the real one: ON CONFLICT (order_id, step_key) DO NOTHING
        self.rows[(step.order_id, step.key)] = dataclasses.replace(step, seq=len(self.rows) + 1)
        return True

    def steps(self, order_id: str, after, limit: int) -> list[Step]:
        found = sorted((s for s in self.rows.values() if s.order_id == order_id), key=lambda s: (s.at, s.seq))
        return [s for s in found if after is None or (s.at, s.seq) > tuple(after)][:limit]

    def kinds(self, order_id: str) -> set[StepKind]:
        return {s.kind for s in self.rows.values() if s.order_id == order_id}


# ---------------------------------------------------------------- cache


class FakeCache:
    """mesh.cache.Cache without Redis. Versioned values are stored as
    b"<version>:<payload>" and, as in its Lua script, an older or equal version
    never replaces what is there."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0
        self.writes = 0
        self.refused = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return self.data.get(key)

    def set(self, key: str, value: bytes) -> None:
        self.writes += 1
        self.data[key] = value

    def get_versioned(self, key: str) -> tuple[int, bytes] | None:
        raw = self.get(key)
        if raw is None:
            return None
        version, _, value = raw.partition(b":")
        return int(version), value

    def read_through(self, key: str, load, check=None) -> tuple[int, bytes]:
        if check is not None:  # (no copy in this process here: always before the lookup)
            check()
        found = self.get_versioned(key)
        if found is None:
            found = load()
            self.set_if_newer(key, *found)
        return found

    def set_many_if_newer(self, entries: list[tuple[str, int, bytes]]) -> None:
        for key, version, value in entries:
            self.set_if_newer(key, version, value)

    def set_if_newer(self, key: str, version: int, value: bytes) -> None:
        current = self.data.get(key)
        if current is not None:
            head = current.partition(b":")[0]
            if head.isdigit() and int(head) >= version:
                self.refused += 1
                return
        self.writes += 1
        self.data[key] = f"{version}:".encode() + value

    def delete(self, *keys: str) -> None:
        for key in keys:
            self.data.pop(key, None)
