from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PurchaseOrderLineItem(_message.Message):
    __slots__ = ("line_no", "sku", "quantity", "unit_price", "expected_date")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DATE_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    sku: str
    quantity: int
    unit_price: _money_pb2.Money
    expected_date: str
    def __init__(self, line_no: _Optional[int] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., expected_date: _Optional[str] = ...) -> None: ...

class PurchaseOrderApproved(_message.Message):
    __slots__ = ("purchase_order_id", "number", "supplier_id", "supplier_name", "supplier_email", "supplier_webhook_url", "warehouse_code", "lines", "total", "approved_by", "payment_terms_days")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_NAME_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TERMS_DAYS_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    number: str
    supplier_id: str
    supplier_name: str
    supplier_email: str
    supplier_webhook_url: str
    warehouse_code: str
    lines: _containers.RepeatedCompositeFieldContainer[PurchaseOrderLineItem]
    total: _money_pb2.Money
    approved_by: str
    payment_terms_days: int
    def __init__(self, purchase_order_id: _Optional[str] = ..., number: _Optional[str] = ..., supplier_id: _Optional[str] = ..., supplier_name: _Optional[str] = ..., supplier_email: _Optional[str] = ..., supplier_webhook_url: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[PurchaseOrderLineItem, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., approved_by: _Optional[str] = ..., payment_terms_days: _Optional[int] = ...) -> None: ...

class ReceivedLine(_message.Message):
    __slots__ = ("line_no", "sku", "quantity", "unit_price")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    sku: str
    quantity: int
    unit_price: _money_pb2.Money
    def __init__(self, line_no: _Optional[int] = ..., sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GoodsReceived(_message.Message):
    __slots__ = ("receipt_id", "purchase_order_id", "supplier_id", "warehouse_code", "lines")
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    receipt_id: str
    purchase_order_id: str
    supplier_id: str
    warehouse_code: str
    lines: _containers.RepeatedCompositeFieldContainer[ReceivedLine]
    def __init__(self, receipt_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReceivedLine, _Mapping]]] = ...) -> None: ...
