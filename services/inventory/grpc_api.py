"""The InventoryService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

import functools
from decimal import Decimal

from erp.common.v1 import money_pb2
from erp.inventory.v1 import inventory_pb2 as pb
from erp.inventory.v1 import inventory_pb2_grpc
from mesh import protoconv
from mesh.idempotency import in_one_transaction
from mesh.service import Runtime
from services.inventory import domain, handlers
from services.inventory.adapters import InventoryUnitOfWork
from services.inventory.domain import StockLevel


def _level(level: StockLevel) -> pb.StockLevel:
    return pb.StockLevel(sku=level.sku, warehouse_code=level.warehouse_code, on_hand=level.on_hand,
                         reserved=level.reserved, available=level.available, version=level.version,
                         reorder_point=level.reorder_point, reorder_quantity=level.reorder_quantity)


@functools.lru_cache(maxsize=8192)
def _stock_response(level: StockLevel) -> pb.GetStockResponse:
    """GetStock's answer for a level, built once: hot SKUs are read far more often than they change.
    Calls that read the same level share it, and grpc only serializes it; never change one."""
    return pb.GetStockResponse(stock=_level(level))


def valuation_currency(settings) -> str:
    """ERP_INVENTORY_CURRENCY (default EUR): what inventory values stock in."""
    return settings.variables.text("ERP_INVENTORY_CURRENCY", "EUR") if settings is not None else "EUR"


def _product(p: domain.Product) -> pb.Product:
    return pb.Product(sku=p.sku, name=p.name, unit_of_measure=p.unit_of_measure)


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, runtime: Runtime[InventoryUnitOfWork]) -> None:
        self.runtime = runtime
        self.currency = valuation_currency(runtime.settings)

    def CreateProduct(self, request: pb.CreateProductRequest, context) -> pb.CreateProductResponse:
        p = request.product
        product = handlers.create_product(self.runtime.uow(), domain.CreateProduct(p.sku, p.name, p.unit_of_measure))
        return pb.CreateProductResponse(product=_product(product))

    def GetProduct(self, request: pb.GetProductRequest, context) -> pb.GetProductResponse:
        return pb.GetProductResponse(product=_product(handlers.get_product(self.runtime.uow(), request.sku)))

    def CreateWarehouse(self, request: pb.CreateWarehouseRequest, context) -> pb.CreateWarehouseResponse:
        w = handlers.create_warehouse(self.runtime.uow(),
                                      domain.CreateWarehouse(request.warehouse.code, request.warehouse.name))
        return pb.CreateWarehouseResponse(warehouse=pb.Warehouse(code=w.code, name=w.name))

    def GetStock(self, request: pb.GetStockRequest, context) -> pb.GetStockResponse:
        return _stock_response(handlers.get_stock(self.runtime.uow, self.runtime.cache, request.sku,
                                                  request.warehouse_code))

    def BatchGetStock(self, request: pb.BatchGetStockRequest, context) -> pb.BatchGetStockResponse:
        levels, missing = handlers.batch_get_stock(self.runtime.uow(),
                                                   [(k.sku, k.warehouse_code) for k in request.keys])
        return pb.BatchGetStockResponse(stocks=[_level(x) for x in levels],
                                        missing=[pb.StockKey(sku=s, warehouse_code=w) for s, w in missing])

    @in_one_transaction
    def AdjustStock(self, request: pb.AdjustStockRequest, context) -> pb.AdjustStockResponse:
        level = handlers.adjust_stock(self.runtime.uow(), self.runtime.cache, domain.AdjustStock(
            request.request_id, request.sku, request.warehouse_code, request.quantity_delta, request.reason,
            request.unit_cost), self.currency)
        return pb.AdjustStockResponse(stock=_level(level))

    def ListStock(self, request: pb.ListStockRequest, context) -> pb.ListStockResponse:
        levels, token = handlers.list_stock(
            self.runtime.uow(), warehouse_code=request.warehouse_code, sku_prefix=request.sku_prefix,
            below_reorder_point=request.below_reorder_point, page_size=request.page.page_size,
            page_token=request.page.page_token)
        return pb.ListStockResponse(stocks=[_level(x) for x in levels], next_page_token=token)

    def SetReorderPoint(self, request: pb.SetReorderPointRequest, context) -> pb.SetReorderPointResponse:
        level = handlers.set_reorder_point(self.runtime.uow(), self.runtime.cache, domain.SetReorderPoint(
            request.sku, request.warehouse_code, request.reorder_point, request.reorder_quantity))
        return pb.SetReorderPointResponse(stock=_level(level))

    def GetStockValuation(self, request: pb.GetStockValuationRequest, context) -> pb.GetStockValuationResponse:
        as_of = protoconv.optional_moment(request, "as_of")
        lines, (quantity, value), moment, token = handlers.stock_valuation(
            self.runtime.uow(), as_of=as_of, warehouse_code=request.warehouse_code, sku_prefix=request.sku_prefix,
            page_size=request.page.page_size, page_token=request.page.page_token)

        def m(amount, places: str = "0.01") -> money_pb2.Money:  # values in cents, unit costs to 4 places
            return protoconv.money(self.currency, Decimal(amount).quantize(Decimal(places)))

        return pb.GetStockValuationResponse(
            lines=[pb.StockValuationLine(sku=sku, warehouse_code=wh, quantity=qty, unit_cost=m(cost, "0.0001"),
                                         value=m(val)) for sku, wh, qty, val, cost in lines],
            total_quantity=quantity, total_value=m(value), next_page_token=token, as_of=protoconv.timestamp(moment))
