"""The OrderService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

from erp.common.v1 import money_pb2
from erp.orders.v1 import orders_pb2 as pb
from erp.orders.v1 import orders_pb2_grpc
from mesh import protoconv
from mesh.idempotency import in_one_statement, in_one_transaction
from mesh.service import Runtime
from services.orders import domain, handlers
from services.orders.adapters import OrdersUnitOfWork
from services.orders.domain import Order
from services.orders.timeline import Timeline


# An enum field is given its value's name ("ORDER_STATUS_" + the domain's name): the message's constructor looks it up,
# and refuses a name the proto does not have.
def to_proto(order: Order) -> pb.Order:
    def m(amount) -> money_pb2.Money:
        return protoconv.money(order.currency_code, amount)

    return pb.Order(
        order_id=order.order_id, customer_id=order.customer_id,
        status="ORDER_STATUS_" + order.status.name,
        lines=[pb.OrderLine(sku=line.sku, warehouse_code=line.warehouse_code, quantity=line.quantity,
                            unit_price=m(line.unit_price), shipped_quantity=line.shipped_quantity)
               for line in order.lines],
        total=m(order.total), rejection_reason=order.rejection_reason, version=order.version,
        created_at=protoconv.timestamp(order.created_at), updated_at=protoconv.timestamp(order.updated_at),
        fulfilment_status="FULFILMENT_STATUS_" + order.fulfilment_status.name,
        payment_status="PAYMENT_STATUS_" + order.payment_status.name,
        invoice_id=order.invoice_id, invoiced_amount=m(order.invoiced_amount), amount_paid=m(order.amount_paid),
        cancellation_reason=order.cancellation_reason,
    )


def timeline_to_proto(found: Timeline) -> pb.GetOrderTimelineResponse:
    return pb.GetOrderTimelineResponse(
        order_id=found.order.order_id, status="ORDER_STATUS_" + found.order.status.name,
        steps=[pb.TimelineStep(occurred_at=protoconv.timestamp(s.at), service=s.service, detail=s.detail,
                               event_id=s.event_id,
                               kind="TIMELINE_STEP_KIND_" + s.kind.name)
               for s in found.steps],
        awaiting=[pb.AwaitedStep(service=a.service, description=a.description) for a in found.awaiting],
        next_page_token=found.next_page_token)


class OrderServicer(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self, runtime: Runtime[OrdersUnitOfWork], config: domain.OrdersConfig) -> None:
        self.runtime = runtime
        self.config = config

    @in_one_statement
    def PlaceOrder(self, request: pb.PlaceOrderRequest, context) -> pb.PlaceOrderResponse:
        cmd = domain.PlaceOrder(
            request_id=request.request_id, customer_id=request.customer_id, currency_code=request.currency_code,
            lines=tuple(domain.LineInput(line.sku, line.warehouse_code, line.quantity, line.unit_price.amount,
                                         line.unit_price.currency_code) for line in request.lines))
        order = handlers.place_order(self.runtime.uow(), cmd, self.config.default_warehouse)
        return pb.PlaceOrderResponse(order=to_proto(order))  # tagged with its order (mesh.interceptors)

    def GetOrder(self, request: pb.GetOrderRequest, context) -> pb.GetOrderResponse:
        return pb.GetOrderResponse(order=to_proto(handlers.get_order(self.runtime.uow(), request.order_id)))

    def ListOrders(self, request: pb.ListOrdersRequest, context) -> pb.ListOrdersResponse:
        status = None
        if request.status != pb.ORDER_STATUS_UNSPECIFIED:
            status = domain.OrderStatus[pb.OrderStatus.Name(request.status).removeprefix("ORDER_STATUS_")]
        orders, token = handlers.list_orders(
            self.runtime.uow(), customer_id=request.customer_id, status=status,
            created_after=protoconv.optional_moment(request, "created_after"),
            created_before=protoconv.optional_moment(request, "created_before"),
            page_size=request.page.page_size, page_token=request.page.page_token)
        return pb.ListOrdersResponse(orders=[to_proto(o) for o in orders], next_page_token=token)

    @in_one_transaction
    def CancelOrder(self, request: pb.CancelOrderRequest, context) -> pb.CancelOrderResponse:
        order = handlers.cancel_order(self.runtime.uow(), request.order_id, request.reason)
        return pb.CancelOrderResponse(order=to_proto(order))

    @in_one_transaction
    def MarkShipped(self, request: pb.MarkShippedRequest, context) -> pb.MarkShippedResponse:
        return pb.MarkShippedResponse(order=to_proto(handlers.mark_shipped(self.runtime.uow(), request.order_id)))

    def GetOrderTimeline(self, request: pb.GetOrderTimelineRequest, context) -> pb.GetOrderTimelineResponse:
        found = handlers.get_timeline(self.runtime.uow(), request.order_id, request.page.page_size,
                                      request.page.page_token)
        return timeline_to_proto(found)
