"""The events crm consumes, and what it does with each."""
from __future__ import annotations

from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import locks
from mesh.events.consumer import EventHandlers
from services.crm import domain, handlers
from services.crm.domain import ClosedBy

# The customer's exposure (its orders, invoices and credit decisions) is one aggregate: the
# advisory lock holds even for a customer crm does not know, whose row cannot be locked.
CUSTOMER = locks.by("customer", "customer_id")


def build() -> EventHandlers:
    # Every event crm consumes names its customer, and each handler locks that customer first.
    consumes = EventHandlers(consumer="crm", lock_first=lambda uow, events: uow.customers.lock_all(
        sorted({event.payload.customer_id for event in events})))

    @consumes.on(orders_ev.OrderPlaced, lock=CUSTOMER)
    def on_order_placed(uow, event: orders_ev.OrderPlaced, _envelope) -> None:
        handlers.check_credit(uow, domain.CheckCredit(event.order_id, event.customer_id, event.total.amount,
                                                      event.total.currency_code))

    @consumes.on(orders_ev.OrderRejected, lock=CUSTOMER)
    def on_order_rejected(uow, event: orders_ev.OrderRejected, _envelope) -> None:
        handlers.order_closed(uow, event.order_id, event.customer_id, ClosedBy.REJECTED)

    @consumes.on(orders_ev.OrderCancelled, lock=CUSTOMER)
    def on_order_cancelled(uow, event: orders_ev.OrderCancelled, _envelope) -> None:
        handlers.order_closed(uow, event.order_id, event.customer_id, ClosedBy.CANCELLED)

    @consumes.on(fin_ev.InvoiceIssued, lock=CUSTOMER)
    def on_invoice_issued(uow, event: fin_ev.InvoiceIssued, _envelope) -> None:
        handlers.invoice_issued(uow, invoice_id=event.invoice_id, order_id=event.order_id,
                                customer_id=event.customer_id, total=event.total.amount,
                                currency_code=event.total.currency_code)

    @consumes.on(fin_ev.PaymentReceived, lock=CUSTOMER)
    def on_payment_received(uow, event: fin_ev.PaymentReceived, _envelope) -> None:
        handlers.payment_received(uow, invoice_id=event.invoice_id, order_id=event.order_id,
                                  customer_id=event.customer_id, amount_due=event.amount_due.amount,
                                  currency_code=event.amount_due.currency_code)

    @consumes.on(fin_ev.CreditNoteIssued, lock=CUSTOMER)
    def on_credit_note_issued(uow, event: fin_ev.CreditNoteIssued, _envelope) -> None:
        handlers.credit_note_issued(uow, credit_note_id=event.credit_note_id, invoice_id=event.invoice_id,
                                    order_id=event.order_id, customer_id=event.customer_id,
                                    unpaid_amount=event.unpaid_amount.amount,
                                    currency_code=event.unpaid_amount.currency_code)

    return consumes
