"""Inventory's use cases. Command handlers own their transaction; `reserve` runs inside
the event consumer's transaction (with the inbox row) and does not commit."""
from __future__ import annotations

import functools
from collections.abc import Callable
from decimal import Decimal
from typing import TypeVar

from erp.common.v1 import money_pb2
from mesh import identifiers, money, protoconv
from mesh.cache import Cache
from mesh.errors import AlreadyExists, NotFound, Violations
from services.inventory import domain
from services.inventory.adapters import InventoryUnitOfWork
from services.inventory.domain import LedgerEntry, LedgerKind, StockLevel

_Created = TypeVar("_Created", domain.Product, domain.Warehouse)


def create_product(uow: InventoryUnitOfWork, cmd: domain.CreateProduct) -> domain.Product:
    product = domain.validate_product(cmd)
    return _create_once(uow, ("product", product.sku), product, lambda sku: uow.catalog.product(sku),
                        lambda new: uow.catalog.add_product(new),
                        f"SKU {product.sku} already exists with other attributes")


def create_warehouse(uow: InventoryUnitOfWork, cmd: domain.CreateWarehouse) -> domain.Warehouse:
    warehouse = domain.validate_warehouse(cmd)
    return _create_once(uow, ("warehouse", warehouse.code), warehouse, lambda code: uow.catalog.warehouse(code),
                        lambda new: uow.catalog.add_warehouse(new),
                        f"warehouse {warehouse.code} already exists with another name")


def _create_once(uow: InventoryUnitOfWork, ref: tuple[str, str], new: _Created, find: Callable[[str], _Created | None],
                 add: Callable[[_Created], object], conflict: str) -> _Created:
    """A repeat of the create that made it is answered with it; a create of the same key with
    other attributes is ALREADY_EXISTS. The lock makes a twin create wait, then find this one
    (rather than fail on the key). find and add run inside the transaction: uow.catalog exists only
    once `with uow` has started it, so they reach it when called, not when passed."""
    with uow:
        uow.lock(*ref)
        existing = find(ref[1])
        if existing is not None:
            if existing != new:
                raise AlreadyExists(conflict)
            return existing
        add(new)
        uow.commit()
    return new


def get_product(uow: InventoryUnitOfWork, sku: str) -> domain.Product:
    v = Violations()
    identifiers.check_sku(v, "sku", sku)
    v.raise_if_any()
    with uow:
        product = uow.catalog.product(sku)
    if product is None:
        raise NotFound(f"no product with SKU {sku}")
    return product


def _cache_key(sku: str, warehouse_code: str) -> str:
    return f"stock:{warehouse_code}:{sku}"


def _encode(level: StockLevel) -> bytes:
    return f"{level.on_hand}:{level.reserved}:{level.reorder_point}:{level.reorder_quantity}".encode()


@functools.lru_cache(maxsize=8192)
def _decode(sku: str, warehouse_code: str, version: int, raw: bytes) -> StockLevel:
    """The level a cached value holds; remembered, as hot SKUs are read far more often than they change."""
    on_hand, reserved, point, quantity = (int(x) for x in raw.split(b":"))
    return StockLevel(sku, warehouse_code, on_hand, reserved, version, point, quantity)


def _publish_after_commit(uow: InventoryUnitOfWork, cache: Cache, levels: list[StockLevel]) -> None:
    """Raises reorder alerts for the changed levels, and puts them in the cache once
    the transaction commits."""
    from erp.events.v1 import inventory_events_pb2 as ev

    for level in levels:
        signal = domain.reorder_signal(level)
        if signal == "alert":
            uow.stock.set_reorder_alerted(level.sku, level.warehouse_code, True)
            uow.emit(aggregate_type="stock", aggregate_id=f"{level.warehouse_code}/{level.sku}",
                     version=level.version, payload=ev.StockBelowReorderPoint(
                         sku=level.sku, warehouse_code=level.warehouse_code, available=level.available,
                         reorder_point=level.reorder_point, reorder_quantity=level.reorder_quantity))
        elif signal == "rearm":
            uow.stock.set_reorder_alerted(level.sku, level.warehouse_code, False)

    def refresh() -> None:
        cache.set_many_if_newer([(_cache_key(level.sku, level.warehouse_code), level.version, _encode(level))
                                 for level in levels])

    uow.after_commit(refresh)


