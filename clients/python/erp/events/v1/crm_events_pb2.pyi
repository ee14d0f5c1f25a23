import datetime

from erp.common.v1 import money_pb2 as _money_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomerUpdated(_message.Message):
    __slots__ = ("customer_id", "name", "email", "webhook_url", "payment_terms_days", "status", "webhook_secrets")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TERMS_DAYS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_SECRETS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    name: str
    email: str
    webhook_url: str
    payment_terms_days: int
    status: str
    webhook_secrets: WebhookSecrets
    def __init__(self, customer_id: _Optional[str] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., webhook_url: _Optional[str] = ..., payment_terms_days: _Optional[int] = ..., status: _Optional[str] = ..., webhook_secrets: _Optional[_Union[WebhookSecrets, _Mapping]] = ...) -> None: ...

class WebhookSecrets(_message.Message):
    __slots__ = ("current", "previous", "previous_expires_at")
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    current: WebhookSecretRef
    previous: WebhookSecretRef
    previous_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, current: _Optional[_Union[WebhookSecretRef, _Mapping]] = ..., previous: _Optional[_Union[WebhookSecretRef, _Mapping]] = ..., previous_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WebhookSecretRef(_message.Message):
    __slots__ = ("secret_id", "key_id")
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    secret_id: str
    key_id: str
    def __init__(self, secret_id: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class CreditApproved(_message.Message):
    __slots__ = ("order_id", "customer_id", "exposure", "credit_limit")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPOSURE_FIELD_NUMBER: _ClassVar[int]
    CREDIT_LIMIT_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    exposure: _money_pb2.Money
    credit_limit: _money_pb2.Money
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., exposure: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., credit_limit: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class CreditRejected(_message.Message):
    __slots__ = ("order_id", "customer_id", "reason")
    ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    order_id: str
    customer_id: str
    reason: str
    def __init__(self, order_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
