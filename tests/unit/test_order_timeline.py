"""An order's timeline: the steps orders records (its own and those other services' events tell
of), one per business fact, and what an order awaits; against in-memory fakes."""
from __future__ import annotations

import datetime as dt

import pytest

from erp.common.v1 import money_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import notification_events_pb2 as notif_ev
from erp.orders.v1 import orders_pb2 as pb
from erp_client import timeline as table
from mesh.errors import InvalidArgument, NotFound
from mesh.events.envelope import Event
from services.orders import events as orders_events
from services.orders import handlers, timeline
from services.orders.timeline import Awaited, StepKind
from tests.unit.fakes import FakeOrders, FakeTimeline, FakeUnitOfWork
from tests.unit.test_orders import WH, delivered, line, place, react

K = StepKind
CONSUMES = orders_events.build()


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(orders=FakeOrders(timeline := FakeTimeline()), timeline=timeline)


def eur(amount: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount=amount)


def deliver(uow, payload, source: str, event=None) -> None:
    """The payload through orders' consumer handler, as one delivery (event: a given envelope)."""
    handler = CONSUMES.handlers[payload.DESCRIPTOR.full_name]
    react(uow, handler, payload, event or delivered(payload, source))


def steps(uow, order_id: str) -> list[tuple[StepKind, str]]:
    return [(s.kind, s.service) for s in handlers.get_timeline(uow, order_id, 0, "").steps]


def awaited(uow, order_id: str) -> list[Awaited]:
    return handlers.get_timeline(uow, order_id, 0, "").awaiting


def reserved(order_id: str) -> inv_ev.StockReserved:
    return inv_ev.StockReserved(order_id=order_id, lines=[
        inv_ev.ReservedLine(line_no=1, sku="SKU-A", warehouse_code=WH, quantity=2)])


def approved(order_id: str) -> crm_ev.CreditApproved:
    return crm_ev.CreditApproved(order_id=order_id, customer_id="cust-1", exposure=eur("20.00"),
                                 credit_limit=eur("1000.00"))


def invoiced(order_id: str) -> fin_ev.InvoiceIssued:
    return fin_ev.InvoiceIssued(invoice_id="inv-1", number="INV-2026-000001", order_id=order_id,
                                customer_id="cust-1", total=eur("24.00"), due_date="2026-04-01")


def confirmed_and_invoiced(uow, request_id="req-1") -> str:
    order = handlers.place_order(uow, place(line(quantity=2, price="10.00"), request_id=request_id), WH)
    deliver(uow, reserved(order.order_id), "inventory")
    deliver(uow, approved(order.order_id), "crm")
    deliver(uow, invoiced(order.order_id), "finance")
    return order.order_id


def test_every_step_of_a_cancelled_invoiced_order_is_listed_in_order_with_its_service(uow):
    order_id = confirmed_and_invoiced(uow)
    deliver(uow, notif_ev.DeliveriesSettled(sent=[notif_ev.NotificationSent(
        delivery_id="D1", event_type="erp.events.v1.InvoiceIssued", order_id=order_id, channel="email", attempts=1)]),
            "notification")
    handlers.cancel_order(uow, order_id, "changed my mind")
    deliver(uow, inv_ev.StockReleased(order_id=order_id, lines=reserved(order_id).lines), "inventory")
    deliver(uow, fin_ev.CreditNoteIssued(credit_note_id="cn-1", number="CN-2026-000001", invoice_id="inv-1",
                                         order_id=order_id, amount=eur("24.00"), unpaid_amount=eur("24.00")),
            "finance")
    assert steps(uow, order_id) == [
        (K.PLACED, "orders"), (K.STOCK_RESERVED, "inventory"), (K.CREDIT_APPROVED, "crm"), (K.CONFIRMED, "orders"),
        (K.INVOICED, "finance"), (K.NOTIFIED, "notification"), (K.CANCELLED, "orders"),
        (K.STOCK_RELEASED, "inventory"), (K.CREDIT_NOTED, "finance")]
    details = {s.kind: s.detail for s in handlers.get_timeline(uow, order_id, 0, "").steps}
    assert details[K.STOCK_RESERVED] == "reserved 2 x SKU-A@MAIN"
    assert details[K.INVOICED] == "invoice INV-2026-000001, total 24.00 EUR, due 2026-04-01"
    assert details[K.NOTIFIED] == "invoice issued: email delivered"
    assert details[K.CANCELLED] == "changed my mind; a credit note follows"
    assert awaited(uow, order_id) == []


def test_an_answer_delivered_again_or_republished_under_a_new_id_adds_no_step(uow):
    order = handlers.place_order(uow, place(), WH)
    event = delivered(reserved(order.order_id), "inventory")
    deliver(uow, reserved(order.order_id), "inventory", event)
    deliver(uow, reserved(order.order_id), "inventory", event)  # the same event, past the inbox (a replay)
    deliver(uow, reserved(order.order_id), "inventory")  # the answer to the order driven again: a new id
    deliver(uow, approved(order.order_id), "crm")
    deliver(uow, approved(order.order_id), "crm")
    assert steps(uow, order.order_id) == [
        (K.PLACED, "orders"), (K.STOCK_RESERVED, "inventory"), (K.CREDIT_APPROVED, "crm"), (K.CONFIRMED, "orders")]
    assert [s.event_id for s in handlers.get_timeline(uow, order.order_id, 0, "").steps][1] == \
        event.event_id  # the first one told


