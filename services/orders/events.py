"""The events orders consumes: the saga's answers, the invoice and the payments."""
from __future__ import annotations

from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from mesh import locks, money
from mesh.events.consumer import EventHandlers
from services.orders import domain, handlers


def _amount(m) -> money.Decimal:
    value = money.parse_amount(m.amount)
    if value is None:
        raise ValueError(f"event carries a malformed amount {m.amount!r}")
    return value


ORDER = locks.by("order", "order_id")  # every answer changes its order


def build() -> EventHandlers:
    consumes = EventHandlers(consumer="orders")

    @consumes.on(inv_ev.StockReserved, lock=ORDER)
    def on_stock_reserved(uow, event: inv_ev.StockReserved, _envelope) -> None:
        handlers.on_stock_answer(uow, event.order_id, ok=True)

    @consumes.on(inv_ev.StockReservationFailed, lock=ORDER)
    def on_reservation_failed(uow, event: inv_ev.StockReservationFailed, _envelope) -> None:
        failures = [(line.line_no, line.sku, line.warehouse_code, line.requested, line.available,
                     inv_ev.ReservationFailureReason.Name(line.reason).removeprefix("RESERVATION_FAILURE_REASON_")
                     .lower().replace("_", " "))
                    for line in event.lines]
        handlers.on_stock_answer(uow, event.order_id, ok=False, reason=domain.rejection_reason(failures))

    @consumes.on(crm_ev.CreditApproved, lock=ORDER)
    def on_credit_approved(uow, event: crm_ev.CreditApproved, _envelope) -> None:
        handlers.on_credit_answer(uow, event.order_id, ok=True)

    @consumes.on(crm_ev.CreditRejected, lock=ORDER)
    def on_credit_rejected(uow, event: crm_ev.CreditRejected, _envelope) -> None:
        handlers.on_credit_answer(uow, event.order_id, ok=False, reason=f"credit rejected: {event.reason}")

    @consumes.on(fin_ev.InvoiceIssued, lock=ORDER)
    def on_invoice_issued(uow, event: fin_ev.InvoiceIssued, _envelope) -> None:
        handlers.on_invoice_issued(uow, event.order_id, event.invoice_id, _amount(event.total))

    @consumes.on(fin_ev.PaymentReceived, lock=ORDER)
    def on_payment_received(uow, event: fin_ev.PaymentReceived, _envelope) -> None:
        handlers.on_payment_received(uow, event.order_id, _amount(event.amount))

    return consumes
