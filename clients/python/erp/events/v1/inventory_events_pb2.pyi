from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReservationFailureReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_FAILURE_REASON_UNSPECIFIED: _ClassVar[ReservationFailureReason]
    RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK: _ClassVar[ReservationFailureReason]
    RESERVATION_FAILURE_REASON_UNKNOWN_SKU: _ClassVar[ReservationFailureReason]
    RESERVATION_FAILURE_REASON_UNKNOWN_WAREHOUSE: _ClassVar[ReservationFailureReason]
    RESERVATION_FAILURE_REASON_INVALID_QUANTITY: _ClassVar[ReservationFailureReason]
RESERVATION_FAILURE_REASON_UNSPECIFIED: ReservationFailureReason
RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK: ReservationFailureReason
RESERVATION_FAILURE_REASON_UNKNOWN_SKU: ReservationFailureReason
RESERVATION_FAILURE_REASON_UNKNOWN_WAREHOUSE: ReservationFailureReason
RESERVATION_FAILURE_REASON_INVALID_QUANTITY: ReservationFailureReason

class ReservedLine(_message.Message):
    __slots__ = ("line_no", "sku", "warehouse_code", "quantity", "cost", "unit_cost")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    sku: str
    warehouse_code: str
    quantity: int
    cost: _money_pb2.Money
    unit_cost: str
    def __init__(self, line_no: _Optional[int] = ..., sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., quantity: _Optional[int] = ..., cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., unit_cost: _Optional[str] = ...) -> None: ...

class StockReserved(_message.Message):
    __slots__ = ("order_id", "lines")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservedLine]
    def __init__(self, order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservedLine, _Mapping]]] = ...) -> None: ...

class UnreservableLine(_message.Message):
    __slots__ = ("line_no", "sku", "warehouse_code", "requested", "available", "reason")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    sku: str
    warehouse_code: str
    requested: int
    available: int
    reason: ReservationFailureReason
    def __init__(self, line_no: _Optional[int] = ..., sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., requested: _Optional[int] = ..., available: _Optional[int] = ..., reason: _Optional[_Union[ReservationFailureReason, str]] = ...) -> None: ...

class StockReservationFailed(_message.Message):
    __slots__ = ("order_id", "lines")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[UnreservableLine]
    def __init__(self, order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[UnreservableLine, _Mapping]]] = ...) -> None: ...

class StockAdjusted(_message.Message):
    __slots__ = ("sku", "warehouse_code", "quantity_delta", "on_hand", "reason", "value_delta", "unit_cost", "goods_receipt_id", "request_id")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_DELTA_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VALUE_DELTA_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    GOODS_RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    quantity_delta: int
    on_hand: int
    reason: str
    value_delta: _money_pb2.Money
    unit_cost: str
    goods_receipt_id: str
    request_id: str
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., quantity_delta: _Optional[int] = ..., on_hand: _Optional[int] = ..., reason: _Optional[str] = ..., value_delta: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., unit_cost: _Optional[str] = ..., goods_receipt_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class StockReleased(_message.Message):
    __slots__ = ("order_id", "lines")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservedLine]
    def __init__(self, order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservedLine, _Mapping]]] = ...) -> None: ...

class StockIssued(_message.Message):
    __slots__ = ("order_id", "lines")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservedLine]
    def __init__(self, order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservedLine, _Mapping]]] = ...) -> None: ...

class StockBelowReorderPoint(_message.Message):
    __slots__ = ("sku", "warehouse_code", "available", "reorder_point", "reorder_quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    REORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    available: int
    reorder_point: int
    reorder_quantity: int
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., available: _Optional[int] = ..., reorder_point: _Optional[int] = ..., reorder_quantity: _Optional[int] = ...) -> None: ...
