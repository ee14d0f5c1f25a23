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

class SupplierStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUPPLIER_STATUS_UNSPECIFIED: _ClassVar[SupplierStatus]
    SUPPLIER_STATUS_ACTIVE: _ClassVar[SupplierStatus]
    SUPPLIER_STATUS_INACTIVE: _ClassVar[SupplierStatus]
    SUPPLIER_STATUS_BLOCKED: _ClassVar[SupplierStatus]

class PurchaseOrderStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_ORDER_STATUS_UNSPECIFIED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_DRAFT: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_SUBMITTED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_APPROVED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_REJECTED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_CANCELLED: _ClassVar[PurchaseOrderStatus]
    PURCHASE_ORDER_STATUS_CLOSED: _ClassVar[PurchaseOrderStatus]

class ReceiptStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RECEIPT_STATUS_UNSPECIFIED: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_PENDING: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_PARTIAL: _ClassVar[ReceiptStatus]
    RECEIPT_STATUS_FULL: _ClassVar[ReceiptStatus]

class BillingStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BILLING_STATUS_UNSPECIFIED: _ClassVar[BillingStatus]
    BILLING_STATUS_NOT_BILLED: _ClassVar[BillingStatus]
    BILLING_STATUS_PARTIAL: _ClassVar[BillingStatus]
    BILLING_STATUS_FULL: _ClassVar[BillingStatus]

class ApprovalDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_DECISION_UNSPECIFIED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_APPROVED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_REJECTED: _ClassVar[ApprovalDecision]

class PurchaseOrderOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURCHASE_ORDER_ORIGIN_UNSPECIFIED: _ClassVar[PurchaseOrderOrigin]
    PURCHASE_ORDER_ORIGIN_MANUAL: _ClassVar[PurchaseOrderOrigin]
    PURCHASE_ORDER_ORIGIN_REPLENISHMENT: _ClassVar[PurchaseOrderOrigin]
SUPPLIER_STATUS_UNSPECIFIED: SupplierStatus
SUPPLIER_STATUS_ACTIVE: SupplierStatus
SUPPLIER_STATUS_INACTIVE: SupplierStatus
SUPPLIER_STATUS_BLOCKED: SupplierStatus
PURCHASE_ORDER_STATUS_UNSPECIFIED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_DRAFT: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_SUBMITTED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_APPROVED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_REJECTED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_CANCELLED: PurchaseOrderStatus
PURCHASE_ORDER_STATUS_CLOSED: PurchaseOrderStatus
RECEIPT_STATUS_UNSPECIFIED: ReceiptStatus
RECEIPT_STATUS_PENDING: ReceiptStatus
RECEIPT_STATUS_PARTIAL: ReceiptStatus
RECEIPT_STATUS_FULL: ReceiptStatus
BILLING_STATUS_UNSPECIFIED: BillingStatus
BILLING_STATUS_NOT_BILLED: BillingStatus
BILLING_STATUS_PARTIAL: BillingStatus
BILLING_STATUS_FULL: BillingStatus
APPROVAL_DECISION_UNSPECIFIED: ApprovalDecision
APPROVAL_DECISION_APPROVED: ApprovalDecision
APPROVAL_DECISION_REJECTED: ApprovalDecision
PURCHASE_ORDER_ORIGIN_UNSPECIFIED: PurchaseOrderOrigin
PURCHASE_ORDER_ORIGIN_MANUAL: PurchaseOrderOrigin
PURCHASE_ORDER_ORIGIN_REPLENISHMENT: PurchaseOrderOrigin

class SupplierContact(_message.Message):
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

