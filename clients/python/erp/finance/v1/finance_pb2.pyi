import datetime

from erp.common.v1 import money_pb2 as _money_pb2
from erp.common.v1 import paging_pb2 as _paging_pb2
from erp.options.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvoiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INVOICE_STATUS_UNSPECIFIED: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_UNPAID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PARTLY_PAID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_PAID: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_OVERDUE: _ClassVar[InvoiceStatus]
    INVOICE_STATUS_CREDITED: _ClassVar[InvoiceStatus]

class SupplierBillStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUPPLIER_BILL_STATUS_UNSPECIFIED: _ClassVar[SupplierBillStatus]
    SUPPLIER_BILL_STATUS_HELD: _ClassVar[SupplierBillStatus]
    SUPPLIER_BILL_STATUS_POSTED: _ClassVar[SupplierBillStatus]
    SUPPLIER_BILL_STATUS_PARTLY_PAID: _ClassVar[SupplierBillStatus]
    SUPPLIER_BILL_STATUS_PAID: _ClassVar[SupplierBillStatus]
    SUPPLIER_BILL_STATUS_REJECTED: _ClassVar[SupplierBillStatus]

class BillReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILL_REVIEW_DECISION_UNSPECIFIED: _ClassVar[BillReviewDecision]
    BILL_REVIEW_DECISION_RELEASE: _ClassVar[BillReviewDecision]
    BILL_REVIEW_DECISION_REJECT: _ClassVar[BillReviewDecision]

class SalesGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SALES_GROUPING_UNSPECIFIED: _ClassVar[SalesGrouping]
    SALES_GROUPING_PERIOD: _ClassVar[SalesGrouping]
    SALES_GROUPING_CUSTOMER: _ClassVar[SalesGrouping]
    SALES_GROUPING_SKU: _ClassVar[SalesGrouping]
INVOICE_STATUS_UNSPECIFIED: InvoiceStatus
INVOICE_STATUS_UNPAID: InvoiceStatus
INVOICE_STATUS_PARTLY_PAID: InvoiceStatus
INVOICE_STATUS_PAID: InvoiceStatus
INVOICE_STATUS_OVERDUE: InvoiceStatus
INVOICE_STATUS_CREDITED: InvoiceStatus
SUPPLIER_BILL_STATUS_UNSPECIFIED: SupplierBillStatus
SUPPLIER_BILL_STATUS_HELD: SupplierBillStatus
SUPPLIER_BILL_STATUS_POSTED: SupplierBillStatus
SUPPLIER_BILL_STATUS_PARTLY_PAID: SupplierBillStatus
SUPPLIER_BILL_STATUS_PAID: SupplierBillStatus
SUPPLIER_BILL_STATUS_REJECTED: SupplierBillStatus
BILL_REVIEW_DECISION_UNSPECIFIED: BillReviewDecision
BILL_REVIEW_DECISION_RELEASE: BillReviewDecision
BILL_REVIEW_DECISION_REJECT: BillReviewDecision
SALES_GROUPING_UNSPECIFIED: SalesGrouping
SALES_GROUPING_PERIOD: SalesGrouping
SALES_GROUPING_CUSTOMER: SalesGrouping
SALES_GROUPING_SKU: SalesGrouping

