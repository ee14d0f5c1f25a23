"""Orders' use cases. place_order owns its transaction; the on_* reactions run inside
the event consumer's transaction and do not commit."""
from __future__ import annotations

import uuid

from erp.common.v1 import money_pb2
from erp.events.v1 import orders_events_pb2 as ev
from mesh import money
from mesh.errors import AlreadyExists, NotFound, Violations
from services.orders import domain
from services.orders.domain import Order, OrderStatus


def place_order(uow, cmd: domain.PlaceOrder, default_warehouse: str) -> Order:
    order = domain.new_order(str(uuid.uuid4()), cmd, default_warehouse)
    with uow:
        existing = uow.orders.by_request(cmd.request_id)
        if existing is not None:  # a repeat: the first placement's order, nothing new
            if existing.customer_id != cmd.customer_id:
                raise AlreadyExists(f"request_id {cmd.request_id} was used for another customer's order")
            return existing
        uow.orders.add(order)
        uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
                 payload=_order_placed(order))
        uow.commit()
    return order


def get_order(uow, order_id: str) -> Order:
    v = Violations()
    v.check(0 < len(order_id) <= 64, "order_id", "must be 1-64 characters")
    v.raise_if_any()
    with uow:
        order = uow.orders.get(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def _money(currency: str, amount) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount=money.format_amount(amount))


def _order_placed(order: Order) -> ev.OrderPlaced:
    return ev.OrderPlaced(
        order_id=order.order_id, customer_id=order.customer_id, total=_money(order.currency_code, order.total),
        lines=[ev.OrderLineItem(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                                quantity=line.quantity, unit_price=_money(order.currency_code, line.unit_price))
               for line in order.lines])


def _pending_order(uow, order_id: str) -> Order | None:
    """The order, locked, if it still waits for stock; None when the event is stale."""
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        # Events about an order come after its placement committed; a missing order is
        # a real fault, so fail and let the consumer retry, then dead-letter.
        raise NotFound(f"no order {order_id}")
    return order if order.status is OrderStatus.PENDING else None


def on_stock_reserved(uow, order_id: str) -> None:
    order = _pending_order(uow, order_id)
    if order is None:
        return
    order.confirm()
    uow.orders.save(order)
    uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
             payload=ev.OrderConfirmed(order_id=order.order_id, customer_id=order.customer_id))


def on_stock_reservation_failed(uow, order_id: str, reason: str) -> None:
    order = _pending_order(uow, order_id)
    if order is None:
        return
    order.reject(reason)
    uow.orders.save(order)
    uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
             payload=ev.OrderRejected(order_id=order.order_id, customer_id=order.customer_id, reason=reason))