class Supplier(_message.Message):
    __slots__ = ("supplier_id", "name", "status", "currency_code", "payment_terms_days", "email", "webhook_url", "contacts", "version")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_TERMS_DAYS_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    name: str
    status: SupplierStatus
    currency_code: str
    payment_terms_days: int
    email: str
    webhook_url: str
    contacts: _containers.RepeatedCompositeFieldContainer[SupplierContact]
    version: int
    def __init__(self, supplier_id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[SupplierStatus, str]] = ..., currency_code: _Optional[str] = ..., payment_terms_days: _Optional[int] = ..., email: _Optional[str] = ..., webhook_url: _Optional[str] = ..., contacts: _Optional[_Iterable[_Union[SupplierContact, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class SupplierPrice(_message.Message):
    __slots__ = ("supplier_id", "sku", "unit_price", "min_quantity", "lead_time_days", "preferred")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    MIN_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    LEAD_TIME_DAYS_FIELD_NUMBER: _ClassVar[int]
    PREFERRED_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    sku: str
    unit_price: _money_pb2.Money
    min_quantity: int
    lead_time_days: int
    preferred: bool
    def __init__(self, supplier_id: _Optional[str] = ..., sku: _Optional[str] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., min_quantity: _Optional[int] = ..., lead_time_days: _Optional[int] = ..., preferred: _Optional[bool] = ...) -> None: ...

class PurchaseOrderLine(_message.Message):
    __slots__ = ("sku", "quantity", "unit_price", "line_no", "expected_date", "received_quantity", "billed_quantity", "receivable_quantity", "receipt_status", "amount")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_PRICE_FIELD_NUMBER: _ClassVar[int]
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_DATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    BILLED_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RECEIVABLE_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    unit_price: _money_pb2.Money
    line_no: int
    expected_date: str
    received_quantity: int
    billed_quantity: int
    receivable_quantity: int
    receipt_status: ReceiptStatus
    amount: _money_pb2.Money
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_price: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., line_no: _Optional[int] = ..., expected_date: _Optional[str] = ..., received_quantity: _Optional[int] = ..., billed_quantity: _Optional[int] = ..., receivable_quantity: _Optional[int] = ..., receipt_status: _Optional[_Union[ReceiptStatus, str]] = ..., amount: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approver", "decision", "comment", "decided_at")
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    approver: str
    decision: ApprovalDecision
    comment: str
    decided_at: _timestamp_pb2.Timestamp
    def __init__(self, approver: _Optional[str] = ..., decision: _Optional[_Union[ApprovalDecision, str]] = ..., comment: _Optional[str] = ..., decided_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PurchaseOrder(_message.Message):
    __slots__ = ("purchase_order_id", "supplier_id", "status", "lines", "number", "currency_code", "warehouse_code", "total", "approvals", "approvals_required", "receipt_status", "billing_status", "note", "origin", "closing_reason", "submitted_by", "version", "created_at", "updated_at")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_STATUS_FIELD_NUMBER: _ClassVar[int]
    BILLING_STATUS_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    CLOSING_REASON_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    supplier_id: str
    status: PurchaseOrderStatus
    lines: _containers.RepeatedCompositeFieldContainer[PurchaseOrderLine]
    number: str
    currency_code: str
    warehouse_code: str
    total: _money_pb2.Money
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    approvals_required: int
    receipt_status: ReceiptStatus
    billing_status: BillingStatus
    note: str
    origin: PurchaseOrderOrigin
    closing_reason: str
    submitted_by: str
    version: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, purchase_order_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., status: _Optional[_Union[PurchaseOrderStatus, str]] = ..., lines: _Optional[_Iterable[_Union[PurchaseOrderLine, _Mapping]]] = ..., number: _Optional[str] = ..., currency_code: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., total: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., receipt_status: _Optional[_Union[ReceiptStatus, str]] = ..., billing_status: _Optional[_Union[BillingStatus, str]] = ..., note: _Optional[str] = ..., origin: _Optional[_Union[PurchaseOrderOrigin, str]] = ..., closing_reason: _Optional[str] = ..., submitted_by: _Optional[str] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GoodsReceiptLine(_message.Message):
    __slots__ = ("line_no", "quantity", "sku")
    LINE_NO_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    line_no: int
    quantity: int
    sku: str
    def __init__(self, line_no: _Optional[int] = ..., quantity: _Optional[int] = ..., sku: _Optional[str] = ...) -> None: ...

class GoodsReceipt(_message.Message):
    __slots__ = ("receipt_id", "purchase_order_id", "warehouse_code", "lines", "received_by", "reference", "received_at")
    RECEIPT_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    receipt_id: str
    purchase_order_id: str
    warehouse_code: str
    lines: _containers.RepeatedCompositeFieldContainer[GoodsReceiptLine]
    received_by: str
    reference: str
    received_at: _timestamp_pb2.Timestamp
    def __init__(self, receipt_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[GoodsReceiptLine, _Mapping]]] = ..., received_by: _Optional[str] = ..., reference: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateSupplierRequest(_message.Message):
    __slots__ = ("supplier",)
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    supplier: Supplier
    def __init__(self, supplier: _Optional[_Union[Supplier, _Mapping]] = ...) -> None: ...

class CreateSupplierResponse(_message.Message):
    __slots__ = ("supplier",)
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    supplier: Supplier
    def __init__(self, supplier: _Optional[_Union[Supplier, _Mapping]] = ...) -> None: ...

class GetSupplierRequest(_message.Message):
    __slots__ = ("supplier_id",)
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    def __init__(self, supplier_id: _Optional[str] = ...) -> None: ...

class GetSupplierResponse(_message.Message):
    __slots__ = ("supplier",)
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    supplier: Supplier
    def __init__(self, supplier: _Optional[_Union[Supplier, _Mapping]] = ...) -> None: ...

class ListSuppliersRequest(_message.Message):
    __slots__ = ("page", "status")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    status: SupplierStatus
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., status: _Optional[_Union[SupplierStatus, str]] = ...) -> None: ...

class ListSuppliersResponse(_message.Message):
    __slots__ = ("suppliers", "next_page_token")
    SUPPLIERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    suppliers: _containers.RepeatedCompositeFieldContainer[Supplier]
    next_page_token: str
    def __init__(self, suppliers: _Optional[_Iterable[_Union[Supplier, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSupplierStatusRequest(_message.Message):
    __slots__ = ("supplier_id", "status")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    status: SupplierStatus
    def __init__(self, supplier_id: _Optional[str] = ..., status: _Optional[_Union[SupplierStatus, str]] = ...) -> None: ...

class UpdateSupplierStatusResponse(_message.Message):
    __slots__ = ("supplier",)
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    supplier: Supplier
    def __init__(self, supplier: _Optional[_Union[Supplier, _Mapping]] = ...) -> None: ...

class SetSupplierPriceRequest(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: SupplierPrice
    def __init__(self, price: _Optional[_Union[SupplierPrice, _Mapping]] = ...) -> None: ...

class SetSupplierPriceResponse(_message.Message):
    __slots__ = ("price",)
    PRICE_FIELD_NUMBER: _ClassVar[int]
    price: SupplierPrice
    def __init__(self, price: _Optional[_Union[SupplierPrice, _Mapping]] = ...) -> None: ...

class ListSupplierPricesRequest(_message.Message):
    __slots__ = ("supplier_id", "sku")
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    supplier_id: str
    sku: str
    def __init__(self, supplier_id: _Optional[str] = ..., sku: _Optional[str] = ...) -> None: ...

class ListSupplierPricesResponse(_message.Message):
    __slots__ = ("prices",)
    PRICES_FIELD_NUMBER: _ClassVar[int]
    prices: _containers.RepeatedCompositeFieldContainer[SupplierPrice]
    def __init__(self, prices: _Optional[_Iterable[_Union[SupplierPrice, _Mapping]]] = ...) -> None: ...

class CreatePurchaseOrderRequest(_message.Message):
    __slots__ = ("request_id", "supplier_id", "warehouse_code", "lines", "note")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    supplier_id: str
    warehouse_code: str
    lines: _containers.RepeatedCompositeFieldContainer[PurchaseOrderLine]
    note: str
    def __init__(self, request_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[PurchaseOrderLine, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class CreatePurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class UpdatePurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "expected_version", "warehouse_code", "lines", "note")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    expected_version: int
    warehouse_code: str
    lines: _containers.RepeatedCompositeFieldContainer[PurchaseOrderLine]
    note: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., warehouse_code: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[PurchaseOrderLine, _Mapping]]] = ..., note: _Optional[str] = ...) -> None: ...

class UpdatePurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class SubmitPurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "submitted_by")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    submitted_by: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., submitted_by: _Optional[str] = ...) -> None: ...

class SubmitPurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class ApprovePurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "approver", "comment")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    approver: str
    comment: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., approver: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ApprovePurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class RejectPurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "approver", "reason")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    approver: str
    reason: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., approver: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RejectPurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class CancelPurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "reason")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    reason: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelPurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class ClosePurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id", "reason")
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    reason: str
    def __init__(self, purchase_order_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ClosePurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class GetPurchaseOrderRequest(_message.Message):
    __slots__ = ("purchase_order_id",)
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    def __init__(self, purchase_order_id: _Optional[str] = ...) -> None: ...

class GetPurchaseOrderResponse(_message.Message):
    __slots__ = ("purchase_order",)
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    purchase_order: PurchaseOrder
    def __init__(self, purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class ListPurchaseOrdersRequest(_message.Message):
    __slots__ = ("page", "supplier_id", "status", "created_after", "created_before")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    supplier_id: str
    status: PurchaseOrderStatus
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., supplier_id: _Optional[str] = ..., status: _Optional[_Union[PurchaseOrderStatus, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListPurchaseOrdersResponse(_message.Message):
    __slots__ = ("purchase_orders", "next_page_token")
    PURCHASE_ORDERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    purchase_orders: _containers.RepeatedCompositeFieldContainer[PurchaseOrder]
    next_page_token: str
    def __init__(self, purchase_orders: _Optional[_Iterable[_Union[PurchaseOrder, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordGoodsReceiptRequest(_message.Message):
    __slots__ = ("request_id", "purchase_order_id", "lines", "received_by", "reference")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BY_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    purchase_order_id: str
    lines: _containers.RepeatedCompositeFieldContainer[GoodsReceiptLine]
    received_by: str
    reference: str
    def __init__(self, request_id: _Optional[str] = ..., purchase_order_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[GoodsReceiptLine, _Mapping]]] = ..., received_by: _Optional[str] = ..., reference: _Optional[str] = ...) -> None: ...

class RecordGoodsReceiptResponse(_message.Message):
    __slots__ = ("receipt", "purchase_order")
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_ORDER_FIELD_NUMBER: _ClassVar[int]
    receipt: GoodsReceipt
    purchase_order: PurchaseOrder
    def __init__(self, receipt: _Optional[_Union[GoodsReceipt, _Mapping]] = ..., purchase_order: _Optional[_Union[PurchaseOrder, _Mapping]] = ...) -> None: ...

class ListGoodsReceiptsRequest(_message.Message):
    __slots__ = ("purchase_order_id",)
    PURCHASE_ORDER_ID_FIELD_NUMBER: _ClassVar[int]
    purchase_order_id: str
    def __init__(self, purchase_order_id: _Optional[str] = ...) -> None: ...

class ListGoodsReceiptsResponse(_message.Message):
    __slots__ = ("receipts",)
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[GoodsReceipt]
    def __init__(self, receipts: _Optional[_Iterable[_Union[GoodsReceipt, _Mapping]]] = ...) -> None: ...
