"""Orders' use cases. Command handlers own their transaction; the on_* reactions run
inside the event consumer's transaction and do not commit. Every status an order
enters becomes one event, written to the outbox with the order's new version, and one step of
the order's timeline (services/orders/timeline.py) in the same transaction."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from erp.common.v1 import money_pb2
from erp.events.v1 import orders_events_pb2 as ev
from mesh import paging, protoconv
from mesh.errors import Aborted, AlreadyExists, NotFound, Violations
from services.orders import domain, timeline
from services.orders.adapters import OrdersUnitOfWork
from services.orders.domain import Order, OrderStatus


def place_order(uow: OrdersUnitOfWork, cmd: domain.PlaceOrder, default_warehouse: str) -> Order:
    order = domain.new_order(str(uuid.uuid4()), cmd, default_warehouse)
    with uow:
        # Inserted first, read only on a conflict: a repeat (or a twin that committed while this one
        # waited) inserts nothing, and then its first placement's order answers.
        if not uow.orders.add(order, timeline.placed(order)):
            first = uow.orders.by_request(cmd.request_id)
            if first is None:  # not seen: ON CONFLICT waits for the twin's commit
                raise Aborted(f"request_id {cmd.request_id} was being placed by another request; retry")
            return _repeat(first, cmd)
        uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
                 payload=_order_placed(order))
        uow.commit()
    return order


def _order_placed(order: Order) -> ev.OrderPlaced:
    """The saga's request: inventory and crm each answer it."""
    return ev.OrderPlaced(order_id=order.order_id, customer_id=order.customer_id, total=_money(order, order.total),
                          lines=_lines(order))


def _repeat(existing: Order, cmd: domain.PlaceOrder) -> Order:
    """The first placement's order for a repeated request id. The mesh's idempotency keys
    (mesh/idempotency.py) refuse a repeat with another body before it gets here; this
    check stays for keys older than they are kept."""
    if existing.customer_id != cmd.customer_id:
        raise AlreadyExists(f"request_id {cmd.request_id} was used for another customer's order")
    return existing


def _check_id(order_id: str) -> None:
    v = Violations()
    v.check(0 < len(order_id) <= 64, "order_id", "must be 1-64 characters")
    v.raise_if_any()


def get_order(uow: OrdersUnitOfWork, order_id: str) -> Order:
    _check_id(order_id)
    with uow:
        order = uow.orders.get(order_id)
    if order is None:
        raise NotFound(f"no order {order_id}")
    return order


def list_orders(uow: OrdersUnitOfWork, *, customer_id: str, status: OrderStatus | None,
                created_after: dt.datetime | None,
                created_before: dt.datetime | None, page_size: int, page_token: str) -> tuple[list[Order], str]:
    v = Violations()
    v.check(len(customer_id) <= 64, "customer_id", "must be at most 64 characters")
    v.raise_if_any()

    def fetch(after: tuple[str, str] | None, limit: int) -> list[Order]:
        with uow:
            return uow.orders.page(customer_id=customer_id, status=status, created_after=created_after,
                                   created_before=created_before, after=after, limit=limit)

    return paging.by_creation(page_size, page_token, {"customer": customer_id, "status": str(status or "")},
                              (created_after, created_before), fetch, lambda o: (o.created_at, o.order_id))


def get_timeline(uow: OrdersUnitOfWork, order_id: str, page_size: int, page_token: str) -> timeline.Timeline:
    """One page of the order's steps, oldest first, with what the order awaits now."""
    _check_id(order_id)
    size = paging.page_size(page_size)
    filters = {"order": order_id}
    after: tuple[dt.datetime, int] | None = None
    match paging.decode(page_token, filters, (paging.TIMESTAMP, int)):
        case [str(at), int(seq)]:
            after = (dt.datetime.fromisoformat(at), seq)
    with uow:
        order = uow.orders.get(order_id)
        if order is None:
            raise NotFound(f"no order {order_id}")
        steps = uow.timeline.steps(order_id, after, size + 1)
        awaited = timeline.awaiting(order, uow.timeline.kinds(order_id))
    token = paging.next_token(steps, size, lambda s: [s.at.isoformat(), s.seq], filters)
    return timeline.Timeline(order, steps[:size], awaited, token)


def record_step(uow: OrdersUnitOfWork, step: timeline.Step) -> None:
    """Records a step another service took (told by its event), inside the consumer's
    transaction; nothing when the order has it already (a redelivery or a republished answer)."""
    uow.timeline.add(step)


def cancel_order(uow: OrdersUnitOfWork, order_id: str, reason: str) -> Order:
    _check_id(order_id)
    v = Violations()
    v.check(0 < len(reason.strip()) <= 500, "reason", "must be 1-500 characters")
    v.raise_if_any()
    with uow:
        order = _locked(uow, order_id)
        if order.cancel(reason.strip()):
            _save_and_announce(uow, order)
            uow.commit()
    return order


