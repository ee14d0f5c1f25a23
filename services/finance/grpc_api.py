"""The FinanceService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import cast

from erp.common.v1 import money_pb2
from erp.finance.v1 import finance_pb2 as pb
from erp.finance.v1 import finance_pb2_grpc
from mesh import call_context
from mesh.errors import FieldViolation, InvalidArgument
from mesh.idempotency import in_one_transaction
from mesh.protoconv import money, optional_moment, timestamp
from mesh.service import Runtime
from services.finance import valuation
from services.finance.adapters import FinanceUnitOfWork
from services.finance.ledger import handlers as ledger
from services.finance.ledger import periods
from services.finance.ledger.domain import BUCKETS, AgingRow, FinanceConfig, JournalEntry
from services.finance.payables import domain as payables
from services.finance.payables import handlers as payables_handlers
from services.finance.payables import suppliers
from services.finance.payables.domain import BillStatus, ReviewDecision, SupplierBill
from services.finance.receivables import domain as receivables
from services.finance.receivables import handlers as receivables_handlers
from services.finance.receivables.domain import Invoice, InvoiceStatus

# protoc's stubs type an enum's Value() as int; the message fields take the enum's type.
_STATUS_TO_PROTO = {status: cast(pb.InvoiceStatus, pb.InvoiceStatus.Value("INVOICE_STATUS_" + status.name))
                    for status in InvoiceStatus}
_STATUS_FROM_PROTO = {value: status for status, value in _STATUS_TO_PROTO.items()}
_BILL_STATUS_TO_PROTO = {
    status: cast(pb.SupplierBillStatus, pb.SupplierBillStatus.Value("SUPPLIER_BILL_STATUS_" + status.name))
    for status in BillStatus}
_BILL_STATUS_FROM_PROTO = {value: status for status, value in _BILL_STATUS_TO_PROTO.items()}
_DECISION_FROM_PROTO = {pb.BILL_REVIEW_DECISION_RELEASE: ReviewDecision.RELEASE,
                        pb.BILL_REVIEW_DECISION_REJECT: ReviewDecision.REJECT}


_GROUPING = {pb.SALES_GROUPING_UNSPECIFIED: "period", pb.SALES_GROUPING_PERIOD: "period",
             pb.SALES_GROUPING_CUSTOMER: "customer", pb.SALES_GROUPING_SKU: "sku"}


def _sales_row(row: valuation.SalesRow, currency: str) -> pb.SalesReportRow:
    return pb.SalesReportRow(key=row.key, revenue=money(currency, row.revenue),
                             cost_of_goods_sold=money(currency, row.cost),
                             gross_margin=money(currency, row.gross_margin), margin_percent=row.margin_percent,
                             quantity=row.quantity)


def _payables_row(row: AgingRow, currency: str) -> pb.PayablesAgingRow:
    return pb.PayablesAgingRow(supplier_id=row.customer_id, **{
        name: money(currency, row.amount(name)) for name in (*BUCKETS, "total")})


def _period(closed: periods.ClosedPeriod) -> pb.AccountingPeriod:
    return pb.AccountingPeriod(period=closed.period, closed_at=timestamp(closed.closed_at),
                               closed_by=closed.closed_by)


def invoice_to_proto(invoice: Invoice, as_of: dt.datetime) -> pb.Invoice:
    def m(amount: Decimal) -> money_pb2.Money:
        return money(invoice.currency_code, amount)

    return pb.Invoice(
        invoice_id=invoice.invoice_id, number=invoice.number, order_id=invoice.order_id,
        customer_id=invoice.customer_id, subtotal=m(invoice.subtotal), tax=m(invoice.tax), total=m(invoice.total),
        status=_STATUS_TO_PROTO[invoice.status(as_of)],
        lines=[pb.InvoiceLine(line_no=line.line_no, sku=line.sku, quantity=line.quantity,
                              unit_price=m(line.unit_price), amount=m(line.amount)) for line in invoice.lines],
        issued_at=timestamp(invoice.issued_at), due_at=timestamp(invoice.due_at),
        amount_paid=m(invoice.amount_paid), amount_due=m(invoice.amount_due),
    )


def entry_to_proto(entry: JournalEntry) -> pb.JournalEntry:
    assert entry.posted_at is not None, "a stored entry has its posting time"
    return pb.JournalEntry(
        entry_id=entry.entry_id, posted_at=timestamp(entry.posted_at), memo=entry.memo, reference=entry.reference,
        lines=[pb.JournalLine(account=line.account, debit=money(entry.currency_code, line.debit),
                              credit=money(entry.currency_code, line.credit)) for line in entry.lines],
        reverses_entry_id=entry.reverses_entry_id or 0,
    )


def bill_to_proto(bill: SupplierBill) -> pb.SupplierBill:
    def m(amount: Decimal) -> money_pb2.Money:
        return money(bill.currency_code, amount)

    return pb.SupplierBill(
        bill_id=bill.bill_id, supplier_bill_number=bill.supplier_bill_number, purchase_order_id=bill.purchase_order_id,
        supplier_id=bill.supplier_id, status=_BILL_STATUS_TO_PROTO[bill.status],
        lines=[pb.SupplierBillLine(line_no=line.line_no, quantity=line.quantity, unit_price=m(line.unit_price),
                                   sku=line.sku, amount=m(line.amount)) for line in bill.lines],
        total=m(bill.total), amount_paid=m(bill.amount_paid), hold_reasons=bill.hold_reasons,
        reviewed_by=bill.reviewed_by, review_note=bill.review_note, recorded_at=timestamp(bill.recorded_at),
        due_at=timestamp(bill.due_at),
    )


def _aging_row(row: AgingRow, currency: str) -> pb.AgingRow:
    return pb.AgingRow(customer_id=row.customer_id, total=money(currency, row.total),
                       **{name: money(currency, row.amount(name)) for name in BUCKETS})


class FinanceServicer(finance_pb2_grpc.FinanceServiceServicer):
    def __init__(self, runtime: Runtime[FinanceUnitOfWork], config: FinanceConfig) -> None:
        self.runtime = runtime
        self.config = config

    def GetInvoice(self, request: pb.GetInvoiceRequest, context) -> pb.GetInvoiceResponse:
        invoice = receivables_handlers.get_invoice(self.runtime.uow(), request.invoice_id)
        return pb.GetInvoiceResponse(invoice=invoice_to_proto(invoice, ledger.utcnow()))

    def ListInvoices(self, request: pb.ListInvoicesRequest, context) -> pb.ListInvoicesResponse:
        if request.status and request.status not in _STATUS_FROM_PROTO:
            raise InvalidArgument([FieldViolation("status", "is not an InvoiceStatus")])
        now = ledger.utcnow()
        query = receivables_handlers.InvoiceQuery(request.customer_id, request.order_id,
                                                  _STATUS_FROM_PROTO.get(request.status))
        found, token = receivables_handlers.list_invoices(self.runtime.uow(), query, request.page.page_size,
                                                          request.page.page_token, now)
        return pb.ListInvoicesResponse(invoices=[invoice_to_proto(i, now) for i in found], next_page_token=token)

    @in_one_transaction
    def RecordPayment(self, request: pb.RecordPaymentRequest, context) -> pb.RecordPaymentResponse:
        cmd = receivables.RecordPayment(request.request_id, request.invoice_id, request.amount.amount,
                                        request.amount.currency_code, request.reference)
        payment, invoice = receivables_handlers.record_payment(self.runtime.uow(), cmd)
        return pb.RecordPaymentResponse(payment_id=payment.payment_id,
                                        invoice=invoice_to_proto(invoice, ledger.utcnow()))

    def GetTrialBalance(self, request: pb.GetTrialBalanceRequest, context) -> pb.GetTrialBalanceResponse:
        currency, balance = ledger.trial_balance(self.runtime.uow(), request.currency_code, self.config,
                                                 request.period)
        return pb.GetTrialBalanceResponse(
            lines=[pb.TrialBalanceLine(account=line.account, name=line.name, debit=money(currency, line.debit),
                                       credit=money(currency, line.credit), balance=money(currency, line.balance))
                   for line in balance.lines],
            total_debit=money(currency, balance.total_debit), total_credit=money(currency, balance.total_credit))

    def GetReceivablesAging(self, request: pb.GetReceivablesAgingRequest,
                            context) -> pb.GetReceivablesAgingResponse:
        as_of = optional_moment(request, "as_of")
        currency, rows, totals = receivables_handlers.receivables_aging(self.runtime.uow(), request.currency_code,
                                                                        as_of, self.config)
        return pb.GetReceivablesAgingResponse(rows=[_aging_row(row, currency) for row in rows],
                                              totals=_aging_row(totals, currency))

    def ListJournalEntries(self, request: pb.ListJournalEntriesRequest, context) -> pb.ListJournalEntriesResponse:
        found, token = ledger.list_journal_entries(self.runtime.uow(), request.reference, request.page.page_size,
                                                   request.page.page_token)
        return pb.ListJournalEntriesResponse(entries=[entry_to_proto(e) for e in found], next_page_token=token)

    @in_one_transaction
    def RecordSupplierBill(self, request: pb.RecordSupplierBillRequest, context) -> pb.RecordSupplierBillResponse:
        cmd = payables.RecordSupplierBill(
            request.request_id, request.purchase_order_id, request.supplier_bill_number,
            tuple(payables.BillLineInput(line.line_no, line.quantity, line.unit_price.amount,
                                         line.unit_price.currency_code) for line in request.lines))
        bill = payables_handlers.record_supplier_bill(self.runtime.uow(), cmd, self.config)
        return pb.RecordSupplierBillResponse(bill=bill_to_proto(bill))

    def GetSupplierBill(self, request: pb.GetSupplierBillRequest, context) -> pb.GetSupplierBillResponse:
        bill = payables_handlers.get_supplier_bill(self.runtime.uow(), request.bill_id)
        return pb.GetSupplierBillResponse(bill=bill_to_proto(bill))

    def ListSupplierBills(self, request: pb.ListSupplierBillsRequest, context) -> pb.ListSupplierBillsResponse:
        if request.status and request.status not in _BILL_STATUS_FROM_PROTO:
            raise InvalidArgument([FieldViolation("status", "is not a SupplierBillStatus")])
        query = payables_handlers.SupplierBillQuery(request.supplier_id, request.purchase_order_id,
                                                    _BILL_STATUS_FROM_PROTO.get(request.status))
        found, token = payables_handlers.list_supplier_bills(self.runtime.uow(), query, request.page.page_size,
                                                             request.page.page_token)
        return pb.ListSupplierBillsResponse(bills=[bill_to_proto(b) for b in found], next_page_token=token)

    def ReviewSupplierBill(self, request: pb.ReviewSupplierBillRequest, context) -> pb.ReviewSupplierBillResponse:
        cmd = payables.ReviewSupplierBill(request.bill_id, _DECISION_FROM_PROTO.get(request.decision),
                                          call_context.acting_person(request.reviewer, "reviewer"), request.note)
        bill = payables_handlers.review_supplier_bill(self.runtime.uow(), cmd)
        return pb.ReviewSupplierBillResponse(bill=bill_to_proto(bill))

    @in_one_transaction
    def PaySupplierBill(self, request: pb.PaySupplierBillRequest, context) -> pb.PaySupplierBillResponse:
        cmd = payables.PaySupplierBill(request.request_id, request.bill_id, request.amount.amount,
                                       request.amount.currency_code, request.reference)
        payment, bill = payables_handlers.pay_supplier_bill(self.runtime.uow(), cmd)
        return pb.PaySupplierBillResponse(payment_id=payment.payment_id, bill=bill_to_proto(bill))

    def GetSalesReport(self, request: pb.GetSalesReportRequest, context) -> pb.GetSalesReportResponse:
        query = valuation.SalesQuery(
            group_by=_GROUPING.get(request.group_by, ""), from_time=optional_moment(request, "from_time"),
            to_time=optional_moment(request, "to_time"), customer_id=request.customer_id, order_id=request.order_id,
            currency_code=request.currency_code)
        currency, rows, totals, token = valuation.sales_report(self.runtime.uow(), query, request.page.page_size,
                                                               request.page.page_token, self.config.currency)
        return pb.GetSalesReportResponse(rows=[_sales_row(row, currency) for row in rows],
                                         totals=_sales_row(totals, currency), next_page_token=token)

    def GetPayablesAging(self, request: pb.GetPayablesAgingRequest, context) -> pb.GetPayablesAgingResponse:
        currency, rows, totals = valuation.payables_aging(self.runtime.uow(), request.currency_code,
                                                          optional_moment(request, "as_of"), self.config.currency)
        return pb.GetPayablesAgingResponse(rows=[_payables_row(row, currency) for row in rows],
                                           totals=_payables_row(totals, currency))

    def ClosePeriod(self, request: pb.ClosePeriodRequest, context) -> pb.ClosePeriodResponse:
        closed = periods.close_period(self.runtime.uow(), request.period, request.closed_by)
        return pb.ClosePeriodResponse(period=_period(closed))

    def ListClosedPeriods(self, request: pb.ListClosedPeriodsRequest, context) -> pb.ListClosedPeriodsResponse:
        found, token = periods.list_closed(self.runtime.uow(), request.page.page_size, request.page.page_token)
        return pb.ListClosedPeriodsResponse(periods=[_period(p) for p in found], next_page_token=token)

    def GetSupplierPerformance(self, request: pb.GetSupplierPerformanceRequest,
                               context) -> pb.GetSupplierPerformanceResponse:
        currency, rows, token = suppliers.supplier_performance(
            self.runtime.uow(), request.supplier_id, request.currency_code, request.page.page_size,
            request.page.page_token, self.config.currency)
        return pb.GetSupplierPerformanceResponse(rows=[pb.SupplierPerformanceRow(
            supplier_id=r.supplier_id, receipt_lines_promised=r.promised, receipt_lines_on_time=r.on_time,
            on_time_percent=r.on_time_percent, ordered_quantity=r.ordered, received_quantity=r.received,
            billed_quantity=r.billed, billed_at_order_prices=money(currency, r.billed_at_order_prices),
            billed_amount=money(currency, r.billed_amount), price_variance=money(currency, r.price_variance))
            for r in rows], next_page_token=token)
