import datetime

from erp.common.v1 import money_pb2 as _money_pb2
from erp.common.v1 import paging_pb2 as _paging_pb2
from erp.options.v1 import access_pb2 as _access_pb2
from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Product(_message.Message):
    __slots__ = ("sku", "name", "unit_of_measure")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_OF_MEASURE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    name: str
    unit_of_measure: str
    def __init__(self, sku: _Optional[str] = ..., name: _Optional[str] = ..., unit_of_measure: _Optional[str] = ...) -> None: ...

class Warehouse(_message.Message):
    __slots__ = ("code", "name")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class StockLevel(_message.Message):
    __slots__ = ("sku", "warehouse_code", "on_hand", "reserved", "available", "version", "reorder_point", "reorder_quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    REORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    on_hand: int
    reserved: int
    available: int
    version: int
    reorder_point: int
    reorder_quantity: int
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., available: _Optional[int] = ..., version: _Optional[int] = ..., reorder_point: _Optional[int] = ..., reorder_quantity: _Optional[int] = ...) -> None: ...

class StockKey(_message.Message):
    __slots__ = ("sku", "warehouse_code")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ...) -> None: ...

class CreateProductRequest(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class CreateProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class GetProductRequest(_message.Message):
    __slots__ = ("sku",)
    SKU_FIELD_NUMBER: _ClassVar[int]
    sku: str
    def __init__(self, sku: _Optional[str] = ...) -> None: ...

class GetProductResponse(_message.Message):
    __slots__ = ("product",)
    PRODUCT_FIELD_NUMBER: _ClassVar[int]
    product: Product
    def __init__(self, product: _Optional[_Union[Product, _Mapping]] = ...) -> None: ...

class CreateWarehouseRequest(_message.Message):
    __slots__ = ("warehouse",)
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    warehouse: Warehouse
    def __init__(self, warehouse: _Optional[_Union[Warehouse, _Mapping]] = ...) -> None: ...

class CreateWarehouseResponse(_message.Message):
    __slots__ = ("warehouse",)
    WAREHOUSE_FIELD_NUMBER: _ClassVar[int]
    warehouse: Warehouse
    def __init__(self, warehouse: _Optional[_Union[Warehouse, _Mapping]] = ...) -> None: ...

class GetStockRequest(_message.Message):
    __slots__ = ("sku", "warehouse_code")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ...) -> None: ...

class GetStockResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class BatchGetStockRequest(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[StockKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[StockKey, _Mapping]]] = ...) -> None: ...

class BatchGetStockResponse(_message.Message):
    __slots__ = ("stocks", "missing")
    STOCKS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    stocks: _containers.RepeatedCompositeFieldContainer[StockLevel]
    missing: _containers.RepeatedCompositeFieldContainer[StockKey]
    def __init__(self, stocks: _Optional[_Iterable[_Union[StockLevel, _Mapping]]] = ..., missing: _Optional[_Iterable[_Union[StockKey, _Mapping]]] = ...) -> None: ...

class AdjustStockRequest(_message.Message):
    __slots__ = ("request_id", "sku", "warehouse_code", "quantity_delta", "reason", "unit_cost")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    sku: str
    warehouse_code: str
    quantity_delta: int
    reason: str
    unit_cost: str
    def __init__(self, request_id: _Optional[str] = ..., sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., quantity_delta: _Optional[int] = ..., reason: _Optional[str] = ..., unit_cost: _Optional[str] = ...) -> None: ...

class AdjustStockResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class ListStockRequest(_message.Message):
    __slots__ = ("page", "warehouse_code", "sku_prefix", "below_reorder_point")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    SKU_PREFIX_FIELD_NUMBER: _ClassVar[int]
    BELOW_REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    warehouse_code: str
    sku_prefix: str
    below_reorder_point: bool
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., warehouse_code: _Optional[str] = ..., sku_prefix: _Optional[str] = ..., below_reorder_point: _Optional[bool] = ...) -> None: ...

class ListStockResponse(_message.Message):
    __slots__ = ("stocks", "next_page_token")
    STOCKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    stocks: _containers.RepeatedCompositeFieldContainer[StockLevel]
    next_page_token: str
    def __init__(self, stocks: _Optional[_Iterable[_Union[StockLevel, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetReorderPointRequest(_message.Message):
    __slots__ = ("sku", "warehouse_code", "reorder_point", "reorder_quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    REORDER_POINT_FIELD_NUMBER: _ClassVar[int]
    REORDER_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    reorder_point: int
    reorder_quantity: int
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., reorder_point: _Optional[int] = ..., reorder_quantity: _Optional[int] = ...) -> None: ...

class SetReorderPointResponse(_message.Message):
    __slots__ = ("stock",)
    STOCK_FIELD_NUMBER: _ClassVar[int]
    stock: StockLevel
    def __init__(self, stock: _Optional[_Union[StockLevel, _Mapping]] = ...) -> None: ...

class GetStockValuationRequest(_message.Message):
    __slots__ = ("page", "as_of", "warehouse_code", "sku_prefix")
    PAGE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    SKU_PREFIX_FIELD_NUMBER: _ClassVar[int]
    page: _paging_pb2.PageRequest
    as_of: _timestamp_pb2.Timestamp
    warehouse_code: str
    sku_prefix: str
    def __init__(self, page: _Optional[_Union[_paging_pb2.PageRequest, _Mapping]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., warehouse_code: _Optional[str] = ..., sku_prefix: _Optional[str] = ...) -> None: ...

class StockValuationLine(_message.Message):
    __slots__ = ("sku", "warehouse_code", "quantity", "unit_cost", "value")
    SKU_FIELD_NUMBER: _ClassVar[int]
    WAREHOUSE_CODE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    UNIT_COST_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    warehouse_code: str
    quantity: int
    unit_cost: _money_pb2.Money
    value: _money_pb2.Money
    def __init__(self, sku: _Optional[str] = ..., warehouse_code: _Optional[str] = ..., quantity: _Optional[int] = ..., unit_cost: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., value: _Optional[_Union[_money_pb2.Money, _Mapping]] = ...) -> None: ...

class GetStockValuationResponse(_message.Message):
    __slots__ = ("lines", "total_quantity", "total_value", "next_page_token", "as_of")
    LINES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_QUANTITY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_VALUE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[StockValuationLine]
    total_quantity: int
    total_value: _money_pb2.Money
    next_page_token: str
    as_of: _timestamp_pb2.Timestamp
    def __init__(self, lines: _Optional[_Iterable[_Union[StockValuationLine, _Mapping]]] = ..., total_quantity: _Optional[int] = ..., total_value: _Optional[_Union[_money_pb2.Money, _Mapping]] = ..., next_page_token: _Optional[str] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
