"""Inventory's rules and use cases, run against in-memory fakes."""
from __future__ import annotations

import contextlib
import itertools
from decimal import Decimal

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh.errors import AlreadyExists, DomainError, FailedPrecondition, InvalidArgument, NotFound
from services.inventory import domain, handlers
from services.inventory import events as inventory_events
from services.inventory.domain import (
    AdjustStock,
    CreateProduct,
    CreateWarehouse,
    LedgerEntry,
    LedgerKind,
    ReserveLine,
    ReserveOrder,
    StockLevel,
)
from tests.unit.fakes import Emitted, FakeCache, FakeCatalog, FakeStock, FakeUnitOfWork

ZERO_EUR = money_pb2.Money(currency_code="EUR", amount="0.00")

WH = "MAIN"


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in exc.value.violations}


class World:
    """One inventory database and one cache, reached through the real handlers."""

    def __init__(self) -> None:
        self.catalog = FakeCatalog()
        self.stock = FakeStock(self.catalog)
        self.uow = FakeUnitOfWork(catalog=self.catalog, stock=self.stock)
        self.cache = FakeCache()
        self._requests = 0

    def product(self, sku: str) -> None:
        handlers.create_product(self.uow, CreateProduct(sku, f"Product {sku}", "EA"))

    def warehouse(self, code: str) -> None:
        handlers.create_warehouse(self.uow, CreateWarehouse(code, f"Warehouse {code}"))

    def adjust(self, sku: str, delta: int, wh: str = WH, request_id: str | None = None) -> StockLevel:
        self._requests += 1
        request_id = request_id or f"req-{self._requests}"
        return handlers.adjust_stock(self.uow, self.cache, AdjustStock(request_id, sku, wh, delta, "count"))

    def reserve(self, order_id: str, *lines: tuple[str, str, int]) -> bool:
        """Runs reserve as the event consumer does: inside its transaction, then commits."""
        cmd = ReserveOrder(order_id, tuple(ReserveLine(i + 1, sku, wh, qty) for i, (sku, wh, qty) in enumerate(lines)))
        with self.uow:
            ok = handlers.reserve(self.uow, self.cache, cmd)
            self.uow.commit()
        return ok

    def level(self, sku: str, wh: str = WH) -> StockLevel | None:
        return self.stock.levels.get((sku, wh))

    def state(self):
        return self.stock.snapshot(), list(self.uow.events), dict(self.cache.data)


@pytest.fixture
def world() -> World:
    w = World()
    for sku in ("SKU-A", "SKU-B", "SKU-C"):
        w.product(sku)
    for code in (WH, "EAST"):
        w.warehouse(code)
    return w


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("sku", ["", "a" * 65, "has space", "sl/ash", "ünï", "semi;colon", "star*"])
def test_a_bad_sku_is_refused(sku):
    with pytest.raises(InvalidArgument) as exc:
        domain.validate_product(CreateProduct(sku, "Widget", "EA"))
    assert fields(exc) == {"product.sku"}
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("sku", ["A", "a" * 64, "x.y_z-1", "0"])
def test_a_good_sku_is_accepted(sku):
    assert domain.validate_product(CreateProduct(sku, "Widget", "EA")).sku == sku


def test_product_validation_reports_every_field_at_once():
    with pytest.raises(InvalidArgument) as exc:
        domain.validate_product(CreateProduct("bad sku", "   ", "E A"))
    assert fields(exc) == {"product.sku", "product.name", "product.unit_of_measure"}


def test_product_name_is_trimmed_and_unit_upper_cased():
    assert domain.validate_product(CreateProduct("S1", "  Widget  ", "kg")) == domain.Product("S1", "Widget", "KG")


@pytest.mark.parametrize("code", ["", "main", "W 1", "A" * 33, "W/1"])
def test_a_bad_warehouse_code_is_refused(code):
    with pytest.raises(InvalidArgument) as exc:
        domain.validate_warehouse(CreateWarehouse(code, "Main"))
    assert fields(exc) == {"warehouse.code"}


def test_adjustment_validation_reports_every_field_at_once():
    with pytest.raises(InvalidArgument) as exc:
        domain.validate_adjustment(AdjustStock("", "bad sku", "main", 0, "   "))
    assert fields(exc) == {"request_id", "sku", "warehouse_code", "quantity_delta", "reason"}


