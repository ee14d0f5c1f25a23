from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
ACCESS_FIELD_NUMBER: _ClassVar[int]
access: _descriptor.FieldDescriptor

class Access(_message.Message):
    __slots__ = ("scopes", "public", "internal_only", "rate_class")
    SCOPES_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    RATE_CLASS_FIELD_NUMBER: _ClassVar[int]
    scopes: _containers.RepeatedScalarFieldContainer[str]
    public: bool
    internal_only: bool
    rate_class: str
    def __init__(self, scopes: _Optional[_Iterable[str]] = ..., public: _Optional[bool] = ..., internal_only: _Optional[bool] = ..., rate_class: _Optional[str] = ...) -> None: ...
