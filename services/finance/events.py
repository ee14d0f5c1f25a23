"""The events finance consumes, and what it does with each."""
from __future__ import annotations

from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh.events.consumer import EventHandlers
from services.finance import domain, handlers
from services.finance.domain import FinanceConfig


def issue_command(event: orders_ev.OrderConfirmed) -> domain.IssueInvoice:
    return domain.IssueInvoice(
        order_id=event.order_id, customer_id=event.customer_id,
        lines=tuple(domain.OrderLineInput(line.line_no, line.sku, line.quantity, line.unit_price.amount,
                                          line.unit_price.currency_code) for line in event.lines),
        total_amount=event.total.amount, total_currency=event.total.currency_code)


def build(config: FinanceConfig) -> EventHandlers:
    consumes = EventHandlers(consumer="finance")

    @consumes.on(orders_ev.OrderConfirmed)
    def on_order_confirmed(uow, event: orders_ev.OrderConfirmed, _envelope) -> None:
        handlers.issue_invoice(uow, issue_command(event), config)

    @consumes.on(orders_ev.OrderCancelled)
    def on_order_cancelled(uow, event: orders_ev.OrderCancelled, _envelope) -> None:
        handlers.on_order_cancelled(uow, domain.CancelOrder(event.order_id, event.customer_id, event.reason,
                                                            event.was_invoiced))

    @consumes.on(crm_ev.CustomerUpdated)
    def on_customer_updated(uow, event: crm_ev.CustomerUpdated, envelope) -> None:
        handlers.on_customer_updated(uow, domain.CustomerTerms(event.customer_id, event.payment_terms_days,
                                                               envelope.envelope.aggregate_version))

    return consumes