@pytest.mark.parametrize(("cmd", "field"), [
    (AdjustStock("r1", "SKU-A", WH, 0, "count"), "quantity_delta"),
    (AdjustStock("r1", "SKU-A", WH, domain.MAX_QUANTITY + 1, "count"), "quantity_delta"),
    (AdjustStock("r1", "SKU-A", WH, -domain.MAX_QUANTITY - 1, "count"), "quantity_delta"),
    (AdjustStock("r1", "SKU-A", WH, 5, ""), "reason"),
    (AdjustStock("r1", "SKU-A", WH, 5, " \t "), "reason"),
    (AdjustStock("r1", "SKU-A", WH, 5, "x" * 501), "reason"),
    (AdjustStock("r" * 65, "SKU-A", WH, 5, "count"), "request_id"),
    (AdjustStock("r1", "SKU A", WH, 5, "count"), "sku"),
    (AdjustStock("r1", "SKU-A", "main", 5, "count"), "warehouse_code"),
])
def test_a_bad_adjustment_is_refused_before_any_database_work(world, cmd, field):
    world.stock.calls.clear()
    commits = world.uow.commits
    with pytest.raises(InvalidArgument) as exc:
        handlers.adjust_stock(world.uow, world.cache, cmd)
    assert fields(exc) == {field}
    assert world.stock.calls == []
    assert world.uow.commits == commits


@pytest.mark.parametrize("sku, code", [("SKU-A\n", WH), ("SKU-A", "MAIN\n")])
def test_a_trailing_newline_is_not_a_valid_sku_or_warehouse(sku, code):
    """A pattern anchored with '$' would let these through; the rules must match the whole text."""
    with pytest.raises(InvalidArgument):
        domain.validate_adjustment(AdjustStock("r1", sku, code, 5, "count"))


def test_get_stock_and_batch_validate_their_keys(world):
    with pytest.raises(InvalidArgument) as exc:
        handlers.get_stock(lambda: world.uow, world.cache, "bad sku", "main")
    assert fields(exc) == {"sku", "warehouse_code"}
    with pytest.raises(InvalidArgument) as exc:
        handlers.batch_get_stock(world.uow, [("SKU-A", WH), ("bad sku", WH), ("SKU-B", "east")])
    assert fields(exc) == {"keys[1].sku", "keys[2].warehouse_code"}
    with pytest.raises(InvalidArgument) as exc:
        handlers.batch_get_stock(world.uow, [])
    assert fields(exc) == {"keys"}
    with pytest.raises(InvalidArgument) as exc:
        handlers.batch_get_stock(world.uow, [("SKU-A", WH)] * (domain.MAX_BATCH + 1))
    assert fields(exc) == {"keys"}


# ---------------------------------------------------------------- products and warehouses


def test_create_product_stores_the_normalised_product(world):
    product = handlers.create_product(world.uow, CreateProduct("NEW-1", " Bolt ", "ea"))
    assert product == domain.Product("NEW-1", "Bolt", "EA")
    assert world.catalog.products["NEW-1"] == product
    assert handlers.get_product(world.uow, "NEW-1") == product


def test_create_product_again_with_the_same_attributes_is_idempotent(world):
    first = handlers.create_product(world.uow, CreateProduct("NEW-1", "Bolt", "EA"))
    commits = world.uow.commits
    again = handlers.create_product(world.uow, CreateProduct("NEW-1", "  Bolt", "ea"))
    assert again == first
    assert world.uow.commits == commits  # nothing written the second time


@pytest.mark.parametrize("cmd", [CreateProduct("NEW-1", "Nut", "EA"), CreateProduct("NEW-1", "Bolt", "KG")])
def test_create_product_with_other_attributes_is_already_exists(world, cmd):
    handlers.create_product(world.uow, CreateProduct("NEW-1", "Bolt", "EA"))
    with pytest.raises(AlreadyExists):
        handlers.create_product(world.uow, cmd)
    assert world.catalog.products["NEW-1"] == domain.Product("NEW-1", "Bolt", "EA")


def test_create_warehouse_is_idempotent_and_refuses_another_name(world):
    assert handlers.create_warehouse(world.uow, CreateWarehouse("WEST", "West")) == domain.Warehouse("WEST", "West")
    assert handlers.create_warehouse(world.uow, CreateWarehouse("WEST", " West ")) == domain.Warehouse("WEST", "West")
    with pytest.raises(AlreadyExists):
        handlers.create_warehouse(world.uow, CreateWarehouse("WEST", "Western"))
    assert world.catalog.warehouses["WEST"].name == "West"


