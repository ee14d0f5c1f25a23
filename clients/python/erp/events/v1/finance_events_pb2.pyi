from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class InvoiceIssued(_message.Message):
    __slots__ = ("invoice_id", "number", "order_id", "customer_id", "total", "due_date", "order_amount")
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DUE_DATE_FIELD_NUMBER: _ClassVar[int]
    ORDER_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    invoice_id: str
    number: str
    order_id: str
    customer_id: str
    total: _money_pb2.Money
    due_date: str
    order_amount: _money_pb2.Money
    def __init__(self, invoice_id: _Optional[str] = ..., number: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., due_date: _Optional[str] = ..., order_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class PaymentReceived(_message.Message):
    __slots__ = ("payment_id", "invoice_id", "order_id", "customer_id", "amount", "amount_due", "paid_in_full")
    PAYMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_DUE_FIELD_NUMBER: _ClassVar[int]
    PAID_IN_FULL_FIELD_NUMBER: _ClassVar[int]
    payment_id: str
    invoice_id: str
    order_id: str
    customer_id: str
    amount: _money_pb2.Money
    amount_due: _money_pb2.Money
    paid_in_full: bool
    def __init__(self, payment_id: _Optional[str] = ..., invoice_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_due: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., paid_in_full: _Optional[bool] = ...) -> None: ...

class CreditNoteIssued(_message.Message):
    __slots__ = ("credit_note_id", "number", "invoice_id", "order_id", "customer_id", "amount", "unpaid_amount")
    CREDIT_NOTE_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    UNPAID_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    credit_note_id: str
    number: str
    invoice_id: str
    order_id: str
    customer_id: str
    amount: _money_pb2.Money
    unpaid_amount: _money_pb2.Money
    def __init__(self, credit_note_id: _Optional[str] = ..., number: _Optional[str] = ..., invoice_id: _Optional[str] = ..., order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., unpaid_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class BilledLine(_message.Message):
    __slots__ = ("line_no", "quantity")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    quantity: int
    def __init__(self, line_no: _Optional[int] = ..., quantity: _Optional[int] = ...) -> None: ...

class SupplierBillPosted(_message.Message):
    __slots__ = ("bill_id", "purchase_order_id", "supplier_id", "lines", "total")
    BILL_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    bill_id: str
    purchase_order_id: str
    supplier_id: str
    lines: _containers.RepeatedCompositeFieldContainer[BilledLine]
    total: _money_pb2.Money
    def __init__(self, bill_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[BilledLine, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...
