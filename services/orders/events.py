"""The events orders consumes: the saga's answers, the invoice and the payments, and the
other steps of an order its timeline shows (stock released or issued, credit notes,
notifications). Each records its step on the order's timeline (services/orders/timeline.py)
before orders reacts to it, so the reaction's own step comes after it."""
from __future__ import annotations

from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import notification_events_pb2 as notif_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks
from mesh.events.consumer import EventHandlers
from mesh.events.envelope import Event
from mesh.protoconv import amount_of, moment_of, money_text
from services.orders import domain, handlers, timeline
from services.orders.adapters import OrdersUnitOfWork
from services.orders.timeline import StepKind


def _record(uow: OrdersUnitOfWork, envelope: EventEnvelope, order_id: str, kind: StepKind, detail: str,
            key: str = "") -> None:
    """The step the event tells of, at its time and by its source service."""
    handlers.record_step(uow, timeline.step(
        order_id, kind, envelope.source, moment_of(envelope.occurred_at), detail, key=key,
        event_id=envelope.event_id))


def _lines(verb: str, lines) -> str:
    return timeline.lines_detail(verb, ((line.sku, line.warehouse_code, line.quantity) for line in lines))


ORDER = locks.by("order", "order_id")  # every answer changes its order


def _order_if_any(payload) -> list[locks.AggregateRef]:
    """A notification about no sales order (a purchase order's) touches no order."""
    return [("order", payload.order_id)] if payload.order_id else []


# The payloads whose handlers change their order's row (the others only add a timeline step).
ORDER_ROW_EVENTS = (inv_ev.StockReserved, inv_ev.StockReservationFailed, crm_ev.CreditApproved, crm_ev.CreditRejected,
                    fin_ev.InvoiceIssued, fin_ev.PaymentReceived)


def _lock_order_rows(uow: OrdersUnitOfWork, events: list[Event]) -> None:
    """Locks and reads a batch's orders in one statement, in id order, before any of its handlers
    runs: each handler then finds its order read (and a second event about it, the first's change)."""
    uow.orders.lock([event.payload.order_id for event in events if isinstance(event.payload, ORDER_ROW_EVENTS)])


def build() -> EventHandlers:
    consumes = EventHandlers(consumer="orders", lock_first=_lock_order_rows)
    _saga_answers(consumes)
    _money_steps(consumes)
    _stock_steps(consumes)
    _notifications(consumes)
    return consumes


def _saga_answers(consumes: EventHandlers) -> None:
    @consumes.on(inv_ev.StockReserved, lock=ORDER)
    def on_stock_reserved(uow: OrdersUnitOfWork, event: inv_ev.StockReserved, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.STOCK_RESERVED, _lines("reserved", event.lines), key="stock")
        handlers.on_stock_answer(uow, event.order_id, ok=True)

    @consumes.on(inv_ev.StockReservationFailed, lock=ORDER)
    def on_reservation_failed(uow: OrdersUnitOfWork, event: inv_ev.StockReservationFailed,
                              envelope: EventEnvelope) -> None:
        failures = [(line.line_no, line.sku, line.warehouse_code, line.requested, line.available,
                     inv_ev.ReservationFailureReason.Name(line.reason).removeprefix("RESERVATION_FAILURE_REASON_")
                     .lower().replace("_", " "))
                    for line in event.lines]
        reason = domain.rejection_reason(failures)
        _record(uow, envelope, event.order_id, StepKind.STOCK_REFUSED, reason, key="stock")
        handlers.on_stock_answer(uow, event.order_id, ok=False, reason=reason)

    @consumes.on(crm_ev.CreditApproved, lock=ORDER)
    def on_credit_approved(uow: OrdersUnitOfWork, event: crm_ev.CreditApproved, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.CREDIT_APPROVED,
                f"exposure {money_text(event.exposure)} within the credit limit {money_text(event.credit_limit)}",
                key="credit")
        handlers.on_credit_answer(uow, event.order_id, ok=True)

    @consumes.on(crm_ev.CreditRejected, lock=ORDER)
    def on_credit_rejected(uow: OrdersUnitOfWork, event: crm_ev.CreditRejected, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.CREDIT_REJECTED, event.reason, key="credit")
        handlers.on_credit_answer(uow, event.order_id, ok=False, reason=f"credit rejected: {event.reason}")