def test_get_product_unknown_is_not_found(world):
    with pytest.raises(NotFound):
        handlers.get_product(world.uow, "NOPE")
    with pytest.raises(InvalidArgument):
        handlers.get_product(world.uow, "no pe")


# ---------------------------------------------------------------- adjust_stock


def test_adjust_stock_moves_on_hand_writes_the_ledger_and_emits(world):
    level = handlers.adjust_stock(world.uow, world.cache, AdjustStock("r1", "SKU-A", WH, 10, "  initial count "))
    assert level == StockLevel("SKU-A", WH, 10, 0, 1)
    assert world.level("SKU-A") == level
    assert world.stock.ledger == [LedgerEntry("SKU-A", WH, LedgerKind.ADJUSTMENT, 10, 0, "initial count",
                                              reference="r1", request_id="r1", unit_cost=Decimal(0))]
    assert world.uow.events == [Emitted("stock", f"{WH}/SKU-A", 1, ev.StockAdjusted(
        sku="SKU-A", warehouse_code=WH, quantity_delta=10, on_hand=10, reason="initial count",
        value_delta=ZERO_EUR, unit_cost="0.00", request_id="r1"))]
    assert world.uow.committed

    level = handlers.adjust_stock(world.uow, world.cache, AdjustStock("r2", "SKU-A", WH, -3, "damaged"))
    assert level == StockLevel("SKU-A", WH, 7, 0, 2)
    assert world.uow.events[-1] == Emitted("stock", f"{WH}/SKU-A", 2, ev.StockAdjusted(
        sku="SKU-A", warehouse_code=WH, quantity_delta=-3, on_hand=7, reason="damaged", value_delta=ZERO_EUR,
        unit_cost="0.00", request_id="r2"))
    assert sum(e.on_hand_delta for e in world.stock.ledger) == 7


def test_a_repeated_adjustment_changes_nothing_and_returns_the_level(world):
    cmd = AdjustStock("r1", "SKU-A", WH, 10, "count")
    first = handlers.adjust_stock(world.uow, world.cache, cmd)
    before, commits = world.state(), world.uow.commits
    again = handlers.adjust_stock(world.uow, world.cache, cmd)
    assert again == first
    assert world.state() == before
    assert world.uow.commits == commits


@pytest.mark.parametrize(("sku", "wh"), [("SKU-B", WH), ("SKU-A", "EAST")])
def test_reusing_a_request_id_for_another_stock_row_is_already_exists(world, sku, wh):
    handlers.adjust_stock(world.uow, world.cache, AdjustStock("r1", "SKU-A", WH, 10, "count"))
    before = world.state()
    with pytest.raises(AlreadyExists):
        handlers.adjust_stock(world.uow, world.cache, AdjustStock("r1", sku, wh, 10, "count"))
    assert world.state() == before


def test_removing_stock_below_what_is_reserved_is_refused(world):
    world.adjust("SKU-A", 10)
    assert world.reserve("order-1", ("SKU-A", WH, 8))
    before = world.state()
    with pytest.raises(FailedPrecondition):
        world.adjust("SKU-A", -5)
    assert world.state() == before  # no balance, ledger, event or cache change
    assert world.adjust("SKU-A", -2) == StockLevel("SKU-A", WH, 8, 8, 3)  # down to exactly the reserved


def test_removing_more_than_on_hand_is_refused(world):
    world.adjust("SKU-A", 3)
    before = world.state()
    with pytest.raises(FailedPrecondition):
        world.adjust("SKU-A", -4)
    assert world.state() == before


def test_a_failed_adjustment_can_be_retried_with_the_same_request_id(world):
    world.adjust("SKU-A", 3)
    with pytest.raises(FailedPrecondition):
        world.adjust("SKU-A", -4, request_id="take-4")
    world.adjust("SKU-A", 1)
    assert world.adjust("SKU-A", -4, request_id="take-4").on_hand == 0


@pytest.mark.parametrize(("sku", "wh"), [("NOPE", WH), ("SKU-A", "NOWHERE")])
def test_adjusting_unknown_stock_is_not_found(world, sku, wh):
    before = world.state()
    with pytest.raises(NotFound):
        handlers.adjust_stock(world.uow, world.cache, AdjustStock("r1", sku, wh, 5, "count"))
    assert world.state() == before
    assert world.stock.levels == {}