def get_stock(new_uow: Callable[[], InventoryUnitOfWork], cache: Cache, sku: str, warehouse_code: str) -> StockLevel:
    """Read-through: this process's copy, then Redis, then PostgreSQL. Never used for reservations.
    The request is checked once this process's copy has missed: a key held here was stored for a
    valid SKU and warehouse code, and no other pair of strings names it (neither holds a ':')."""

    def check() -> None:
        v = Violations()
        identifiers.check_sku(v, "sku", sku)
        identifiers.check_warehouse(v, "warehouse_code", warehouse_code)
        v.raise_if_any()

    def load() -> tuple[int, bytes]:
        with new_uow() as uow:
            level = uow.stock.get(sku, warehouse_code)
            if level is None:
                skus, codes = uow.stock.existing([(sku, warehouse_code)])
                if sku not in skus:
                    raise NotFound(f"no product with SKU {sku}")
                if warehouse_code not in codes:
                    raise NotFound(f"no warehouse {warehouse_code}")
                level = StockLevel.empty(sku, warehouse_code)
        return level.version, _encode(level)

    return _decode(sku, warehouse_code, *cache.read_through(_cache_key(sku, warehouse_code), load, check))


def batch_get_stock(uow: InventoryUnitOfWork,
                    keys: list[tuple[str, str]]) -> tuple[list[StockLevel], list[tuple[str, str]]]:
    v = Violations()
    v.check(0 < len(keys) <= domain.MAX_BATCH, "keys", f"must hold 1-{domain.MAX_BATCH} entries")
    for i, (sku, code) in enumerate(keys):
        identifiers.check_sku(v, f"keys[{i}].sku", sku)
        identifiers.check_warehouse(v, f"keys[{i}].warehouse_code", code)
    v.raise_if_any()
    with uow:
        found = uow.stock.many(list(set(keys)))
        skus, codes = uow.stock.existing(keys) if len(found) < len(set(keys)) else (set(), set())
    levels, missing = [], []
    for sku, code in keys:
        if (sku, code) in found:
            levels.append(found[(sku, code)])
        elif sku in skus and code in codes:
            levels.append(StockLevel.empty(sku, code))
        else:
            missing.append((sku, code))
    return levels, missing


def _stock_row(uow: InventoryUnitOfWork, sku: str, warehouse_code: str, for_update: bool = False) -> StockLevel:
    """The stock row that exists already (ensure_row, or an earlier adjustment, made it)."""
    level = uow.stock.get(sku, warehouse_code, for_update=for_update)
    if level is None:
        raise LookupError(f"no stock row for {sku} in {warehouse_code}")
    return level