def mark_shipped(uow: OrdersUnitOfWork, order_id: str) -> Order:
    _check_id(order_id)
    with uow:
        order = _locked(uow, order_id)
        if order.ship():
            _save_and_announce(uow, order)
            uow.commit()
    return order


def _locked(uow: OrdersUnitOfWork, order_id: str) -> Order:
    order = uow.orders.get(order_id, for_update=True)
    if order is None:
        # Events about an order come after its placement committed; a missing order is
        # a real fault, so an event handler fails and the consumer retries, then dead-letters.
        raise NotFound(f"no order {order_id}")
    return order


def on_stock_answer(uow: OrdersUnitOfWork, order_id: str, ok: bool, reason: str = "") -> None:
    order = _locked(uow, order_id)
    before = order.version
    order.stock_answer(ok, reason)
    if order.version != before:
        _save_and_announce(uow, order)


def on_credit_answer(uow: OrdersUnitOfWork, order_id: str, ok: bool, reason: str = "") -> None:
    order = _locked(uow, order_id)
    before = order.version
    order.credit_answer(ok, reason)
    if order.version != before:
        _save_and_announce(uow, order)


def on_invoice_issued(uow: OrdersUnitOfWork, order_id: str, invoice_id: str, total: Decimal) -> None:
    order = _locked(uow, order_id)
    if order.invoiced(invoice_id, total):
        _save_and_announce(uow, order)


def on_payment_received(uow: OrdersUnitOfWork, order_id: str, amount: Decimal) -> None:
    order = _locked(uow, order_id)
    order.paid(amount)
    _save_and_announce(uow, order)


DRIVEN, REJECTED = "driven", "rejected"


def drive_past_deadline(uow: OrdersUnitOfWork, order_id: str, deadline: dt.timedelta, max_drives: int) -> str | None:
    """One PENDING order whose deadline passed, in a transaction of its own: its OrderPlaced is
    published again (DRIVEN; inventory and crm answer a repeat with their first answer, without
    a second effect), or, once max_drives are spent, it is rejected (REJECTED), and the
    OrderRejected makes inventory release its stock and crm drop its credit. None when there
    was nothing to do: answered or driven meanwhile (looked at again under the lock), or its
    lock is busy (a consumer answering it, or the sweeper of another replica): the next round
    looks again rather than queue behind it."""
    with uow:
        if not uow.try_lock("order", order_id):
            return None
        order, now = uow.orders.get(order_id, for_update=True), uow.orders.now()
        if order is None or not order.past_deadline(now, deadline):
            return None
        if order.drive_again(now, max_drives):
            uow.orders.save(order)
            uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
                     payload=_order_placed(order))
            uow.timeline.add(timeline.driven_again(order))
            outcome = DRIVEN
        else:
            _save_and_announce(uow, order)
            outcome = REJECTED
        uow.commit()
    return outcome


def _save_and_announce(uow: OrdersUnitOfWork, order: Order) -> None:
    uow.orders.save(order)
    for status in order.entered:
        if status is OrderStatus.INVOICED:
            continue  # finance's InvoiceIssued already tells everyone (and is the timeline's step)
        uow.emit(aggregate_type="order", aggregate_id=order.order_id, version=order.version,
                 payload=_event_for(order, status))
        uow.timeline.add(timeline.entered(order, status))
    order.entered.clear()


def _event_for(order: Order, status: OrderStatus):
    ids = {"order_id": order.order_id, "customer_id": order.customer_id}
    if status is OrderStatus.CONFIRMED:
        return ev.OrderConfirmed(**ids, lines=_lines(order), total=_money(order, order.total))
    if status is OrderStatus.REJECTED:
        return ev.OrderRejected(**ids, reason=order.rejection_reason)
    if status is OrderStatus.CANCELLED:
        return ev.OrderCancelled(**ids, reason=order.cancellation_reason, was_invoiced=bool(order.invoice_id),
                                 total=_money(order, order.total))
    if status is OrderStatus.SHIPPED:
        return ev.OrderShipped(**ids, lines=_lines(order))
    if status is OrderStatus.COMPLETED:
        return ev.OrderCompleted(**ids)
    raise AssertionError(f"no event for entering {status}")


def _money(order: Order, amount) -> money_pb2.Money:
    return protoconv.money(order.currency_code, amount)


def _lines(order: Order) -> list[ev.OrderLineItem]:
    return [ev.OrderLineItem(line_no=line.line_no, sku=line.sku, warehouse_code=line.warehouse_code,
                             quantity=line.quantity, unit_price=_money(order, line.unit_price))
            for line in order.lines]