def test_adjusted_refuses_negative_and_bumps_the_version():
    level = StockLevel("S", WH, on_hand=5, reserved=2, version=7)
    assert domain.adjusted(level, 4) == StockLevel("S", WH, 9, 2, 8)
    assert domain.adjusted(level, -3) == StockLevel("S", WH, 2, 2, 8)
    assert level == StockLevel("S", WH, 5, 2, 7)  # unchanged
    for delta in (-4, -6):
        with pytest.raises(FailedPrecondition):
            domain.adjusted(level, delta)


def test_available_never_goes_below_zero():
    assert StockLevel("S", WH, 5, 2, 1).available == 3
    assert StockLevel("S", WH, 2, 5, 1).available == 0


# ---------------------------------------------------------------- get_stock and the cache


def test_a_cached_stock_key_names_one_valid_sku_and_warehouse():
    """get_stock checks its request only when this process holds no copy under the key: safe while
    no other pair of strings, valid or not, names the key of a valid pair. Every pair of strings of
    up to three of 'A', 'a', '-' and ':' (the character the key joins its parts with): valid pairs,
    pairs a case or a character away from them, and pairs that split a key elsewhere."""
    def valid(sku: str, wh: str) -> bool:
        try:
            handlers.get_stock(lambda: None, _Refusing(), sku, wh)  # the check runs first on a miss
        except InvalidArgument:
            return False
        except _Reached:
            return True
        raise AssertionError("unreachable")

    parts = [""] + ["".join(p) for n in (1, 2, 3) for p in itertools.product("Aa-:", repeat=n)]
    by_key: dict[str, list[tuple[str, str]]] = {}
    for sku, wh in itertools.product(parts, parts):
        by_key.setdefault(handlers._cache_key(sku, wh), []).append((sku, wh))
    named_by_valid = [pairs for pairs in by_key.values() if any(valid(*pair) for pair in pairs)]
    assert len(named_by_valid) > 100  # (the space holds valid pairs)
    assert sum(len(pairs) > 1 for pairs in by_key.values()) > 100  # (and keys several pairs name)
    for pairs in named_by_valid:
        assert len(pairs) == 1, pairs


class _Reached(Exception):
    pass


class _Refusing:
    def read_through(self, key, load, check=None):
        check()
        raise _Reached


def test_get_stock_answers_the_same_level_with_one_shared_response():
    from services.inventory import grpc_api

    level = StockLevel("SKU-A", WH, 10, 4, 2)
    first = grpc_api._stock_response(level)
    assert first.stock.available == 6 and first.stock.version == 2
    assert grpc_api._stock_response(StockLevel("SKU-A", WH, 10, 4, 2)) is first
    assert grpc_api._stock_response(StockLevel("SKU-A", WH, 10, 5, 3)).stock.available == 5


def test_get_stock_of_a_product_never_counted_is_zero(world):
    assert handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH) == StockLevel.empty("SKU-A", WH)


@pytest.mark.parametrize(("sku", "wh"), [("NOPE", WH), ("SKU-A", "NOWHERE")])
def test_get_stock_unknown_is_not_found(world, sku, wh):
    with pytest.raises(NotFound):
        handlers.get_stock(lambda: world.uow, world.cache, sku, wh)
    assert world.cache.data == {}


def test_get_stock_reads_through_the_cache(world):
    world.adjust("SKU-A", 10)
    world.cache.data.clear()
    world.stock.calls.clear()
    first = handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH)
    assert first == StockLevel("SKU-A", WH, 10, 0, 1)
    assert "get" in world.stock.calls

    world.stock.calls.clear()
    second = handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH)
    assert second == first
    assert world.stock.calls == []  # served from the cache


def test_an_adjustment_refreshes_the_cache_after_commit(world):
    key = handlers._cache_key("SKU-A", WH)
    world.adjust("SKU-A", 10)
    assert handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH).version == 1

    writes = []
    real = world.cache.set_if_newer
    world.cache.set_if_newer = lambda *a: (writes.append(world.uow.committed), real(*a))
    world.adjust("SKU-A", 5)
    assert writes == [True]  # written once, and only after the commit
    assert world.cache.get_versioned(key)[0] == 2

    world.stock.calls.clear()
    assert handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH) == StockLevel("SKU-A", WH, 15, 0, 2)
    assert world.stock.calls == []


def test_a_failed_adjustment_leaves_the_cache_alone(world):
    world.adjust("SKU-A", 1)
    handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH)
    cached = dict(world.cache.data)
    with pytest.raises(FailedPrecondition):
        world.adjust("SKU-A", -2)
    assert world.cache.data == cached