def adjust_stock(uow: InventoryUnitOfWork, cache: Cache, cmd: domain.AdjustStock, currency: str = "EUR") -> StockLevel:
    """Changes on hand by an adjustment, valued at the cost in force (domain.put_in, take_out)."""
    domain.validate_adjustment(cmd)
    with uow:
        target = uow.stock.request_target(cmd.request_id)
        if target is not None:  # a repeat: answer as the first time did, change nothing
            if target != (cmd.sku, cmd.warehouse_code):
                raise AlreadyExists(f"request_id {cmd.request_id} was used for another adjustment")
            return _stock_row(uow, cmd.sku, cmd.warehouse_code)
        _ensure_stock_row(uow, cmd.sku, cmd.warehouse_code)
        level = domain.adjusted(_stock_row(uow, cmd.sku, cmd.warehouse_code, for_update=True), cmd.quantity_delta)
        before = uow.stock.valuation(cmd.sku, cmd.warehouse_code)  # the row is ours: nobody moves it now
        if cmd.quantity_delta > 0:
            after, value = domain.put_in(before, cmd.quantity_delta, domain.opening_cost(cmd, before))
        else:
            after, value = domain.take_out(before, -cmd.quantity_delta)
            value = -value
        uow.stock.save(level)
        uow.stock.set_valuation(cmd.sku, cmd.warehouse_code, after.value, after.unit_cost)
        uow.stock.append(LedgerEntry(cmd.sku, cmd.warehouse_code, LedgerKind.ADJUSTMENT, cmd.quantity_delta, 0,
                                     cmd.reason.strip(), reference=cmd.request_id, request_id=cmd.request_id,
                                     value_delta=value, unit_cost=after.unit_cost))
        uow.emit(aggregate_type="stock", aggregate_id=f"{cmd.warehouse_code}/{cmd.sku}", version=level.version,
                 payload=_stock_adjusted(cmd, level, value, after.unit_cost, currency))
        _publish_after_commit(uow, cache, [level])
        uow.commit()
    return level


def _money(currency: str, amount: Decimal) -> money_pb2.Money:
    """A stock value in cents (unit costs keep their 4 places where they are carried)."""
    return protoconv.money(currency, amount.quantize(money.CENT))


def _stock_adjusted(cmd: domain.AdjustStock, level: StockLevel, value: Decimal, unit_cost: Decimal, currency: str):
    from erp.events.v1 import inventory_events_pb2 as ev

    return ev.StockAdjusted(sku=cmd.sku, warehouse_code=cmd.warehouse_code, quantity_delta=cmd.quantity_delta,
                            on_hand=level.on_hand, reason=cmd.reason.strip(), value_delta=_money(currency, value),
                            unit_cost=domain.format_cost(unit_cost), request_id=cmd.request_id)


def reserve(uow: InventoryUnitOfWork, cache: Cache, cmd: domain.ReserveOrder) -> bool:
    """Reserves every line of an order or none, and emits the outcome. Runs inside the
    caller's transaction. Returns whether the stock was reserved.

    Once per order: an OrderPlaced published again under a new event id (orders drives a saga
    whose answer was lost) gets the first answer again and reserves nothing more."""
    from erp.events.v1 import inventory_events_pb2 as ev

    merged = domain.merge_lines(cmd.lines)
    # one statement: what was done with the order already, and its balances locked in key order
    # (so reservations cannot deadlock)
    seen, skus, codes, levels = uow.stock.before_reserving(cmd.order_id, [(sku, wh) for sku, wh, _ in merged])
    if seen.reserved:
        uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1, payload=_stock_reserved(cmd))
        return True
    if seen.failure is not None:
        uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1,
                 payload=ev.StockReservationFailed.FromString(seen.failure))
        return False
    if seen.closed:
        return False  # rejected or cancelled before this OrderPlaced arrived: reserve nothing, nobody waits
    failed: dict[tuple[str, str], tuple[int, ev.ReservationFailureReason]] = {}  # key -> (available, reason)
    for sku, wh, qty in merged:
        if any(line.quantity <= 0 for line in cmd.lines if (line.sku, line.warehouse_code) == (sku, wh)):
            # Never trust an event's numbers: a negative reservation would release
            # stock that other orders hold.
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_INVALID_QUANTITY)
        elif sku not in skus:
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_SKU)
        elif wh not in codes:
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_WAREHOUSE)
        elif (available := levels[(sku, wh)].available if (sku, wh) in levels else 0) < qty:
            failed[(sku, wh)] = (available, ev.RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK)
    if failed:  # all or none: nothing was changed
        lines = [ev.UnreservableLine(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                                     requested=line.quantity, available=failed[(line.sku, line.warehouse_code)][0],
                                     reason=failed[(line.sku, line.warehouse_code)][1])
                 for line in cmd.lines if (line.sku, line.warehouse_code) in failed]
        answer = ev.StockReservationFailed(order_id=cmd.order_id, lines=lines)
        uow.stock.add_failure(cmd.order_id, answer.SerializeToString())
        uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1, payload=answer)
        return False
    reserved = uow.stock.reserve_order(cmd.order_id, [(levels[(sku, wh)], qty) for sku, wh, qty in merged],
                                       "order reservation")
    uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1, payload=_stock_reserved(cmd))
    _publish_after_commit(uow, cache, reserved)
    return True


