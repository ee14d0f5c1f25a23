from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NotificationSent(_message.Message):
    __slots__ = ("delivery_id", "event_id", "event_type", "customer_id", "order_id", "channel", "attempts")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    event_type: str
    customer_id: str
    order_id: str
    channel: str
    attempts: int
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., channel: _Optional[str] = ..., attempts: _Optional[int] = ...) -> None: ...

class NotificationFailed(_message.Message):
    __slots__ = ("delivery_id", "event_id", "event_type", "customer_id", "order_id", "channel", "attempts", "error")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    event_type: str
    customer_id: str
    order_id: str
    channel: str
    attempts: int
    error: str
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., event_type: _Optional[str] = ..., customer_id: _Optional[str] = ..., order_id: _Optional[str] = ..., channel: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class DeliveriesSettled(_message.Message):
    __slots__ = ("sent", "failed")
    SENT_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    sent: _containers.RepeatedCompositeFieldContainer[NotificationSent]
    failed: _containers.RepeatedCompositeFieldContainer[NotificationFailed]
    def __init__(self, sent: _Optional[_Iterable[_Union[NotificationSent, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[NotificationFailed, _Mapping]]] = ...) -> None: ...