def test_a_slow_reader_never_replaces_a_newer_cached_level(world):
    """A read that misses the cache and loads an older row must not overwrite what a
    later writer cached: get_stock writes with set_if_newer."""
    key = handlers._cache_key("SKU-A", WH)
    world.adjust("SKU-A", 10)  # row at version 1
    world.cache.data[key] = b"5:99:0"  # a newer writer's value
    real, missed = world.cache.get_versioned, []

    def miss_once(k):  # the reader looked before the writer's value arrived
        if not missed:
            missed.append(k)
            return None
        return real(k)

    world.cache.get_versioned = miss_once
    assert handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH).version == 1  # read the row
    assert world.cache.data[key] == b"5:99:0"


def test_fake_cache_keeps_the_newest_version():
    cache = FakeCache()
    cache.set_if_newer("k", 2, b"two")
    cache.set_if_newer("k", 1, b"one")
    cache.set_if_newer("k", 2, b"two again")
    assert cache.get_versioned("k") == (2, b"two")
    cache.set_if_newer("k", 3, b"three")
    assert cache.get_versioned("k") == (3, b"three")
    cache.delete("k")
    assert cache.get_versioned("k") is None


def test_batch_get_stock_returns_levels_and_missing_keys_in_order(world):
    world.adjust("SKU-A", 4)
    keys = [("SKU-B", WH), ("SKU-A", WH), ("NOPE", WH), ("SKU-A", "NOWHERE"), ("SKU-A", WH)]
    levels, missing = handlers.batch_get_stock(world.uow, keys)
    assert levels == [StockLevel.empty("SKU-B", WH), StockLevel("SKU-A", WH, 4, 0, 1), StockLevel("SKU-A", WH, 4, 0, 1)]
    assert missing == [("NOPE", WH), ("SKU-A", "NOWHERE")]


# ---------------------------------------------------------------- reserve


def test_merge_lines_sums_duplicates_in_sorted_key_order():
    lines = (ReserveLine(1, "Z", "W1", 1), ReserveLine(2, "A", "W2", 2), ReserveLine(3, "A", "W1", 3),
             ReserveLine(4, "Z", "W1", 4))
    assert domain.merge_lines(lines) == [("A", "W1", 3), ("A", "W2", 2), ("Z", "W1", 5)]


def test_reserve_takes_every_line_when_all_are_available(world):
    world.adjust("SKU-A", 10)
    world.adjust("SKU-B", 3)
    ledger_before = len(world.stock.ledger)
    events_before = len(world.uow.events)

    assert world.reserve("order-1", ("SKU-B", WH, 3), ("SKU-A", WH, 4))

    assert world.level("SKU-A") == StockLevel("SKU-A", WH, 10, 4, 2)
    assert world.level("SKU-B") == StockLevel("SKU-B", WH, 3, 3, 2)
    assert world.stock.reservations == {("order-1", "SKU-A", WH): 4, ("order-1", "SKU-B", WH): 3}
    assert world.stock.ledger[ledger_before:] == [
        LedgerEntry("SKU-A", WH, LedgerKind.RESERVATION, 0, 4, "order reservation", reference="order-1"),
        LedgerEntry("SKU-B", WH, LedgerKind.RESERVATION, 0, 3, "order reservation", reference="order-1"),
    ]
    assert world.uow.events[events_before:] == [Emitted("reservation", "order-1", 1, ev.StockReserved(
        order_id="order-1", lines=[ev.ReservedLine(line_no=1, sku="SKU-B", warehouse_code=WH, quantity=3),
                                   ev.ReservedLine(line_no=2, sku="SKU-A", warehouse_code=WH, quantity=4)]))]
    # the committed levels went to the cache
    world.stock.calls.clear()
    assert handlers.get_stock(lambda: world.uow, world.cache, "SKU-A", WH) == StockLevel("SKU-A", WH, 10, 4, 2)
    assert world.stock.calls == []


def test_reserve_runs_in_the_callers_transaction_and_does_not_commit(world):
    world.adjust("SKU-A", 10)
    before = world.state()
    with world.uow:
        assert handlers.reserve(world.uow, world.cache, ReserveOrder("order-1", (ReserveLine(1, "SKU-A", WH, 4),)))
        assert not world.uow.committed
    assert world.state() == before  # the caller did not commit: nothing stays