def _stock_reserved(cmd: domain.ReserveOrder):
    from erp.events.v1 import inventory_events_pb2 as ev

    return ev.StockReserved(order_id=cmd.order_id, lines=[
        ev.ReservedLine(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                        quantity=line.quantity) for line in cmd.lines])


def _reserved_lines(lines: list[tuple[str, str, int]]):
    from erp.events.v1 import inventory_events_pb2 as ev

    return [ev.ReservedLine(sku=sku, warehouse_code=wh, quantity=qty) for sku, wh, qty in lines]


def release(uow: InventoryUnitOfWork, cache: Cache, order_id: str) -> None:
    """Gives an order's reserved stock back (order rejected or cancelled). Runs inside the
    caller's transaction. Without a reservation, remembers the order as closed so that a
    late OrderPlaced reserves nothing."""
    from erp.events.v1 import inventory_events_pb2 as ev

    uow.stock.close(order_id)
    lines = uow.stock.reservations_for(order_id)
    if not lines:
        return
    levels = []
    for sku, wh, qty in lines:  # sorted: the same lock order as reserve()
        levels.append(uow.stock.move(sku, wh, 0, -qty))
        uow.stock.append(LedgerEntry(sku, wh, LedgerKind.RELEASE, 0, -qty, "reservation released",
                                     reference=order_id))
    uow.stock.set_reservations_status(order_id, "released")
    uow.emit(aggregate_type="reservation", aggregate_id=order_id, version=2,
             payload=ev.StockReleased(order_id=order_id, lines=_reserved_lines(lines)))
    _publish_after_commit(uow, cache, levels)


def _valuation_before(uow: InventoryUnitOfWork, sku: str, warehouse_code: str, on_hand_delta: int) -> domain.Valuation:
    """The valuation as it was before a move this transaction just made (the move's UPDATE
    holds the balance's row, so no other writer comes between)."""
    now = uow.stock.valuation(sku, warehouse_code)
    return domain.Valuation(now.quantity - on_hand_delta, now.value, now.unit_cost)


def issue(uow: InventoryUnitOfWork, cache: Cache, order_id: str, currency: str = "EUR") -> None:
    """Takes an order's reserved stock out of the warehouse (shipment) at the moving average
    cost in force, and records that cost in the ledger and in StockIssued. Runs inside the
    caller's transaction; an order with nothing reserved (already issued) changes nothing."""
    from erp.events.v1 import inventory_events_pb2 as ev

    lines = uow.stock.reservations_for(order_id)
    if not lines:
        return
    levels, issued = [], []
    for sku, wh, qty in lines:
        levels.append(uow.stock.move(sku, wh, -qty, -qty))
        before = _valuation_before(uow, sku, wh, -qty)
        after, cost = domain.take_out(before, qty)
        uow.stock.set_valuation(sku, wh, after.value, after.unit_cost)
        uow.stock.append(LedgerEntry(sku, wh, LedgerKind.ISSUE, -qty, -qty, "shipped", reference=order_id,
                                     value_delta=-cost, unit_cost=after.unit_cost))
        issued.append(ev.ReservedLine(sku=sku, warehouse_code=wh, quantity=qty, cost=_money(currency, cost),
                                      unit_cost=domain.format_cost(before.unit_cost if before.quantity == 0
                                                                   else before.value / before.quantity)))
    uow.stock.set_reservations_status(order_id, "issued")
    uow.emit(aggregate_type="reservation", aggregate_id=order_id, version=3,
             payload=ev.StockIssued(order_id=order_id, lines=issued))
    _publish_after_commit(uow, cache, levels)


