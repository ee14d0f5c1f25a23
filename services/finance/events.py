"""The events finance consumes, and what it does with each."""
from __future__ import annotations

import datetime as dt

from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import inventory_events_pb2 as inventory_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks
from mesh.events.consumer import EventHandlers
from mesh.events.envelope import Event
from services.finance import valuation
from services.finance.adapters import FinanceUnitOfWork
from services.finance.ledger.domain import FinanceConfig, OrderLineInput
from services.finance.payables import domain as payables
from services.finance.payables import handlers as payables_handlers
from services.finance.payables import suppliers
from services.finance.receivables import domain as receivables
from services.finance.receivables import handlers as receivables_handlers


def _order_lines(event: orders_ev.OrderConfirmed | procurement_ev.PurchaseOrderApproved
                 ) -> tuple[OrderLineInput, ...]:
    """An order's lines as received: the domain validates the amounts and names bad fields."""
    return tuple(OrderLineInput(line.line_no, line.sku, line.quantity, line.unit_price.amount,
                                line.unit_price.currency_code) for line in event.lines)


def issue_command(event: orders_ev.OrderConfirmed) -> receivables.IssueInvoice:
    return receivables.IssueInvoice(
        order_id=event.order_id, customer_id=event.customer_id,
        lines=_order_lines(event),
        total_amount=event.total.amount, total_currency=event.total.currency_code)


def approval_command(event: procurement_ev.PurchaseOrderApproved) -> payables.ApprovePurchaseOrder:
    return payables.ApprovePurchaseOrder(
        purchase_order_id=event.purchase_order_id, number=event.number, supplier_id=event.supplier_id,
        payment_terms_days=event.payment_terms_days,
        lines=_order_lines(event),
        total_currency=event.total.currency_code)


def receipt_command(event: procurement_ev.GoodsReceived) -> payables.ReceiveGoods:
    # The lines' unit_price is the order's price, which finance already knows from the
    # approval: receipts are valued at finance's own copy.
    return payables.ReceiveGoods(
        receipt_id=event.receipt_id, purchase_order_id=event.purchase_order_id, supplier_id=event.supplier_id,
        lines=tuple(payables.ReceivedLineInput(line.line_no, line.sku, line.quantity) for line in event.lines))


def lock_invoice_numbers(uow: FinanceUnitOfWork, events: list[Event]) -> None:
    """A batch that will issue invoices takes the invoice number counter before anything else:
    gapless numbering serializes issuing anyway, and this way replicas' batches queue for the
    counter instead of timing out on it while holding other rows."""
    if any(isinstance(event.payload, orders_ev.OrderConfirmed) for event in events):
        uow.numbers.lock(receivables.INVOICE_PREFIX, dt.datetime.now(dt.UTC).year)


def read_before_issuing(uow: FinanceUnitOfWork, events: list[Event]) -> None:
    """What a batch's invoices look at first (a cancellation, an invoice already issued, the
    payment terms), in one statement under the batch's locks."""
    confirmed = [(event.payload.order_id, event.payload.customer_id) for event in events
                 if isinstance(event.payload, orders_ev.OrderConfirmed)]
    if confirmed:
        uow.invoices.read_before_issuing(confirmed)


# A sales order's invoice and its cancellation serialize: a cancellation that overtakes the
# invoice leaves a tombstone the invoice must see, or the order is invoiced and never credited.
ORDER = locks.by("order", "order_id")
PURCHASE_ORDER = locks.by("purchase_order", "purchase_order_id")


def build(config: FinanceConfig) -> EventHandlers:
    consumes = EventHandlers(consumer="finance", lock_first=lock_invoice_numbers, read_first=read_before_issuing)

    @consumes.on(orders_ev.OrderConfirmed, lock=ORDER)
    def on_order_confirmed(uow: FinanceUnitOfWork, event: orders_ev.OrderConfirmed, _envelope: EventEnvelope) -> None:
        receivables_handlers.issue_invoice(uow, issue_command(event), config)

    @consumes.on(orders_ev.OrderCancelled, lock=ORDER)
    def on_order_cancelled(uow: FinanceUnitOfWork, event: orders_ev.OrderCancelled, _envelope: EventEnvelope) -> None:
        receivables_handlers.on_order_cancelled(uow, receivables.CancelOrder(event.order_id, event.customer_id,
                                                                             event.reason, event.was_invoiced))

    @consumes.on(crm_ev.CustomerUpdated, lock=locks.by("customer", "customer_id"))
    def on_customer_updated(uow: FinanceUnitOfWork, event: crm_ev.CustomerUpdated, envelope: EventEnvelope) -> None:
        receivables_handlers.on_customer_updated(uow, receivables.CustomerTerms(
            event.customer_id, event.payment_terms_days, envelope.aggregate_version))

    @consumes.on(procurement_ev.PurchaseOrderApproved, lock=PURCHASE_ORDER)
    def on_purchase_order_approved(uow: FinanceUnitOfWork, event: procurement_ev.PurchaseOrderApproved,
                                   envelope: EventEnvelope) -> None:
        if payables_handlers.on_purchase_order_approved(uow, approval_command(event), envelope.aggregate_version):
            # each line's promised date, for the supplier performance report
            suppliers.record_promises(uow, event.purchase_order_id,
                                      [(line.line_no, line.expected_date) for line in event.lines])

    @consumes.on(procurement_ev.GoodsReceived, lock=PURCHASE_ORDER)
    def on_goods_received(uow: FinanceUnitOfWork, event: procurement_ev.GoodsReceived,
                          _envelope: EventEnvelope) -> None:
        payables_handlers.on_goods_received(uow, receipt_command(event), config)

    # The value of stock movements (services/finance/valuation.py). A shipment's cost posts
    # under the order's lock, beside the order's invoice; an adjustment's under its request id.
    @consumes.on(inventory_ev.StockIssued, lock=ORDER)
    def on_stock_issued(uow: FinanceUnitOfWork, event: inventory_ev.StockIssued, _envelope: EventEnvelope) -> None:
        valuation.on_stock_issued(uow, valuation.issued_command(event), config.currency)

    @consumes.on(inventory_ev.StockAdjusted, lock=locks.by("stock_adjustment", "request_id"))
    def on_stock_adjusted(uow: FinanceUnitOfWork, event: inventory_ev.StockAdjusted, _envelope: EventEnvelope) -> None:
        if event.goods_receipt_id:
            return  # a receipt: posted from GoodsReceived at the purchase order's prices
        valuation.on_stock_adjusted(uow, valuation.adjusted_command(event), config.currency)

    return consumes