def _money_steps(consumes: EventHandlers) -> None:
    @consumes.on(fin_ev.InvoiceIssued, lock=ORDER)
    def on_invoice_issued(uow: OrdersUnitOfWork, event: fin_ev.InvoiceIssued, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.INVOICED,
                f"invoice {event.number or event.invoice_id}, total {money_text(event.total)}, due {event.due_date}",
                key=f"invoice:{event.invoice_id}")
        handlers.on_invoice_issued(uow, event.order_id, event.invoice_id, amount_of(event.total))

    @consumes.on(fin_ev.PaymentReceived, lock=ORDER)
    def on_payment_received(uow: OrdersUnitOfWork, event: fin_ev.PaymentReceived, envelope: EventEnvelope) -> None:
        balance = "paid in full" if event.paid_in_full else f"{money_text(event.amount_due)} still due"
        _record(uow, envelope, event.order_id, StepKind.PAID, f"{money_text(event.amount)} received; {balance}",
                key=f"payment:{event.payment_id}")
        handlers.on_payment_received(uow, event.order_id, amount_of(event.amount))

    @consumes.on(fin_ev.CreditNoteIssued, lock=ORDER)
    def on_credit_note_issued(uow: OrdersUnitOfWork, event: fin_ev.CreditNoteIssued, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.CREDIT_NOTED,
                f"credit note {event.number or event.credit_note_id} for invoice {event.invoice_id}: "
                f"{money_text(event.amount)} credited, {money_text(event.unpaid_amount)} of it unpaid",
                key=f"credit_note:{event.credit_note_id}")


def _stock_steps(consumes: EventHandlers) -> None:
    @consumes.on(inv_ev.StockReleased, lock=ORDER)
    def on_stock_released(uow: OrdersUnitOfWork, event: inv_ev.StockReleased, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.STOCK_RELEASED, _lines("released", event.lines))

    @consumes.on(inv_ev.StockIssued, lock=ORDER)
    def on_stock_issued(uow: OrdersUnitOfWork, event: inv_ev.StockIssued, envelope: EventEnvelope) -> None:
        _record(uow, envelope, event.order_id, StepKind.STOCK_ISSUED, _lines("issued", event.lines))


def _notifications(consumes: EventHandlers) -> None:
    @consumes.on(notif_ev.DeliveriesSettled, lock=_orders_told_of)
    def on_deliveries_settled(uow: OrdersUnitOfWork, event: notif_ev.DeliveriesSettled,
                              envelope: EventEnvelope) -> None:
        for sent in event.sent:
            _notified(uow, envelope, sent)
        for failed in event.failed:
            _notification_failed(uow, envelope, failed)

    # Before DeliveriesSettled, notification published one event per delivery: kept for those still
    # queued (or published by a replica of the old version) while a deployment upgrades.
    @consumes.on(notif_ev.NotificationSent, lock=_order_if_any)
    def on_notification_sent(uow: OrdersUnitOfWork, event: notif_ev.NotificationSent, envelope: EventEnvelope) -> None:
        _notified(uow, envelope, event)

    @consumes.on(notif_ev.NotificationFailed, lock=_order_if_any)
    def on_notification_failed(uow: OrdersUnitOfWork, event: notif_ev.NotificationFailed,
                               envelope: EventEnvelope) -> None:
        _notification_failed(uow, envelope, event)


def _orders_told_of(payload: notif_ev.DeliveriesSettled) -> list[locks.AggregateRef]:
    return [ref for told in (*payload.sent, *payload.failed) for ref in _order_if_any(told)]


def _notified(uow: OrdersUnitOfWork, envelope: EventEnvelope, sent: notif_ev.NotificationSent) -> None:
    if sent.order_id:
        _record(uow, envelope, sent.order_id, StepKind.NOTIFIED,
                timeline.notification_detail(sent.event_type, sent.channel, sent.attempts),
                key=f"delivery:{sent.delivery_id}")


def _notification_failed(uow: OrdersUnitOfWork, envelope: EventEnvelope, failed: notif_ev.NotificationFailed) -> None:
    if failed.order_id:
        _record(uow, envelope, failed.order_id, StepKind.NOTIFICATION_FAILED,
                timeline.notification_detail(failed.event_type, failed.channel, failed.attempts, failed.error),
                key=f"delivery:{failed.delivery_id}")