def receive(uow: InventoryUnitOfWork, cache: Cache, receipt_id: str, warehouse_code: str, lines: list[tuple],
            currency: str = "",
            valuation_currency: str = "EUR") -> bool:
    """Raises on hand by a goods receipt's lines ((line_no, sku, quantity[, unit price]))
    through the ledger, adding quantity x purchase price to the stock's value (a line
    without a price comes in at the cost in force). Runs inside the caller's transaction.
    Each line's ledger entry carries the receipt and line as its request id, so a receipt
    counts once however often it is delivered; returns False for a repeat. A SKU or
    warehouse inventory does not know, or a price in another currency than the stock is
    valued in, is a fault (the consumer retries, then dead-letters the event)."""
    from erp.events.v1 import inventory_events_pb2 as ev

    if currency and currency != valuation_currency:
        raise ValueError(f"goods receipt {receipt_id} is priced in {currency}; stock is valued in "
                         f"{valuation_currency}")
    prices = {line[0]: (line[3] if len(line) > 3 else None) for line in lines}
    lines = [tuple(line[:3]) for line in lines]
    if any(quantity <= 0 for _, _, quantity in lines):
        raise ValueError(f"goods receipt {receipt_id} has a line without a positive quantity")
    keys = {line_no: f"receipt:{receipt_id}:{line_no}" for line_no, _, _ in lines}
    if not lines or uow.stock.request_target(keys[lines[0][0]]) is not None:
        return False
    skus, codes = uow.stock.existing([(sku, warehouse_code) for _, sku, _ in lines])
    unknown = sorted({sku for _, sku, _ in lines} - skus) + ([] if warehouse_code in codes else [warehouse_code])
    if unknown:
        raise NotFound(f"goods receipt {receipt_id} names what inventory does not know: {', '.join(unknown)}")
    levels = []
    for line_no, sku, quantity in sorted(lines, key=lambda x: (x[1], x[0])):  # SKU order: the lock order
        uow.stock.ensure_row(sku, warehouse_code)
        level = uow.stock.move(sku, warehouse_code, quantity, 0)
        before = _valuation_before(uow, sku, warehouse_code, quantity)
        price = prices.get(line_no)
        if price is None:
            after, value = domain.put_in(before, quantity)
        else:
            after, value = domain.receive_into(before, quantity, price)
        uow.stock.set_valuation(sku, warehouse_code, after.value, after.unit_cost)
        uow.stock.append(LedgerEntry(sku, warehouse_code, LedgerKind.RECEIPT, quantity, 0, "goods received",
                                     reference=receipt_id, request_id=keys[line_no], value_delta=value,
                                     unit_cost=after.unit_cost))
        uow.emit(aggregate_type="stock", aggregate_id=f"{warehouse_code}/{sku}", version=level.version,
                 payload=ev.StockAdjusted(sku=sku, warehouse_code=warehouse_code, quantity_delta=quantity,
                                          on_hand=level.on_hand, reason=f"goods receipt {receipt_id}",
                                          value_delta=_money(valuation_currency, value),
                                          unit_cost=domain.format_cost(after.unit_cost),
                                          goods_receipt_id=receipt_id, request_id=keys[line_no]))
        levels.append(level)
    _publish_after_commit(uow, cache, levels)
    return True


