"""ErpClient: the mesh's RPCs as typed methods with deadlines, retries and request ids.

    with ErpClient.from_env() as erp:
        erp.adjust_stock("SKU-1", "MAIN", 10, reason="initial count")
        order = erp.place_order("CUST-1", [Line("SKU-1", 2, "9.99")], currency_code="EUR")
        order = erp.wait_for_order(order.order_id)
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from erp.common.v1 import money_pb2
from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc as inv_grpc
from erp.orders.v1 import orders_pb2 as ord_pb
from erp.orders.v1 import orders_pb2_grpc as ord_grpc
from erp_client.channel import DEFAULT_TIMEOUT_SECONDS, open_channel

FINAL_ORDER_STATES = frozenset({
    ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_REJECTED, ord_pb.ORDER_STATUS_CANCELLED,
    ord_pb.ORDER_STATUS_SHIPPED, ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_COMPLETED,
})


@dataclasses.dataclass(frozen=True)
class Line:
    """One order line: quantity of a SKU at a unit price (a decimal string)."""

    sku: str
    quantity: int
    unit_price: str
    warehouse_code: str = ""


def new_request_id() -> str:
    return str(uuid.uuid4())


class ErpClient:
    def __init__(self, inventory_target: str, orders_target: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 interceptors: Iterable[grpc.UnaryUnaryClientInterceptor] = ()) -> None:
        self.timeout = timeout
        self._channels = {
            "inventory": open_channel(inventory_target, timeout=timeout, interceptors=tuple(interceptors)),
            "orders": open_channel(orders_target, timeout=timeout, interceptors=tuple(interceptors)),
        }
        self.inventory = inv_grpc.InventoryServiceStub(self._channels["inventory"])
        self.orders = ord_grpc.OrderServiceStub(self._channels["orders"])

    @classmethod
    def from_env(cls, **kwargs) -> ErpClient:
        """Targets from ERP_INVENTORY_TARGET and ERP_ORDERS_TARGET (defaults: make run's ports)."""
        return cls(os.environ.get("ERP_INVENTORY_TARGET", "127.0.0.1:50051"),
                   os.environ.get("ERP_ORDERS_TARGET", "127.0.0.1:50052"), **kwargs)

    def __enter__(self) -> ErpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()

    # inventory
    def create_product(self, sku: str, name: str, unit_of_measure: str = "EA") -> inv.Product:
        request = inv.CreateProductRequest(product=inv.Product(sku=sku, name=name, unit_of_measure=unit_of_measure))
        return self.inventory.CreateProduct(request, timeout=self.timeout).product

    def create_warehouse(self, code: str, name: str) -> inv.Warehouse:
        request = inv.CreateWarehouseRequest(warehouse=inv.Warehouse(code=code, name=name))
        return self.inventory.CreateWarehouse(request, timeout=self.timeout).warehouse

    def get_stock(self, sku: str, warehouse_code: str) -> inv.StockLevel:
        request = inv.GetStockRequest(sku=sku, warehouse_code=warehouse_code)
        return self.inventory.GetStock(request, timeout=self.timeout).stock

    def batch_get_stock(self, keys: Iterable[tuple[str, str]]) -> inv.BatchGetStockResponse:
        request = inv.BatchGetStockRequest(keys=[inv.StockKey(sku=s, warehouse_code=w) for s, w in keys])
        return self.inventory.BatchGetStock(request, timeout=self.timeout)

    def adjust_stock(self, sku: str, warehouse_code: str, delta: int, reason: str,
                     request_id: str | None = None) -> inv.StockLevel:
        request = inv.AdjustStockRequest(request_id=request_id or new_request_id(), sku=sku,
                                         warehouse_code=warehouse_code, quantity_delta=delta, reason=reason)
        return self.inventory.AdjustStock(request, timeout=self.timeout).stock

    # orders
    def place_order(self, customer_id: str, lines: Iterable[Line], currency_code: str = "EUR",
                    request_id: str | None = None) -> ord_pb.Order:
        request = ord_pb.PlaceOrderRequest(
            request_id=request_id or new_request_id(), customer_id=customer_id, currency_code=currency_code,
            lines=[ord_pb.OrderLine(sku=line.sku, warehouse_code=line.warehouse_code, quantity=line.quantity,
                                    unit_price=money_pb2.Money(currency_code=currency_code, amount=line.unit_price))
                   for line in lines])
        return self.orders.PlaceOrder(request, timeout=self.timeout).order

    def get_order(self, order_id: str) -> ord_pb.Order:
        return self.orders.GetOrder(ord_pb.GetOrderRequest(order_id=order_id), timeout=self.timeout).order

    def wait_for_order(self, order_id: str, timeout: float = 30.0, interval: float = 0.05) -> ord_pb.Order:
        """Polls until the order leaves PENDING; raises TimeoutError when it does not in time."""
        end = time.monotonic() + timeout
        while True:
            order = self.get_order(order_id)
            if order.status in FINAL_ORDER_STATES:
                return order
            if time.monotonic() >= end:
                raise TimeoutError(f"order {order_id} still {ord_pb.OrderStatus.Name(order.status)}")
            time.sleep(interval)

    # health
    def health(self, service: str) -> str:
        """SERVING, NOT_SERVING, ... for one service ("inventory" or "orders")."""
        stub = health_pb2_grpc.HealthStub(self._channels[service])
        response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
