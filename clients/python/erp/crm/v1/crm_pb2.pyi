from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOMER_STATUS_UNSPECIFIED: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_ACTIVE: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_ON_HOLD: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_BLOCKED: _ClassVar[CustomerStatus]
CUSTOMER_STATUS_UNSPECIFIED: CustomerStatus
CUSTOMER_STATUS_ACTIVE: CustomerStatus
CUSTOMER_STATUS_ON_HOLD: CustomerStatus
CUSTOMER_STATUS_BLOCKED: CustomerStatus

class Customer(_message.Message):
    __slots__ = ("customer_id", "name", "status", "credit_limit", "payment_terms_days", "email")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TERMS_DAYS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    name: str
    status: CustomerStatus
    credit_limit: _money_pb2.Money
    payment_terms_days: int
    email: str
    def __init__(self, customer_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., credit_limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payment_terms_days: _Optional[int] = ..., email: _Optional[str] = ...) -> None: ...