def _ensure_stock_row(uow: InventoryUnitOfWork, sku: str, warehouse_code: str) -> None:
    """The stock row of a known product in a known warehouse, created at zero if new; NOT_FOUND
    naming whichever of the two does not exist."""
    skus, codes = uow.stock.existing([(sku, warehouse_code)])
    if sku not in skus:
        raise NotFound(f"no product with SKU {sku}")
    if warehouse_code not in codes:
        raise NotFound(f"no warehouse {warehouse_code}")
    uow.stock.ensure_row(sku, warehouse_code)


def set_reorder_point(uow: InventoryUnitOfWork, cache: Cache, cmd: domain.SetReorderPoint) -> StockLevel:
    domain.validate_reorder_point(cmd)
    with uow:
        _ensure_stock_row(uow, cmd.sku, cmd.warehouse_code)
        uow.stock.get(cmd.sku, cmd.warehouse_code, for_update=True)
        level = uow.stock.set_reorder(cmd.sku, cmd.warehouse_code, cmd.reorder_point, cmd.reorder_quantity)
        _publish_after_commit(uow, cache, [level])  # alert at once if already below the new point
        # No ledger entry, so the version is unchanged and set_if_newer keeps the old
        # cached copy: drop it instead.
        uow.after_commit(lambda: cache.delete(_cache_key(cmd.sku, cmd.warehouse_code)))
        uow.commit()
    return level


def _after(key: list[str | int] | None) -> tuple[str, str] | None:
    """A (warehouse, SKU) page key, as paging.decode checked it."""
    match key:
        case [str(warehouse_code), str(sku)]:
            return warehouse_code, sku
    return None


def list_stock(uow: InventoryUnitOfWork, *, warehouse_code: str, sku_prefix: str, below_reorder_point: bool,
               page_size: int,
               page_token: str) -> tuple[list[StockLevel], str]:
    from mesh import paging

    v = Violations()
    if warehouse_code:
        identifiers.check_warehouse(v, "warehouse_code", warehouse_code)
    v.check(len(sku_prefix) <= 64, "sku_prefix", "must be at most 64 characters")
    v.raise_if_any()
    size = paging.page_size(page_size)
    filters = {"warehouse": warehouse_code, "prefix": sku_prefix, "below": below_reorder_point}
    after = _after(paging.decode(page_token, filters, (str, str)))
    with uow:
        levels = uow.stock.page(warehouse_code=warehouse_code, sku_prefix=sku_prefix,
                                below_reorder_point=below_reorder_point, after=after, limit=size + 1)
    token = paging.next_token(levels, size, lambda x: [x.warehouse_code, x.sku], filters)
    return levels[:size], token


def stock_valuation(uow: InventoryUnitOfWork, *, as_of, warehouse_code: str, sku_prefix: str, page_size: int,
                    page_token: str):
    """(lines, (total quantity, total value), next page token): quantity, unit cost and value
    per SKU and warehouse, now (the balances) or as of a moment (the ledger summed up to it).
    Totals cover every line the filters select; the page token carries the moment, so every
    page of one report values the same stock."""
    import datetime as dt

    from mesh import paging

    v = Violations()
    if warehouse_code:
        identifiers.check_warehouse(v, "warehouse_code", warehouse_code)
    v.check(len(sku_prefix) <= 64, "sku_prefix", "must be at most 64 characters")
    v.raise_if_any()
    size = paging.page_size(page_size)
    moment = as_of or dt.datetime.now(dt.UTC)
    filters = {"as_of": moment.isoformat() if as_of else "", "warehouse": warehouse_code, "prefix": sku_prefix}
    after = _after(paging.decode(page_token, filters, (str, str)))
    with uow:
        lines = uow.stock.valuation_page(as_of=as_of, warehouse_code=warehouse_code, sku_prefix=sku_prefix,
                                         after=after, limit=size + 1)
        totals = uow.stock.valuation_totals(as_of=as_of, warehouse_code=warehouse_code, sku_prefix=sku_prefix)
    token = paging.next_token(lines, size, lambda x: [x[1], x[0]], filters)
    return lines[:size], totals, moment, token
