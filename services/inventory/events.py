"""The events inventory consumes, and what it does with each."""
from __future__ import annotations

from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh.events.consumer import EventHandlers
from services.inventory import domain, handlers


def build(cache) -> EventHandlers:
    consumes = EventHandlers(consumer="inventory")

    @consumes.on(orders_ev.OrderPlaced)
    def on_order_placed(uow, event: orders_ev.OrderPlaced, _envelope) -> None:
        lines = tuple(domain.ReserveLine(line.line_no, line.sku, line.warehouse_code, line.quantity)
                      for line in event.lines)
        handlers.reserve(uow, cache, domain.ReserveOrder(event.order_id, lines))

    return consumes