def test_reserve_is_all_or_none(world):
    world.adjust("SKU-A", 10)
    world.adjust("SKU-B", 2)
    stock_before = world.stock.snapshot()
    events_before = len(world.uow.events)

    assert not world.reserve("order-1", ("SKU-A", WH, 5), ("SKU-B", WH, 3))

    # SKU-A had enough, but nothing was reserved; only the failed answer is kept (to answer a repeat)
    assert world.stock.snapshot()[:-1] == stock_before[:-1]
    assert world.stock.reservations == {}
    assert list(world.stock.failures) == ["order-1"]
    assert world.uow.events[events_before:] == [Emitted("reservation", "order-1", 1, ev.StockReservationFailed(
        order_id="order-1", lines=[ev.UnreservableLine(
            line_no=2, sku="SKU-B", warehouse_code=WH, requested=3, available=2,
            reason=ev.RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK)]))]
    assert "reserve_order" not in world.stock.calls


def test_reserve_reports_unknown_skus_and_warehouses(world):
    world.adjust("SKU-A", 10)
    stock_before = world.stock.snapshot()
    assert not world.reserve("order-1", ("SKU-A", WH, 1), ("NOPE", WH, 1), ("SKU-B", "NOWHERE", 2))
    assert world.stock.snapshot()[:-1] == stock_before[:-1]  # all but the failed answer, kept for a repeat
    failed = world.uow.events[-1].payload
    assert isinstance(failed, ev.StockReservationFailed)
    assert [(line.line_no, line.sku, line.warehouse_code, line.requested, line.available, line.reason)
            for line in failed.lines] == [
        (2, "NOPE", WH, 1, 0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_SKU),
        (3, "SKU-B", "NOWHERE", 2, 0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_WAREHOUSE),
    ]


def test_reserve_merges_lines_of_the_same_sku(world):
    world.adjust("SKU-A", 10)
    assert world.reserve("order-1", ("SKU-A", WH, 3), ("SKU-A", WH, 4))
    assert world.level("SKU-A").reserved == 7
    assert world.stock.reservations == {("order-1", "SKU-A", WH): 7}
    assert [e.reserved_delta for e in world.stock.ledger if e.kind is LedgerKind.RESERVATION] == [7]
    assert [line.line_no for line in world.uow.events[-1].payload.lines] == [1, 2]


def test_merged_lines_must_fit_together(world):
    world.adjust("SKU-A", 5)
    assert not world.reserve("order-1", ("SKU-A", WH, 3), ("SKU-A", WH, 4))  # each fits alone, not both
    assert world.level("SKU-A").reserved == 0
    failed = world.uow.events[-1].payload
    assert [(line.line_no, line.requested, line.available) for line in failed.lines] == [(1, 3, 5), (2, 4, 5)]


def test_reserve_takes_only_what_is_available(world):
    world.adjust("SKU-A", 10)
    assert world.reserve("order-1", ("SKU-A", WH, 6))
    assert not world.reserve("order-2", ("SKU-A", WH, 5))
    failed = world.uow.events[-1].payload
    assert failed.lines[0].available == 4
    assert world.reserve("order-3", ("SKU-A", WH, 4))
    assert world.level("SKU-A") == StockLevel("SKU-A", WH, 10, 10, 3)


def test_a_second_reserve_for_the_same_order_reserves_nothing_and_answers_the_same_again(world):
    """An OrderPlaced published again (orders' saga deadline) under a new event id."""
    world.adjust("SKU-A", 10)
    assert world.reserve("order-1", ("SKU-A", WH, 4))
    stock, events, cache = world.state()
    assert world.reserve("order-1", ("SKU-A", WH, 4))
    assert world.state() == (stock, [*events, events[-1]], cache)
    assert isinstance(events[-1].payload, ev.StockReserved)


def test_a_second_reserve_for_an_order_that_failed_answers_the_same_failure_even_when_stock_came_since(world):
    world.adjust("SKU-A", 2)
    assert not world.reserve("order-1", ("SKU-A", WH, 4))
    failed = world.uow.events[-1]
    world.adjust("SKU-A", 10)
    stock, events, cache = world.state()
    assert not world.reserve("order-1", ("SKU-A", WH, 4))
    assert world.state() == (stock, [*events, failed], cache)
    assert isinstance(failed.payload, ev.StockReservationFailed) and failed.payload.lines[0].available == 2


def test_a_reserve_for_an_order_closed_before_it_answers_nothing(world):
    world.adjust("SKU-A", 10)
    consume(world, handlers.release, "order-1")
    stock, events, cache = world.state()
    assert not world.reserve("order-1", ("SKU-A", WH, 4))
    assert world.state() == (stock, events, cache)


