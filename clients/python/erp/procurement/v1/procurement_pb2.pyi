from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PurchaseOrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_ORDER_STATUS_UNSPECIFIED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_DRAFT: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_SUBMITTED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_APPROVED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_REJECTED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_CANCELLED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_CLOSED: _ClassVar[PurchaseOrderStatus]
PURCHASE_ORDER_STATUS_UNSPECIFIED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_DRAFT: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_SUBMITTED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_APPROVED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_REJECTED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_CANCELLED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_CLOSED: PurchaseOrderStatus

class PurchaseOrderLine(_message.Message):
    __slots__ = ("sku", "quantity", "unit_price")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    unit_price: _money_pb2.Money
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class PurchaseOrder(_message.Message):
    __slots__ = ("purchase_order_id", "supplier_id", "status", "lines")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    supplier_id: str
    status: PurchaseOrderStatus
    lines: _containers.RepeatedCompositeFieldContainer[PurchaseOrderLine]
    def __init__(self, purchase_order_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., status: _Optional[_Union[PurchaseOrderStatus, str]] = ..., lines: _Optional[_Iterable[_Union[PurchaseOrderLine, _Mapping]]] = ...) -> None: ...
