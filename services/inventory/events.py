"""The events inventory consumes, and what it does with each: sales orders reserve,\nrelease and issue stock; goods receipts raise it."""
from __future__ import annotations

from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks, money
from mesh.cache import Cache
from mesh.events.consumer import EventHandlers
from mesh.events.envelope import Event
from services.inventory import domain, handlers
from services.inventory.adapters import InventoryUnitOfWork

# An order's reservation: reserve, release and issue of one order serialize (a release that
# overtakes its reservation must not commit beside it, or the stock stays reserved for good).
ORDER = locks.by("order", "order_id")


def _read_reservations(uow: InventoryUnitOfWork, events: list[Event]) -> None:
    """What a batch's reservations look at, read and locked in two statements before its handlers run."""
    orders = [(event.payload.order_id, [(line.sku, line.warehouse_code) for line in event.payload.lines])
              for event in events if isinstance(event.payload, orders_ev.OrderPlaced)]
    if orders:
        uow.stock.read_all(orders)


def build(cache: Cache, currency: str = "EUR") -> EventHandlers:
    """currency: what stock is valued in (ERP_INVENTORY_CURRENCY)."""
    consumes = EventHandlers(consumer="inventory", read_first=_read_reservations)

    @consumes.on(orders_ev.OrderPlaced, lock=ORDER)
    def on_order_placed(uow: InventoryUnitOfWork, event: orders_ev.OrderPlaced, _envelope: EventEnvelope) -> None:
        lines = tuple(domain.ReserveLine(line.line_no, line.sku, line.warehouse_code, line.quantity)
                      for line in event.lines)
        handlers.reserve(uow, cache, domain.ReserveOrder(event.order_id, lines))

    @consumes.on(orders_ev.OrderRejected, lock=ORDER)
    def on_order_rejected(uow: InventoryUnitOfWork, event: orders_ev.OrderRejected, _envelope: EventEnvelope) -> None:
        handlers.release(uow, cache, event.order_id)  # compensation: the saga failed

    @consumes.on(orders_ev.OrderCancelled, lock=ORDER)
    def on_order_cancelled(uow: InventoryUnitOfWork, event: orders_ev.OrderCancelled, _envelope: EventEnvelope) -> None:
        handlers.release(uow, cache, event.order_id)

    @consumes.on(orders_ev.OrderShipped, lock=ORDER)
    def on_order_shipped(uow: InventoryUnitOfWork, event: orders_ev.OrderShipped, _envelope: EventEnvelope) -> None:
        handlers.issue(uow, cache, event.order_id, currency)

    @consumes.on(procurement_ev.GoodsReceived, lock=locks.by("goods_receipt", "receipt_id"))
    def on_goods_received(uow: InventoryUnitOfWork, event: procurement_ev.GoodsReceived,
                          _envelope: EventEnvelope) -> None:
        # A line without a price (an event from before prices were carried) comes in at the
        # cost in force; a price that does not parse is a fault.
        amounts = [money.parse_amount(line.unit_price.amount) if line.unit_price.amount else None
                   for line in event.lines]
        currencies = {line.unit_price.currency_code for line in event.lines if line.unit_price.amount}
        if any(line.unit_price.amount and (amount is None or amount < 0)
               for line, amount in zip(event.lines, amounts, strict=True)) or len(currencies) > 1:
            raise ValueError(f"goods receipt {event.receipt_id} has a line with an invalid purchase price")
        handlers.receive(uow, cache, event.receipt_id, event.warehouse_code,
                         [(line.line_no, line.sku, line.quantity, amount) for line, amount in zip(event.lines, amounts, strict=True)],
                         currency=next(iter(currencies), ""), valuation_currency=currency)

    return consumes
