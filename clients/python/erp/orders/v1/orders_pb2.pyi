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

class FulfilmentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FULFILMENT_STATUS_UNSPECIFIED: _ClassVar[FulfilmentStatus]
    FULFILMENT_STATUS_UNFULFILLED: _ClassVar[FulfilmentStatus]
    FULFILMENT_STATUS_PARTLY_SHIPPED: _ClassVar[FulfilmentStatus]
    FULFILMENT_STATUS_SHIPPED: _ClassVar[FulfilmentStatus]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_NOT_INVOICED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_UNPAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PARTLY_PAID: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PAID: _ClassVar[PaymentStatus]

class OrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ORDER_STATUS_UNSPECIFIED: _ClassVar[OrderStatus]
    ORDER_STATUS_PENDING: _ClassVar[OrderStatus]
    ORDER_STATUS_CONFIRMED: _ClassVar[OrderStatus]
    ORDER_STATUS_REJECTED: _ClassVar[OrderStatus]
    ORDER_STATUS_CANCELLED: _ClassVar[OrderStatus]
    ORDER_STATUS_SHIPPED: _ClassVar[OrderStatus]
    ORDER_STATUS_INVOICED: _ClassVar[OrderStatus]
    ORDER_STATUS_COMPLETED: _ClassVar[OrderStatus]

class TimelineStepKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TIMELINE_STEP_KIND_UNSPECIFIED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_PLACED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_STOCK_RESERVED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_STOCK_REFUSED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_CREDIT_APPROVED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_CREDIT_REJECTED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_CONFIRMED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_REJECTED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_DRIVEN_AGAIN: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_INVOICED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_NOTIFIED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_NOTIFICATION_FAILED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_SHIPPED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_STOCK_ISSUED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_PAID: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_CANCELLED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_STOCK_RELEASED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_CREDIT_NOTED: _ClassVar[TimelineStepKind]
    TIMELINE_STEP_KIND_COMPLETED: _ClassVar[TimelineStepKind]
FULFILMENT_STATUS_UNSPECIFIED: FulfilmentStatus
FULFILMENT_STATUS_UNFULFILLED: FulfilmentStatus
FULFILMENT_STATUS_PARTLY_SHIPPED: FulfilmentStatus
FULFILMENT_STATUS_SHIPPED: FulfilmentStatus
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_NOT_INVOICED: PaymentStatus
PAYMENT_STATUS_UNPAID: PaymentStatus
PAYMENT_STATUS_PARTLY_PAID: PaymentStatus
PAYMENT_STATUS_PAID: PaymentStatus
ORDER_STATUS_UNSPECIFIED: OrderStatus
ORDER_STATUS_PENDING: OrderStatus
ORDER_STATUS_CONFIRMED: OrderStatus
ORDER_STATUS_REJECTED: OrderStatus
ORDER_STATUS_CANCELLED: OrderStatus
ORDER_STATUS_SHIPPED: OrderStatus
ORDER_STATUS_INVOICED: OrderStatus
ORDER_STATUS_COMPLETED: OrderStatus
TIMELINE_STEP_KIND_UNSPECIFIED: TimelineStepKind
TIMELINE_STEP_KIND_PLACED: TimelineStepKind
TIMELINE_STEP_KIND_STOCK_RESERVED: TimelineStepKind
TIMELINE_STEP_KIND_STOCK_REFUSED: TimelineStepKind
TIMELINE_STEP_KIND_CREDIT_APPROVED: TimelineStepKind
TIMELINE_STEP_KIND_CREDIT_REJECTED: TimelineStepKind
TIMELINE_STEP_KIND_CONFIRMED: TimelineStepKind
TIMELINE_STEP_KIND_REJECTED: TimelineStepKind
TIMELINE_STEP_KIND_DRIVEN_AGAIN: TimelineStepKind
TIMELINE_STEP_KIND_INVOICED: TimelineStepKind
TIMELINE_STEP_KIND_NOTIFIED: TimelineStepKind
TIMELINE_STEP_KIND_NOTIFICATION_FAILED: TimelineStepKind
TIMELINE_STEP_KIND_SHIPPED: TimelineStepKind
TIMELINE_STEP_KIND_STOCK_ISSUED: TimelineStepKind
TIMELINE_STEP_KIND_PAID: TimelineStepKind
TIMELINE_STEP_KIND_CANCELLED: TimelineStepKind
TIMELINE_STEP_KIND_STOCK_RELEASED: TimelineStepKind
TIMELINE_STEP_KIND_CREDIT_NOTED: TimelineStepKind
TIMELINE_STEP_KIND_COMPLETED: TimelineStepKind

