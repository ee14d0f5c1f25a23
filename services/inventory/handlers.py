"""Inventory's use cases. Command handlers own their transaction; `reserve` runs inside
the event consumer's transaction (with the inbox row) and does not commit."""
from __future__ import annotations

from mesh.errors import AlreadyExists, NotFound, Violations
from services.inventory import domain
from services.inventory.domain import LedgerEntry, LedgerKind, StockLevel


def create_product(uow, cmd: domain.CreateProduct) -> domain.Product:
    product = domain.validate_product(cmd)
    with uow:
        existing = uow.catalog.product(product.sku)
        if existing is not None:
            if existing != product:
                raise AlreadyExists(f"SKU {product.sku} already exists with other attributes")
            return existing
        uow.catalog.add_product(product)
        uow.commit()
    return product


def create_warehouse(uow, cmd: domain.CreateWarehouse) -> domain.Warehouse:
    warehouse = domain.validate_warehouse(cmd)
    with uow:
        existing = uow.catalog.warehouse(warehouse.code)
        if existing is not None:
            if existing != warehouse:
                raise AlreadyExists(f"warehouse {warehouse.code} already exists with another name")
            return existing
        uow.catalog.add_warehouse(warehouse)
        uow.commit()
    return warehouse


def get_product(uow, sku: str) -> domain.Product:
    v = Violations()
    domain.check_sku(v, "sku", sku)
    v.raise_if_any()
    with uow:
        product = uow.catalog.product(sku)
    if product is None:
        raise NotFound(f"no product with SKU {sku}")
    return product


def _cache_key(sku: str, warehouse_code: str) -> str:
    return f"stock:{warehouse_code}:{sku}"


def _encode(level: StockLevel) -> bytes:
    return f"{level.on_hand}:{level.reserved}".encode()


def _decode(sku: str, warehouse_code: str, version: int, raw: bytes) -> StockLevel:
    on_hand, reserved = raw.split(b":")
    return StockLevel(sku, warehouse_code, int(on_hand), int(reserved), version)


def _publish_after_commit(uow, cache, levels: list[StockLevel]) -> None:
    """Puts the committed levels in the cache once the transaction commits."""
    def refresh() -> None:
        for level in levels:
            cache.set_if_newer(_cache_key(level.sku, level.warehouse_code), level.version, _encode(level))

    uow.after_commit(refresh)


def get_stock(uow, cache, sku: str, warehouse_code: str) -> StockLevel:
    """Read-through: Redis first, then PostgreSQL. Never used for reservations."""
    v = Violations()
    domain.check_sku(v, "sku", sku)
    domain.check_warehouse(v, "warehouse_code", warehouse_code)
    v.raise_if_any()
    key = _cache_key(sku, warehouse_code)
    cached = cache.get_versioned(key)
    if cached is not None:
        return _decode(sku, warehouse_code, *cached)
    with uow:
        level = uow.stock.get(sku, warehouse_code)
        if level is None:
            skus, codes = uow.stock.existing([(sku, warehouse_code)])
            if sku not in skus:
                raise NotFound(f"no product with SKU {sku}")
            if warehouse_code not in codes:
                raise NotFound(f"no warehouse {warehouse_code}")
            level = StockLevel.empty(sku, warehouse_code)
    cache.set_if_newer(key, level.version, _encode(level))
    return level


def batch_get_stock(uow, keys: list[tuple[str, str]]) -> tuple[list[StockLevel], list[tuple[str, str]]]:
    v = Violations()
    v.check(0 < len(keys) <= domain.MAX_BATCH, "keys", f"must hold 1-{domain.MAX_BATCH} entries")
    for i, (sku, code) in enumerate(keys):
        domain.check_sku(v, f"keys[{i}].sku", sku)
        domain.check_warehouse(v, f"keys[{i}].warehouse_code", code)
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


