"""The OrderService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

from google.protobuf import timestamp_pb2

from erp.common.v1 import money_pb2
from erp.orders.v1 import orders_pb2 as pb
from erp.orders.v1 import orders_pb2_grpc
from mesh import money
from services.orders import domain, handlers
from services.orders.domain import Order


def _timestamp(value) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def to_proto(order: Order) -> pb.Order:
    def m(amount) -> money_pb2.Money:
        return money_pb2.Money(currency_code=order.currency_code, amount=money.format_amount(amount))

    return pb.Order(
        order_id=order.order_id, customer_id=order.customer_id,
        status=pb.OrderStatus.Value("ORDER_STATUS_" + order.status.name),
        lines=[pb.OrderLine(sku=line.sku, warehouse_code=line.warehouse_code, quantity=line.quantity,
                            unit_price=m(line.unit_price)) for line in order.lines],
        total=m(order.total), rejection_reason=order.rejection_reason, version=order.version,
        created_at=_timestamp(order.created_at), updated_at=_timestamp(order.updated_at),
    )


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, runtime) -> None:
        self.runtime = runtime

    def PlaceOrder(self, request: pb.PlaceOrderRequest, context) -> pb.PlaceOrderResponse:
        cmd = domain.PlaceOrder(
            request_id=request.request_id, customer_id=request.customer_id, currency_code=request.currency_code,
            lines=tuple(domain.LineInput(line.sku, line.warehouse_code, line.quantity, line.unit_price.amount,
                                         line.unit_price.currency_code) for line in request.lines))
        order = handlers.place_order(self.runtime.uow(), cmd, self.runtime.settings.default_warehouse)
        return pb.PlaceOrderResponse(order=to_proto(order))

    def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.GetOrderResponse:
        return pb.GetOrderResponse(order=to_proto(handlers.get_order(self.runtime.uow(), request.order_id)))