def test_a_negative_quantity_never_releases_another_orders_stock(world):
    """reserve must not trust an event's numbers: reserving -3 would lower `reserved`."""
    world.adjust("SKU-A", 10)
    assert world.reserve("order-1", ("SKU-A", WH, 5))
    with contextlib.suppress(DomainError):
        world.reserve("order-2", ("SKU-A", WH, -3))
    assert world.level("SKU-A").reserved == 5


@pytest.mark.parametrize("bad", [0, -3])
def test_a_line_with_a_non_positive_quantity_fails_the_whole_reservation(world, bad):
    world.adjust("SKU-A", 10)
    world.adjust("SKU-B", 10)
    stock_before = world.stock.snapshot()
    assert not world.reserve("order-1", ("SKU-A", WH, 2), ("SKU-B", WH, bad))
    assert world.stock.snapshot()[:-1] == stock_before[:-1]  # all but the failed answer, kept for a repeat
    failed = world.uow.events[-1].payload
    assert isinstance(failed, ev.StockReservationFailed)
    assert [(line.line_no, line.sku, line.requested, line.reason) for line in failed.lines] == [
        (2, "SKU-B", bad, ev.RESERVATION_FAILURE_REASON_INVALID_QUANTITY)]


def test_order_placed_event_becomes_a_reservation(world):
    world.adjust("SKU-A", 10)
    consumes = inventory_events.build(world.cache)
    handler = consumes.handlers["erp.events.v1.OrderPlaced"]
    event = orders_ev.OrderPlaced(order_id="order-1", lines=[
        orders_ev.OrderLineItem(line_no=1, sku="SKU-A", warehouse_code=WH, quantity=2)])
    with world.uow:
        handler(world.uow, event, None)
        world.uow.commit()
    assert world.stock.reservations == {("order-1", "SKU-A", WH): 2}


# ---------------------------------------------------------------- property: no oversell

SKUS = ["SKU-A", "SKU-B"]
WAREHOUSES = [WH, "EAST"]
keys = st.tuples(st.sampled_from(SKUS), st.sampled_from(WAREHOUSES))
adjustment = st.tuples(st.just("adjust"), keys, st.integers(-20, 20).filter(bool))
reservation = st.tuples(st.just("reserve"), st.lists(st.tuples(keys, st.integers(1, 15)), min_size=1, max_size=3))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(adjustment, reservation), max_size=25))
def test_no_sequence_of_adjustments_and_reservations_oversells(ops):
    w = World()
    for sku in SKUS:
        w.product(sku)
    for code in WAREHOUSES:
        w.warehouse(code)
    orders = 0
    for op in ops:
        before = w.stock.snapshot()
        if op[0] == "adjust":
            (sku, wh), delta = op[1], op[2]
            level = w.level(sku, wh) or StockLevel.empty(sku, wh)
            try:
                w.adjust(sku, delta, wh)
            except FailedPrecondition:
                assert level.on_hand + delta < level.reserved  # refused only when it had to be
                assert w.stock.snapshot() == before
        else:
            orders += 1
            order_id = f"order-{orders}"
            wanted: dict[tuple[str, str], int] = {}
            for key, qty in op[1]:
                wanted[key] = wanted.get(key, 0) + qty
            fits = all((w.level(*k) or StockLevel.empty(*k)).available >= q for k, q in wanted.items())
            assert w.reserve(order_id, *[(sku, wh, qty) for (sku, wh), qty in op[1]]) == fits
            if fits:
                for (sku, wh), qty in wanted.items():
                    assert w.level(sku, wh).reserved == before[0].get((sku, wh), StockLevel.empty(sku, wh)).reserved + qty
            else:
                assert w.stock.snapshot()[0] == before[0]

        for (sku, wh), level in w.stock.levels.items():
            assert 0 <= level.reserved <= level.on_hand
            entries = [e for e in w.stock.ledger if (e.sku, e.warehouse_code) == (sku, wh)]
            assert sum(e.on_hand_delta for e in entries) == level.on_hand  # balance = ledger
            assert sum(e.reserved_delta for e in entries) == level.reserved
            held = sum(q for (_, s, c), q in w.stock.reservations.items() if (s, c) == (sku, wh))
            assert held == level.reserved


# ---------------------------------------------------------------- release, issue, reorder points


def consume(world: World, fn, *args):
    with world.uow:
        result = fn(world.uow, world.cache, *args)
        world.uow.commit()
    return result


