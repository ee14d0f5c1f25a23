"""The events orders consumes, and what it does with each."""
from __future__ import annotations

from erp.events.v1 import inventory_events_pb2 as inv_ev
from mesh.events.consumer import EventHandlers
from services.orders import domain, handlers


def build() -> EventHandlers:
    consumes = EventHandlers(consumer="orders")

    @consumes.on(inv_ev.StockReserved)
    def on_stock_reserved(uow, event: inv_ev.StockReserved, _envelope) -> None:
        handlers.on_stock_reserved(uow, event.order_id)

    @consumes.on(inv_ev.StockReservationFailed)
    def on_reservation_failed(uow, event: inv_ev.StockReservationFailed, _envelope) -> None:
        failures = [(line.line_no, line.sku, line.warehouse_code, line.requested, line.available,
                     inv_ev.ReservationFailureReason.Name(line.reason).removeprefix("RESERVATION_FAILURE_REASON_")
                     .lower().replace("_", " "))
                    for line in event.lines]
        handlers.on_stock_reservation_failed(uow, event.order_id, domain.rejection_reason(failures))

    return consumes
