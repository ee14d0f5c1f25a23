from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Channel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANNEL_UNSPECIFIED: _ClassVar[Channel]
    CHANNEL_EMAIL: _ClassVar[Channel]
    CHANNEL_WEBHOOK: _ClassVar[Channel]
CHANNEL_UNSPECIFIED: Channel
CHANNEL_EMAIL: Channel
CHANNEL_WEBHOOK: Channel

class Delivery(_message.Message):
    __slots__ = ("delivery_id", "event_id", "recipient", "channel", "attempts", "delivered")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    event_id: str
    recipient: str
    channel: Channel
    attempts: int
    delivered: bool
    def __init__(self, delivery_id: _Optional[str] = ..., event_id: _Optional[str] = ..., recipient: _Optional[str] = ..., channel: _Optional[_Union[Channel, str]] = ..., attempts: _Optional[int] = ..., delivered: _Optional[bool] = ...) -> None: ...
