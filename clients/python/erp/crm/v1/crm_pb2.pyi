import datetime

from erp.common.v1 import money_pb2 as _money_pb2
from erp.common.v1 import paging_pb2 as _paging_pb2
from erp.options.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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

class Contact(_message.Message):
    __slots__ = ("name", "email", "phone", "role")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: str
    phone: str
    role: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("customer_id", "name", "status", "credit_limit", "payment_terms_days", "email", "contacts", "webhook_url", "version", "webhook_signing")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TERMS_DAYS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SIGNING_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    name: str
    status: CustomerStatus
    credit_limit: _money_pb2.Money
    payment_terms_days: int
    email: str
    contacts: _containers.RepeatedCompositeFieldContainer[Contact]
    webhook_url: str
    version: int
    webhook_signing: WebhookSigning
    def __init__(self, customer_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., credit_limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., payment_terms_days: _Optional[int] = ..., email: _Optional[str] = ..., contacts: _Optional[_Iterable[_Union[Contact, _Mapping]]] = ..., webhook_url: _Optional[str] = ..., version: _Optional[int] = ..., webhook_signing: _Optional[_Union[WebhookSigning, _Mapping]] = ...) -> None: ...

class WebhookSigning(_message.Message):
    __slots__ = ("secret_version", "secret_created_at", "previous_secret_expires_at", "key_id")
    SECRET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SECRET_CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SECRET_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    secret_version: int
    secret_created_at: _timestamp_pb2.Timestamp
    previous_secret_expires_at: _timestamp_pb2.Timestamp
    key_id: str
    def __init__(self, secret_version: _Optional[int] = ..., secret_created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., previous_secret_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., key_id: _Optional[str] = ...) -> None: ...

class Exposure(_message.Message):
    __slots__ = ("open_orders", "unpaid_invoices", "total", "available_credit")
    OPEN_ORDERS_FIELD_NUMBER: _ClassVar[int]
    UNPAID_INVOICES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_CREDIT_FIELD_NUMBER: _ClassVar[int]
    open_orders: _money_pb2.Money
    unpaid_invoices: _money_pb2.Money
    total: _money_pb2.Money
    available_credit: _money_pb2.Money
    def __init__(self, open_orders: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., unpaid_invoices: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., available_credit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class CreateCustomerRequest(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class CreateCustomerResponse(_message.Message):
    __slots__ = ("customer", "webhook_secret")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    webhook_secret: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer", "exposure")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    exposure: Exposure
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., exposure: _Optional[_Union[Exposure, _Mapping]] = ...) -> None: ...

class ListCustomersRequest(_message.Message):
    __slots__ = ("page", "status")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    status: CustomerStatus
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., status: _Optional[_Union[CustomerStatus, str]] = ...) -> None: ...

class ListCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateCustomerStatusRequest(_message.Message):
    __slots__ = ("customer_id", "status", "reason")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    status: CustomerStatus
    reason: str
    def __init__(self, customer_id: _Optional[str] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateCustomerStatusResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class SetCreditLimitRequest(_message.Message):
    __slots__ = ("customer_id", "credit_limit")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    credit_limit: _money_pb2.Money
    def __init__(self, customer_id: _Optional[str] = ..., credit_limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class SetCreditLimitResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class SetWebhookUrlRequest(_message.Message):
    __slots__ = ("customer_id", "webhook_url")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    webhook_url: str
    def __init__(self, customer_id: _Optional[str] = ..., webhook_url: _Optional[str] = ...) -> None: ...

class SetWebhookUrlResponse(_message.Message):
    __slots__ = ("customer", "webhook_secret")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    webhook_secret: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., webhook_secret: _Optional[str] = ...) -> None: ...

class RotateWebhookSecretRequest(_message.Message):
    __slots__ = ("customer_id", "overlap")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    overlap: _duration_pb2.Duration
    def __init__(self, customer_id: _Optional[str] = ..., overlap: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RotateWebhookSecretResponse(_message.Message):
    __slots__ = ("customer", "webhook_secret")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRET_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    webhook_secret: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., webhook_secret: _Optional[str] = ...) -> None: ...
