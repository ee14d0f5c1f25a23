"""The events crm consumes, and what it does with each."""
from __future__ import annotations

from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks
from mesh.events.consumer import EventHandlers
from mesh.events.envelope import Event
from services.crm import domain, handlers
from services.crm.adapters import CrmUnitOfWork
from services.crm.domain import ClosedBy

# The customer's exposure (its orders, invoices and credit decisions) is one aggregate: the
# advisory lock holds even for a customer crm does not know, whose row cannot be locked.
CUSTOMER = locks.by("customer", "customer_id")


# The payloads crm consumes: each names its customer.
CUSTOMER_EVENTS = (orders_ev.OrderPlaced, orders_ev.OrderRejected, orders_ev.OrderCancelled, fin_ev.InvoiceIssued,
                   fin_ev.PaymentReceived, fin_ev.CreditNoteIssued)


def _lock_customers(uow: CrmUnitOfWork, events: list[Event]) -> None:
    """Locks a batch's customers, in id order, before any of its handlers runs."""
    customer_ids: set[str] = set()
    for event in events:
        if not isinstance(event.payload, CUSTOMER_EVENTS):
            raise TypeError(f"crm does not consume {event.envelope.event_type}")
        customer_ids.add(event.payload.customer_id)
    uow.customers.lock_all(sorted(customer_ids))


def _read_exposure(uow: CrmUnitOfWork, events: list[Event]) -> None:
    """What a batch's credit checks and invoice events read, in one statement each, under the
    batch's customer locks, before its handlers run."""
    checks: list[tuple[str, str, str]] = []
    invoices: list[tuple[str, str, str, str]] = []
    for event in events:
        match event.payload:
            case orders_ev.OrderPlaced() as placed:
                customer = uow.customers.lock_for_exposure(placed.customer_id)
                checks.append((placed.order_id, placed.customer_id, customer.currency_code if customer else ""))
            case fin_ev.InvoiceIssued() | fin_ev.PaymentReceived() | fin_ev.CreditNoteIssued() as about:
                invoices.append((about.invoice_id, about.customer_id, about.order_id, _currency_of(about)))
    uow.exposure.read_all(checks, invoices)


def _currency_of(event: fin_ev.InvoiceIssued | fin_ev.PaymentReceived | fin_ev.CreditNoteIssued) -> str:
    """The currency its handler gives the invoice it creates (the first event about an invoice does)."""
    if isinstance(event, fin_ev.InvoiceIssued):
        return event.total.currency_code
    if isinstance(event, fin_ev.PaymentReceived):
        return event.amount_due.currency_code
    return event.unpaid_amount.currency_code


def build() -> EventHandlers:
    # Every event crm consumes names its customer, and each handler locks that customer first.
    consumes = EventHandlers(consumer="crm", lock_first=_lock_customers, read_first=_read_exposure)

    @consumes.on(orders_ev.OrderPlaced, lock=CUSTOMER)
    def on_order_placed(uow: CrmUnitOfWork, event: orders_ev.OrderPlaced, _envelope: EventEnvelope) -> None:
        handlers.check_credit(uow, domain.CheckCredit(event.order_id, event.customer_id, event.total.amount,
                                                      event.total.currency_code))

    @consumes.on(orders_ev.OrderRejected, lock=CUSTOMER)
    def on_order_rejected(uow: CrmUnitOfWork, event: orders_ev.OrderRejected, _envelope: EventEnvelope) -> None:
        handlers.order_closed(uow, event.order_id, event.customer_id, ClosedBy.REJECTED)

    @consumes.on(orders_ev.OrderCancelled, lock=CUSTOMER)
    def on_order_cancelled(uow: CrmUnitOfWork, event: orders_ev.OrderCancelled, _envelope: EventEnvelope) -> None:
        handlers.order_closed(uow, event.order_id, event.customer_id, ClosedBy.CANCELLED)

    @consumes.on(fin_ev.InvoiceIssued, lock=CUSTOMER)
    def on_invoice_issued(uow: CrmUnitOfWork, event: fin_ev.InvoiceIssued, _envelope: EventEnvelope) -> None:
        handlers.invoice_issued(uow, invoice_id=event.invoice_id, order_id=event.order_id,
                                customer_id=event.customer_id, total=event.total.amount,
                                currency_code=event.total.currency_code)

    @consumes.on(fin_ev.PaymentReceived, lock=CUSTOMER)
    def on_payment_received(uow: CrmUnitOfWork, event: fin_ev.PaymentReceived, _envelope: EventEnvelope) -> None:
        handlers.payment_received(uow, invoice_id=event.invoice_id, order_id=event.order_id,
                                  customer_id=event.customer_id, amount_due=event.amount_due.amount,
                                  currency_code=event.amount_due.currency_code)

    @consumes.on(fin_ev.CreditNoteIssued, lock=CUSTOMER)
    def on_credit_note_issued(uow: CrmUnitOfWork, event: fin_ev.CreditNoteIssued, _envelope: EventEnvelope) -> None:
        handlers.credit_note_issued(uow, credit_note_id=event.credit_note_id, invoice_id=event.invoice_id,
                                    order_id=event.order_id, customer_id=event.customer_id,
                                    unpaid_amount=event.unpaid_amount.amount,
                                    currency_code=event.unpaid_amount.currency_code)

    return consumes