def adjust_stock(uow, cache, cmd: domain.AdjustStock) -> StockLevel:
    domain.validate_adjustment(cmd)
    with uow:
        target = uow.stock.request_target(cmd.request_id)
        if target is not None:  # a repeat: answer as the first time did, change nothing
            if target != (cmd.sku, cmd.warehouse_code):
                raise AlreadyExists(f"request_id {cmd.request_id} was used for another adjustment")
            return uow.stock.get(cmd.sku, cmd.warehouse_code)
        skus, codes = uow.stock.existing([(cmd.sku, cmd.warehouse_code)])
        if cmd.sku not in skus:
            raise NotFound(f"no product with SKU {cmd.sku}")
        if cmd.warehouse_code not in codes:
            raise NotFound(f"no warehouse {cmd.warehouse_code}")
        uow.stock.ensure_row(cmd.sku, cmd.warehouse_code)
        level = domain.adjusted(uow.stock.get(cmd.sku, cmd.warehouse_code, for_update=True), cmd.quantity_delta)
        uow.stock.save(level)
        uow.stock.append(LedgerEntry(cmd.sku, cmd.warehouse_code, LedgerKind.ADJUSTMENT, cmd.quantity_delta, 0,
                                     cmd.reason.strip(), reference=cmd.request_id, request_id=cmd.request_id))
        uow.emit(aggregate_type="stock", aggregate_id=f"{cmd.warehouse_code}/{cmd.sku}", version=level.version,
                 payload=_stock_adjusted(cmd, level))
        _publish_after_commit(uow, cache, [level])
        uow.commit()
    return level


def _stock_adjusted(cmd: domain.AdjustStock, level: StockLevel):
    from erp.events.v1 import inventory_events_pb2 as ev

    return ev.StockAdjusted(sku=cmd.sku, warehouse_code=cmd.warehouse_code, quantity_delta=cmd.quantity_delta,
                            on_hand=level.on_hand, reason=cmd.reason.strip())


def reserve(uow, cache, cmd: domain.ReserveOrder) -> bool:
    """Reserves every line of an order or none, and emits the outcome. Runs inside the
    caller's transaction. Returns whether the stock was reserved."""
    from erp.events.v1 import inventory_events_pb2 as ev

    if uow.stock.has_reservation(cmd.order_id):
        return True  # already reserved by an earlier delivery
    merged = domain.merge_lines(cmd.lines)
    keys = [(sku, wh) for sku, wh, _ in merged]
    skus, codes = uow.stock.existing(keys)
    failed: dict[tuple[str, str], tuple[int, int]] = {}  # key -> (available, reason)
    savepoint = uow.stock.savepoint()
    reserved: list[StockLevel] = []
    for sku, wh, qty in merged:
        if any(line.quantity <= 0 for line in cmd.lines if (line.sku, line.warehouse_code) == (sku, wh)):
            # Never trust an event's numbers: a negative reservation would release
            # stock that other orders hold.
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_INVALID_QUANTITY)
            continue
        if sku not in skus:
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_SKU)
            continue
        if wh not in codes:
            failed[(sku, wh)] = (0, ev.RESERVATION_FAILURE_REASON_UNKNOWN_WAREHOUSE)
            continue
        uow.stock.ensure_row(sku, wh)
        level = uow.stock.try_reserve(sku, wh, qty)
        if level is None:
            current = uow.stock.get(sku, wh)
            failed[(sku, wh)] = (current.available if current else 0,
                                 ev.RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK)
        else:
            reserved.append(level)
    if failed:
        savepoint.rollback()  # all or none
        lines = [ev.UnreservableLine(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                                     requested=line.quantity, available=failed[(line.sku, line.warehouse_code)][0],
                                     reason=failed[(line.sku, line.warehouse_code)][1])
                 for line in cmd.lines if (line.sku, line.warehouse_code) in failed]
        uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1,
                 payload=ev.StockReservationFailed(order_id=cmd.order_id, lines=lines))
        return False
    savepoint.commit()
    for sku, wh, qty in merged:
        uow.stock.add_reservation(cmd.order_id, sku, wh, qty)
        uow.stock.append(LedgerEntry(sku, wh, LedgerKind.RESERVATION, 0, qty, "order reservation",
                                     reference=cmd.order_id))
    uow.emit(aggregate_type="reservation", aggregate_id=cmd.order_id, version=1, payload=ev.StockReserved(
        order_id=cmd.order_id,
        lines=[ev.ReservedLine(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                               quantity=line.quantity) for line in cmd.lines]))
    _publish_after_commit(uow, cache, reserved)
    return True