def test_two_payments_are_two_steps_and_each_one_once(uow):
    order_id = confirmed_and_invoiced(uow)
    for payment_id, amount, due in (("p-1", "20.00", "4.00"), ("p-1", "20.00", "4.00"), ("p-2", "4.00", "0.00")):
        deliver(uow, fin_ev.PaymentReceived(payment_id=payment_id, invoice_id="inv-1", order_id=order_id,
                                            amount=eur(amount), amount_due=eur(due), paid_in_full=due == "0.00"),
                "finance")
    paid = [s.detail for s in handlers.get_timeline(uow, order_id, 0, "").steps if s.kind is K.PAID]
    assert paid == ["20.00 EUR received; 4.00 EUR still due", "4.00 EUR received; paid in full"]


def test_a_pending_order_awaits_the_answers_it_has_not_had(uow):
    order = handlers.place_order(uow, place(), WH)
    assert awaited(uow, order.order_id) == [Awaited("inventory", "stock reservation (reserved or refused)"),
                                            Awaited("crm", "credit decision (approved or rejected)")]
    deliver(uow, approved(order.order_id), "crm")
    assert awaited(uow, order.order_id) == [Awaited("inventory", "stock reservation (reserved or refused)")]


def test_a_confirmed_order_awaits_its_invoice_shipment_payment_and_stock_issue(uow):
    order = handlers.place_order(uow, place(line(quantity=2, price="10.00")), WH)
    deliver(uow, reserved(order.order_id), "inventory")
    deliver(uow, approved(order.order_id), "crm")
    ship = Awaited("orders", "shipment (someone marks the order shipped)")
    assert awaited(uow, order.order_id) == [Awaited("finance", "the invoice"), ship]
    deliver(uow, invoiced(order.order_id), "finance")
    assert awaited(uow, order.order_id) == [ship, Awaited("finance", "payment: 24.00 EUR due")]
    handlers.mark_shipped(uow, order.order_id)
    assert awaited(uow, order.order_id) == [Awaited("finance", "payment: 24.00 EUR due"),
                                            Awaited("inventory", "the shipped stock issued")]
    deliver(uow, inv_ev.StockIssued(order_id=order.order_id, lines=reserved(order.order_id).lines), "inventory")
    deliver(uow, fin_ev.PaymentReceived(payment_id="p-1", order_id=order.order_id, amount=eur("24.00"),
                                        amount_due=eur("0.00"), paid_in_full=True), "finance")
    assert awaited(uow, order.order_id) == []
    assert [k for k, _ in steps(uow, order.order_id)][-4:] == [K.SHIPPED, K.STOCK_ISSUED, K.PAID, K.COMPLETED]


def test_a_cancelled_order_awaits_its_release_and_credit_note(uow):
    order_id = confirmed_and_invoiced(uow)
    handlers.cancel_order(uow, order_id, "duplicate order")
    assert awaited(uow, order_id) == [Awaited("inventory", "the reservation released"),
                                      Awaited("finance", "a credit note for invoice inv-1")]


def test_a_refused_reservation_says_why_and_leaves_nothing_to_release(uow):
    order = handlers.place_order(uow, place(), WH)
    deliver(uow, inv_ev.StockReservationFailed(order_id=order.order_id, lines=[
        inv_ev.UnreservableLine(line_no=1, sku="SKU-A", warehouse_code=WH, requested=5, available=2,
                                reason=inv_ev.RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK)]), "inventory")
    found = handlers.get_timeline(uow, order.order_id, 0, "")
    refused, rejected = found.steps[1:]
    assert (refused.kind, refused.service, rejected.kind) == (K.STOCK_REFUSED, "inventory", K.REJECTED)
    assert refused.detail == "stock not available: line 1 SKU-A@MAIN: insufficient stock (requested 5, available 2)"
    assert found.awaiting == []


def test_a_credit_rejection_after_a_reservation_awaits_its_release(uow):
    order = handlers.place_order(uow, place(), WH)
    deliver(uow, reserved(order.order_id), "inventory")
    deliver(uow, crm_ev.CreditRejected(order_id=order.order_id, reason="credit limit 5.00 EUR exceeded"), "crm")
    assert steps(uow, order.order_id)[-2:] == [(K.CREDIT_REJECTED, "crm"), (K.REJECTED, "orders")]
    assert awaited(uow, order.order_id) == [Awaited("inventory", "the reservation released")]