def test_release_gives_the_reservation_back_once_with_ledger_entries(world):
    world.adjust("SKU-A", 10)
    world.reserve("order-1", ("SKU-A", WH, 4))
    consume(world, handlers.release, "order-1")
    assert (world.level("SKU-A").on_hand, world.level("SKU-A").reserved) == (10, 0)
    assert world.stock.ledger[-1].kind is LedgerKind.RELEASE and world.stock.ledger[-1].reserved_delta == -4
    assert world.uow.payloads(ev.StockReleased)[-1].order_id == "order-1"
    events = list(world.uow.events)
    consume(world, handlers.release, "order-1")  # again: nothing left to release
    assert world.uow.events == events and world.level("SKU-A").reserved == 0


def test_a_release_that_arrives_before_the_reservation_blocks_it(world):
    world.adjust("SKU-A", 10)
    consume(world, handlers.release, "order-1")  # OrderRejected overtook OrderPlaced
    assert world.reserve("order-1", ("SKU-A", WH, 4)) is False
    assert world.level("SKU-A").reserved == 0
    assert world.uow.payloads(ev.StockReserved) == []


def test_issue_takes_reserved_stock_out_once(world):
    world.adjust("SKU-A", 10)
    world.reserve("order-1", ("SKU-A", WH, 4))
    consume(world, handlers.issue, "order-1")
    assert (world.level("SKU-A").on_hand, world.level("SKU-A").reserved) == (6, 0)
    assert world.stock.ledger[-1] == LedgerEntry("SKU-A", WH, LedgerKind.ISSUE, -4, -4, "shipped",
                                                 reference="order-1", unit_cost=Decimal(0))
    consume(world, handlers.issue, "order-1")
    consume(world, handlers.release, "order-1")  # a late cancellation cannot un-ship
    assert (world.level("SKU-A").on_hand, world.level("SKU-A").reserved) == (6, 0)


def test_falling_below_the_reorder_point_alerts_once_per_shortage(world):
    world.adjust("SKU-A", 20)
    handlers.set_reorder_point(world.uow, world.cache, domain.SetReorderPoint("SKU-A", WH, 10, 50))
    world.reserve("order-1", ("SKU-A", WH, 8))  # available 12: fine
    assert world.uow.payloads(ev.StockBelowReorderPoint) == []
    world.reserve("order-2", ("SKU-A", WH, 5))  # available 7: shortage starts
    world.adjust("SKU-A", -1)  # still short: no second alert
    [alert] = world.uow.payloads(ev.StockBelowReorderPoint)
    assert (alert.sku, alert.available, alert.reorder_point, alert.reorder_quantity) == ("SKU-A", 7, 10, 50)
    world.adjust("SKU-A", 30)  # replenished: the shortage ends
    world.reserve("order-3", ("SKU-A", WH, 30))  # and a new one starts
    assert len(world.uow.payloads(ev.StockBelowReorderPoint)) == 2


def test_reorder_point_validation():
    with pytest.raises(InvalidArgument) as exc:
        domain.validate_reorder_point(domain.SetReorderPoint("SKU-A", WH, 5, 0))
    assert fields(exc) == {"reorder_quantity"}
    with pytest.raises(InvalidArgument):
        domain.validate_reorder_point(domain.SetReorderPoint("SKU-A", WH, -1, 0))
    domain.validate_reorder_point(domain.SetReorderPoint("SKU-A", WH, 0, 0))


def test_list_stock_pages_and_filters(world):
    for sku in ("SKU-A", "SKU-B", "SKU-C"):
        world.adjust(sku, 5)
        world.adjust(sku, 5, wh="EAST")
    handlers.set_reorder_point(world.uow, world.cache, domain.SetReorderPoint("SKU-B", WH, 10, 10))
    kwargs = {"warehouse_code": "", "sku_prefix": "", "below_reorder_point": False}
    first, token = handlers.list_stock(world.uow, **kwargs, page_size=4, page_token="")
    rest, last = handlers.list_stock(world.uow, **kwargs, page_size=4, page_token=token)
    assert [(x.warehouse_code, x.sku) for x in first + rest] == sorted((w, s) for s, w in world.stock.levels)
    assert last == ""
    short, _ = handlers.list_stock(world.uow, warehouse_code="", sku_prefix="", below_reorder_point=True,
                                   page_size=0, page_token="")
    assert [(x.sku, x.warehouse_code) for x in short] == [("SKU-B", WH)]
    with pytest.raises(InvalidArgument):
        handlers.list_stock(world.uow, warehouse_code=WH, sku_prefix="", below_reorder_point=False, page_size=4,
                            page_token=token)
