"""The events inventory consumes, and what it does with each: sales orders reserve,\nrelease and issue stock; goods receipts raise it."""
from __future__ import annotations

from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from mesh import locks
from mesh.events.consumer import EventHandlers
from services.inventory import domain, handlers

# An order's reservation: reserve, release and issue of one order serialize (a release that
# overtakes its reservation must not commit beside it, or the stock stays reserved for good).
ORDER = locks.by("order", "order_id")


def build(cache) -> EventHandlers:
    consumes = EventHandlers(consumer="inventory")

    @consumes.on(orders_ev.OrderPlaced, lock=ORDER)
    def on_order_placed(uow, event: orders_ev.OrderPlaced, _envelope) -> None:
        lines = tuple(domain.ReserveLine(line.line_no, line.sku, line.warehouse_code, line.quantity)
                      for line in event.lines)
        handlers.reserve(uow, cache, domain.ReserveOrder(event.order_id, lines))

    @consumes.on(orders_ev.OrderRejected, lock=ORDER)
    def on_order_rejected(uow, event: orders_ev.OrderRejected, _envelope) -> None:
        handlers.release(uow, cache, event.order_id)  # compensation: the saga failed

    @consumes.on(orders_ev.OrderCancelled, lock=ORDER)
    def on_order_cancelled(uow, event: orders_ev.OrderCancelled, _envelope) -> None:
        handlers.release(uow, cache, event.order_id)

    @consumes.on(orders_ev.OrderShipped, lock=ORDER)
    def on_order_shipped(uow, event: orders_ev.OrderShipped, _envelope) -> None:
        handlers.issue(uow, cache, event.order_id)

    @consumes.on(procurement_ev.GoodsReceived, lock=locks.by("goods_receipt", "receipt_id"))
    def on_goods_received(uow, event: procurement_ev.GoodsReceived, _envelope) -> None:
        handlers.receive(uow, cache, event.receipt_id, event.warehouse_code,
                         [(line.line_no, line.sku, line.quantity) for line in event.lines])

    return consumes