def test_an_order_driven_again_shows_each_drive_once(uow):
    order = handlers.place_order(uow, place(), WH)
    uow.orders.clock = order.created_at + dt.timedelta(minutes=10)
    assert handlers.drive_past_deadline(uow, order.order_id, dt.timedelta(minutes=5), 3) == handlers.DRIVEN
    [drive] = [s for s in handlers.get_timeline(uow, order.order_id, 0, "").steps if s.kind is K.DRIVEN_AGAIN]
    assert drive.detail == ("no answer from inventory (stock) and crm (credit) in time: the order was asked again "
                            "(drive 1)")


def test_a_notification_about_no_sales_order_is_no_step_and_locks_nothing(uow):
    sent = notif_ev.NotificationSent(delivery_id="D9", event_type="erp.events.v1.PurchaseOrderApproved",
                                     channel="email", attempts=1)
    settled = notif_ev.DeliveriesSettled(sent=[sent])
    assert CONSUMES.aggregates([Event(delivered(sent, "notification"), sent),
                                Event(delivered(settled, "notification"), settled)]) == []
    deliver(uow, sent, "notification")
    deliver(uow, settled, "notification")
    assert uow.timeline.rows == {}


def test_a_dispatcher_round_is_a_step_on_each_order_it_told_of_and_locks_each_order(uow):
    first, second = confirmed_and_invoiced(uow), confirmed_and_invoiced(uow, request_id="req-2")
    settled = notif_ev.DeliveriesSettled(
        sent=[notif_ev.NotificationSent(delivery_id="D1", event_type="erp.events.v1.InvoiceIssued", order_id=first,
                                        channel="email", attempts=1),
              notif_ev.NotificationSent(delivery_id="D2", event_type="erp.events.v1.PurchaseOrderApproved",
                                        channel="email", attempts=1)],
        failed=[notif_ev.NotificationFailed(delivery_id="D3", event_type="erp.events.v1.InvoiceIssued",
                                            order_id=second, channel="webhook", attempts=6, error="HTTP 500")])
    assert sorted(CONSUMES.aggregates([Event(delivered(settled, "notification"), settled)])) == sorted(
        [("order", first), ("order", second)])
    deliver(uow, settled, "notification")
    deliver(uow, settled, "notification")  # delivered again: no second step
    assert [kind for kind, _ in steps(uow, first)].count(K.NOTIFIED) == 1
    details = {s.kind: s.detail for s in handlers.get_timeline(uow, second, 0, "").steps}
    assert details[K.NOTIFICATION_FAILED] == "invoice issued: webhook failed after 6 attempts: HTTP 500"
    assert K.NOTIFIED not in details


def test_a_single_delivery_event_from_before_dispatcher_rounds_is_still_a_step(uow):
    """What a notification replica of the previous version publishes while a deployment upgrades."""
    order_id = confirmed_and_invoiced(uow)
    deliver(uow, notif_ev.NotificationFailed(delivery_id="D1", event_type="erp.events.v1.InvoiceIssued",
                                             order_id=order_id, channel="email", attempts=6, error="550"), "notification")
    assert steps(uow, order_id)[-1] == (K.NOTIFICATION_FAILED, "notification")


def test_a_failed_notification_says_how_often_and_why():
    assert timeline.notification_detail("erp.events.v1.OrderShipped", "webhook", 6, "HTTP 500") == \
        "order shipped: webhook failed after 6 attempts: HTTP 500"


def test_steps_come_in_pages_oldest_first(uow):
    order_id = confirmed_and_invoiced(uow)
    first = handlers.get_timeline(uow, order_id, 3, "")
    second = handlers.get_timeline(uow, order_id, 3, first.next_page_token)
    assert [s.kind for s in first.steps + second.steps] == [
        K.PLACED, K.STOCK_RESERVED, K.CREDIT_APPROVED, K.CONFIRMED, K.INVOICED]
    assert second.next_page_token == ""
    with pytest.raises(InvalidArgument) as other_order:
        handlers.get_timeline(uow, "another-order", 3, first.next_page_token)
    assert other_order.value.violations[0].field == "page.page_token"


def test_an_unknown_or_malformed_order_id_is_refused(uow):
    with pytest.raises(NotFound, match="no order nope"):
        handlers.get_timeline(uow, "nope", 0, "")
    with pytest.raises(InvalidArgument) as empty:
        handlers.get_timeline(uow, "", 0, "")
    assert empty.value.violations[0].field == "order_id"


def test_the_command_line_prints_a_table_and_what_is_awaited():
    found = pb.GetOrderTimelineResponse(order_id="o-1", status=pb.ORDER_STATUS_COMPLETED, steps=[
        pb.TimelineStep(service="orders", kind=pb.TIMELINE_STEP_KIND_PLACED, detail="1 line(s)"),
        pb.TimelineStep(service="notification", kind=pb.TIMELINE_STEP_KIND_NOTIFICATION_FAILED, detail="x")])
    assert table.render(found).splitlines() == [
        "order o-1: completed",
        "time (UTC)               service       step                 detail",
        "1970-01-01 00:00:00.000  orders        placed               1 line(s)",
        "1970-01-01 00:00:00.000  notification  notification failed  x",
        "awaiting: nothing"]