class OrderLine(_message.Message):
    __slots__ = ("sku", "warehouse_code", "quantity", "unit_price", "shipped_quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    SHIPPED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    quantity: int
    unit_price: _money_pb2.Money
    shipped_quantity: int
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., shipped_quantity: _Optional[int] = ...) -> None: ...

class Order(_message.Message):
    __slots__ = ("order_id", "customer_id", "status", "lines", "total", "rejection_reason", "version", "created_at", "updated_at", "fulfilment_status", "payment_status", "invoice_id", "invoiced_amount", "amount_paid", "cancellation_reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    REJECTION_REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    FULFILMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_STATUS_FIELD_NUMBER: _ClassVar[int]
    INVOICE_ID_FIELD_NUMBER: _ClassVar[int]
    INVOICED_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_PAID_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    status: OrderStatus
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    total: _money_pb2.Money
    rejection_reason: str
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    fulfilment_status: FulfilmentStatus
    payment_status: PaymentStatus
    invoice_id: str
    invoiced_amount: _money_pb2.Money
    amount_paid: _money_pb2.Money
    cancellation_reason: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., rejection_reason: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fulfilment_status: _Optional[_Union[FulfilmentStatus, str]] = ..., payment_status: _Optional[_Union[PaymentStatus, str]] = ..., invoice_id: _Optional[str] = ..., invoiced_amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., amount_paid: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., cancellation_reason: _Optional[str] = ...) -> None: ...

class PlaceOrderRequest(_message.Message):
    __slots__ = ("request_id", "customer_id", "currency_code", "lines")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    customer_id: str
    currency_code: str
    lines: _containers.RepeatedCompositeFieldContainer[OrderLine]
    def __init__(self, request_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., currency_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[OrderLine, _Mapping]]] = ...) -> None: ...

class PlaceOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class GetOrderRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class GetOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class ListOrdersRequest(_message.Message):
    __slots__ = ("page", "customer_id", "status", "created_after", "created_before")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    customer_id: str
    status: OrderStatus
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., customer_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListOrdersResponse(_message.Message):
    __slots__ = ("orders", "next_page_token")
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orders: _containers.RepeatedCompositeFieldContainer[Order]
    next_page_token: str
    def __init__(self, orders: _Optional[_Iterable[_Union[Order, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelOrderRequest(_message.Message):
    __slots__ = ("order_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelOrderResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class MarkShippedRequest(_message.Message):
    __slots__ = ("order_id",)
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    def __init__(self, order_id: _Optional[str] = ...) -> None: ...

class MarkShippedResponse(_message.Message):
    __slots__ = ("order",)
    ORDER_FIELD_NUMBER: _ClassVar[int]
    order: Order
    def __init__(self, order: _Optional[_Union[Order, _Mapping]] = ...) -> None: ...

class TimelineStep(_message.Message):
    __slots__ = ("occurred_at", "service", "kind", "detail", "event_id")
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    occurred_at: _timestamp_pb2.Timestamp
    service: str
    kind: TimelineStepKind
    detail: str
    event_id: str
    def __init__(self, occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., service: _Optional[str] = ..., kind: _Optional[_Union[TimelineStepKind, str]] = ..., detail: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class AwaitedStep(_message.Message):
    __slots__ = ("service", "description")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    service: str
    description: str
    def __init__(self, service: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class GetOrderTimelineRequest(_message.Message):
    __slots__ = ("order_id", "page")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    page: _paging_pb2.PageRequest
    def __init__(self, order_id: _Optional[str] = ..., page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ...) -> None: ...

class GetOrderTimelineResponse(_message.Message):
    __slots__ = ("order_id", "status", "steps", "awaiting", "next_page_token")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    AWAITING_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    status: OrderStatus
    steps: _containers.RepeatedCompositeFieldContainer[TimelineStep]
    awaiting: _containers.RepeatedCompositeFieldContainer[AwaitedStep]
    next_page_token: str
    def __init__(self, order_id: _Optional[str] = ..., status: _Optional[_Union[OrderStatus, str]] = ..., steps: _Optional[_Iterable[_Union[TimelineStep, _Mapping]]] = ..., awaiting: _Optional[_Iterable[_Union[AwaitedStep, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