class InvoiceLine(_message.Message):
    __slots__ = ("line_no", "sku", "quantity", "unit_price", "amount")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    sku: str
    quantity: int
    unit_price: _money_pb2.Money
    amount: _money_pb2.Money
    def __init__(self, line_no: _Optional[int] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class Invoice(_message.Message):
    __slots__ = ("invoice_id", "number", "order_id", "customer_id", "subtotal", "tax", "total", "status", "lines", "issued_at", "due_at", "amount_paid", "amount_due")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBTOTAL_FIELD_NUMBER: _ClassVar[int]
    TAX_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    number: str
    order_id: str
    customer_id: str
    subtotal: _money_pb2.Money
    tax: _money_pb2.Money
    total: _money_pb2.Money
    status: InvoiceStatus
    lines: _containers.RepeatedCompositeFieldContainer[InvoiceLine]
    issued_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    amount_paid: _money_pb2.Money
    amount_due: _money_pb2.Money
    def __init__(self, invoice_id: _Optional[str] = ..., number: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., subtotal: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., tax: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ..., lines: _Optional[_Iterable[_Union[InvoiceLine, _Mapping]]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., amount_paid: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_due: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class JournalLine(_message.Message):
    __slots__ = ("account", "debit", "credit")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    DEBIT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    account: str
    debit: _money_pb2.Money
    credit: _money_pb2.Money
    def __init__(self, account: _Optional[str] = ..., debit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., credit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("entry_id", "posted_at", "memo", "reference", "lines", "reverses_entry_id")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    POSTED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    REVERSES_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    posted_at: _timestamp_pb2.Timestamp
    memo: str
    reference: str
    lines: _containers.RepeatedCompositeFieldContainer[JournalLine]
    reverses_entry_id: int
    def __init__(self, entry_id: _Optional[int] = ..., posted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., memo: _Optional[str] = ..., reference: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[JournalLine, _Mapping]]] = ..., reverses_entry_id: _Optional[int] = ...) -> None: ...

class TrialBalanceLine(_message.Message):
    __slots__ = ("account", "name", "debit", "credit", "balance")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEBIT_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    account: str
    name: str
    debit: _money_pb2.Money
    credit: _money_pb2.Money
    balance: _money_pb2.Money
    def __init__(self, account: _Optional[str] = ..., name: _Optional[str] = ..., debit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., credit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., balance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class AgingRow(_message.Message):
    __slots__ = ("customer_id", "current", "days_1_30", "days_31_60", "days_61_90", "over_90", "total")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    DAYS_1_30_FIELD_NUMBER: _ClassVar[int]
    DAYS_31_60_FIELD_NUMBER: _ClassVar[int]
    DAYS_61_90_FIELD_NUMBER: _ClassVar[int]
    OVER_90_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    current: _money_pb2.Money
    days_1_30: _money_pb2.Money
    days_31_60: _money_pb2.Money
    days_61_90: _money_pb2.Money
    over_90: _money_pb2.Money
    total: _money_pb2.Money
    def __init__(self, customer_id: _Optional[str] = ..., current: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_1_30: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_31_60: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_61_90: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., over_90: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetInvoiceRequest(_message.Message):
    __slots__ = ("invoice_id",)
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    def __init__(self, invoice_id: _Optional[str] = ...) -> None: ...

class GetInvoiceResponse(_message.Message):
    __slots__ = ("invoice",)
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    invoice: Invoice
    def __init__(self, invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class ListInvoicesRequest(_message.Message):
    __slots__ = ("page", "customer_id", "order_id", "status")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    customer_id: str
    order_id: str
    status: InvoiceStatus
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., status: _Optional[_Union[InvoiceStatus, str]] = ...) -> None: ...

class ListInvoicesResponse(_message.Message):
    __slots__ = ("invoices", "next_page_token")
    INVOICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    invoices: _containers.RepeatedCompositeFieldContainer[Invoice]
    next_page_token: str
    def __init__(self, invoices: _Optional[_Iterable[_Union[Invoice, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordPaymentRequest(_message.Message):
    __slots__ = ("request_id", "invoice_id", "amount", "reference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    invoice_id: str
    amount: _money_pb2.Money
    reference: str
    def __init__(self, request_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[str] = ...) -> None: ...

class RecordPaymentResponse(_message.Message):
    __slots__ = ("payment_id", "invoice")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    invoice: Invoice
    def __init__(self, payment_id: _Optional[str] = ..., invoice: _Optional[_Union[Invoice, _Mapping]] = ...) -> None: ...

class GetTrialBalanceRequest(_message.Message):
    __slots__ = ("currency_code", "period")
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    currency_code: str
    period: str
    def __init__(self, currency_code: _Optional[str] = ..., period: _Optional[str] = ...) -> None: ...

class GetTrialBalanceResponse(_message.Message):
    __slots__ = ("lines", "total_debit", "total_credit")
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_DEBIT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_CREDIT_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[TrialBalanceLine]
    total_debit: _money_pb2.Money
    total_credit: _money_pb2.Money
    def __init__(self, lines: _Optional[_Iterable[_Union[TrialBalanceLine, _Mapping]]] = ..., total_debit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total_credit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetReceivablesAgingRequest(_message.Message):
    __slots__ = ("as_of", "currency_code")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    currency_code: str
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currency_code: _Optional[str] = ...) -> None: ...

class GetReceivablesAgingResponse(_message.Message):
    __slots__ = ("rows", "totals")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[AgingRow]
    totals: AgingRow
    def __init__(self, rows: _Optional[_Iterable[_Union[AgingRow, _Mapping]]] = ..., totals: _Optional[_Union[AgingRow, _Mapping]] = ...) -> None: ...

class ListJournalEntriesRequest(_message.Message):
    __slots__ = ("page", "reference")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    reference: str
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., reference: _Optional[str] = ...) -> None: ...

class ListJournalEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SupplierBillLine(_message.Message):
    __slots__ = ("line_no", "quantity", "unit_price", "sku", "amount")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    quantity: int
    unit_price: _money_pb2.Money
    sku: str
    amount: _money_pb2.Money
    def __init__(self, line_no: _Optional[int] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., sku: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class SupplierBill(_message.Message):
    __slots__ = ("bill_id", "supplier_bill_number", "purchase_order_id", "supplier_id", "status", "lines", "total", "amount_paid", "hold_reasons", "reviewed_by", "review_note", "recorded_at", "due_at")
    BILL_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_BILL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    HOLD_REASONS_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_BY_FIELD_NUMBER: _ClassVar[int]
    REVIEW_NOTE_FIELD_NUMBER: _ClassVar[int]
    RECORDED_AT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    bill_id: str
    supplier_bill_number: str
    purchase_order_id: str
    supplier_id: str
    status: SupplierBillStatus
    lines: _containers.RepeatedCompositeFieldContainer[SupplierBillLine]
    total: _money_pb2.Money
    amount_paid: _money_pb2.Money
    hold_reasons: _containers.RepeatedScalarFieldContainer[str]
    reviewed_by: str
    review_note: str
    recorded_at: _timestamp_pb2.Timestamp
    due_at: _timestamp_pb2.Timestamp
    def __init__(self, bill_id: _Optional[str] = ..., supplier_bill_number: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., status: _Optional[_Union[SupplierBillStatus, str]] = ..., lines: _Optional[_Iterable[_Union[SupplierBillLine, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_paid: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., hold_reasons: _Optional[_Iterable[str]] = ..., reviewed_by: _Optional[str] = ..., review_note: _Optional[str] = ..., recorded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordSupplierBillRequest(_message.Message):
    __slots__ = ("request_id", "purchase_order_id", "supplier_bill_number", "lines")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_BILL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    purchase_order_id: str
    supplier_bill_number: str
    lines: _containers.RepeatedCompositeFieldContainer[SupplierBillLine]
    def __init__(self, request_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., supplier_bill_number: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[SupplierBillLine, _Mapping]]] = ...) -> None: ...

class RecordSupplierBillResponse(_message.Message):
    __slots__ = ("bill",)
    BILL_FIELD_NUMBER: _ClassVar[int]
    bill: SupplierBill
    def __init__(self, bill: _Optional[_Union[SupplierBill, _Mapping]] = ...) -> None: ...

class GetSupplierBillRequest(_message.Message):
    __slots__ = ("bill_id",)
    BILL_ID_FIELD_NUMBER: _ClassVar[int]
    bill_id: str
    def __init__(self, bill_id: _Optional[str] = ...) -> None: ...

class GetSupplierBillResponse(_message.Message):
    __slots__ = ("bill",)
    BILL_FIELD_NUMBER: _ClassVar[int]
    bill: SupplierBill
    def __init__(self, bill: _Optional[_Union[SupplierBill, _Mapping]] = ...) -> None: ...

class ListSupplierBillsRequest(_message.Message):
    __slots__ = ("page", "supplier_id", "purchase_order_id", "status")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    supplier_id: str
    purchase_order_id: str
    status: SupplierBillStatus
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., supplier_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., status: _Optional[_Union[SupplierBillStatus, str]] = ...) -> None: ...

class ListSupplierBillsResponse(_message.Message):
    __slots__ = ("bills", "next_page_token")
    BILLS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    bills: _containers.RepeatedCompositeFieldContainer[SupplierBill]
    next_page_token: str
    def __init__(self, bills: _Optional[_Iterable[_Union[SupplierBill, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewSupplierBillRequest(_message.Message):
    __slots__ = ("bill_id", "decision", "reviewer", "note")
    BILL_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    bill_id: str
    decision: BillReviewDecision
    reviewer: str
    note: str
    def __init__(self, bill_id: _Optional[str] = ..., decision: _Optional[_Union[BillReviewDecision, str]] = ..., reviewer: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class ReviewSupplierBillResponse(_message.Message):
    __slots__ = ("bill",)
    BILL_FIELD_NUMBER: _ClassVar[int]
    bill: SupplierBill
    def __init__(self, bill: _Optional[_Union[SupplierBill, _Mapping]] = ...) -> None: ...

class PaySupplierBillRequest(_message.Message):
    __slots__ = ("request_id", "bill_id", "amount", "reference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BILL_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    bill_id: str
    amount: _money_pb2.Money
    reference: str
    def __init__(self, request_id: _Optional[str] = ..., bill_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., reference: _Optional[str] = ...) -> None: ...

class PaySupplierBillResponse(_message.Message):
    __slots__ = ("payment_id", "bill")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    BILL_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    bill: SupplierBill
    def __init__(self, payment_id: _Optional[str] = ..., bill: _Optional[_Union[SupplierBill, _Mapping]] = ...) -> None: ...

class GetSalesReportRequest(_message.Message):
    __slots__ = ("page", "group_by", "from_time", "to_time", "customer_id", "order_id", "currency_code")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    FROM_TIME_FIELD_NUMBER: _ClassVar[int]
    TO_TIME_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    group_by: SalesGrouping
    from_time: _timestamp_pb2.Timestamp
    to_time: _timestamp_pb2.Timestamp
    customer_id: str
    order_id: str
    currency_code: str
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., group_by: _Optional[_Union[SalesGrouping, str]] = ..., from_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., to_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., currency_code: _Optional[str] = ...) -> None: ...

class SalesReportRow(_message.Message):
    __slots__ = ("key", "revenue", "cost_of_goods_sold", "gross_margin", "margin_percent", "quantity")
    KEY_FIELD_NUMBER: _ClassVar[int]
    REVENUE_FIELD_NUMBER: _ClassVar[int]
    COST_OF_GOODS_SOLD_FIELD_NUMBER: _ClassVar[int]
    GROSS_MARGIN_FIELD_NUMBER: _ClassVar[int]
    MARGIN_PERCENT_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    key: str
    revenue: _money_pb2.Money
    cost_of_goods_sold: _money_pb2.Money
    gross_margin: _money_pb2.Money
    margin_percent: str
    quantity: int
    def __init__(self, key: _Optional[str] = ..., revenue: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cost_of_goods_sold: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., gross_margin: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., margin_percent: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class GetSalesReportResponse(_message.Message):
    __slots__ = ("rows", "totals", "next_page_token")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[SalesReportRow]
    totals: SalesReportRow
    next_page_token: str
    def __init__(self, rows: _Optional[_Iterable[_Union[SalesReportRow, _Mapping]]] = ..., totals: _Optional[_Union[SalesReportRow, _Mapping]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PayablesAgingRow(_message.Message):
    __slots__ = ("supplier_id", "current", "days_1_30", "days_31_60", "days_61_90", "over_90", "total")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    DAYS_1_30_FIELD_NUMBER: _ClassVar[int]
    DAYS_31_60_FIELD_NUMBER: _ClassVar[int]
    DAYS_61_90_FIELD_NUMBER: _ClassVar[int]
    OVER_90_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    current: _money_pb2.Money
    days_1_30: _money_pb2.Money
    days_31_60: _money_pb2.Money
    days_61_90: _money_pb2.Money
    over_90: _money_pb2.Money
    total: _money_pb2.Money
    def __init__(self, supplier_id: _Optional[str] = ..., current: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_1_30: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_31_60: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., days_61_90: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., over_90: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetPayablesAgingRequest(_message.Message):
    __slots__ = ("as_of", "currency_code")
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    as_of: _timestamp_pb2.Timestamp
    currency_code: str
    def __init__(self, as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., currency_code: _Optional[str] = ...) -> None: ...

class GetPayablesAgingResponse(_message.Message):
    __slots__ = ("rows", "totals")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[PayablesAgingRow]
    totals: PayablesAgingRow
    def __init__(self, rows: _Optional[_Iterable[_Union[PayablesAgingRow, _Mapping]]] = ..., totals: _Optional[_Union[PayablesAgingRow, _Mapping]] = ...) -> None: ...

class AccountingPeriod(_message.Message):
    __slots__ = ("period", "closed_at", "closed_by")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    period: str
    closed_at: _timestamp_pb2.Timestamp
    closed_by: str
    def __init__(self, period: _Optional[str] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_by: _Optional[str] = ...) -> None: ...

class ClosePeriodRequest(_message.Message):
    __slots__ = ("period", "closed_by")
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    period: str
    closed_by: str
    def __init__(self, period: _Optional[str] = ..., closed_by: _Optional[str] = ...) -> None: ...

class ClosePeriodResponse(_message.Message):
    __slots__ = ("period",)
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    period: AccountingPeriod
    def __init__(self, period: _Optional[_Union[AccountingPeriod, _Mapping]] = ...) -> None: ...

class ListClosedPeriodsRequest(_message.Message):
    __slots__ = ("page",)
    PAGE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class ListClosedPeriodsResponse(_message.Message):
    __slots__ = ("periods", "next_page_token")
    PERIODS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    periods: _containers.RepeatedCompositeFieldContainer[AccountingPeriod]
    next_page_token: str
    def __init__(self, periods: _Optional[_Iterable[_Union[AccountingPeriod, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetSupplierPerformanceRequest(_message.Message):
    __slots__ = ("page", "supplier_id", "currency_code")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    supplier_id: str
    currency_code: str
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., supplier_id: _Optional[str] = ..., currency_code: _Optional[str] = ...) -> None: ...

class SupplierPerformanceRow(_message.Message):
    __slots__ = ("supplier_id", "receipt_lines_promised", "receipt_lines_on_time", "on_time_percent", "ordered_quantity", "received_quantity", "billed_quantity", "billed_at_order_prices", "billed_amount", "price_variance")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_LINES_PROMISED_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_LINES_ON_TIME_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ORDERED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BILLED_AT_ORDER_PRICES_FIELD_NUMBER: _ClassVar[int]
    BILLED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    PRICE_VARIANCE_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    receipt_lines_promised: int
    receipt_lines_on_time: int
    on_time_percent: str
    ordered_quantity: int
    received_quantity: int
    billed_quantity: int
    billed_at_order_prices: _money_pb2.Money
    billed_amount: _money_pb2.Money
    price_variance: _money_pb2.Money
    def __init__(self, supplier_id: _Optional[str] = ..., receipt_lines_promised: _Optional[int] = ..., receipt_lines_on_time: _Optional[int] = ..., on_time_percent: _Optional[str] = ..., ordered_quantity: _Optional[int] = ..., received_quantity: _Optional[int] = ..., billed_quantity: _Optional[int] = ..., billed_at_order_prices: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., billed_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., price_variance: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetSupplierPerformanceResponse(_message.Message):
    __slots__ = ("rows", "next_page_token")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[SupplierPerformanceRow]
    next_page_token: str
    def __init__(self, rows: _Optional[_Iterable[_Union[SupplierPerformanceRow, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
