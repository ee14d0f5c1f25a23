"""Orders' rules, state machine and use cases, run against in-memory fakes."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import itertools
import unittest.mock
from decimal import Decimal

import pytest

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh.errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mesh.events import envelope
from mesh.settings import load
from services.orders import deadline, domain, handlers
from services.orders import events as orders_events
from services.orders.domain import TRANSITIONS, InvalidTransition, LineInput, Order, OrderStatus, PlaceOrder
from tests.unit.fakes import Emitted, FakeOrders, FakeTimeline, FakeUnitOfWork

S = OrderStatus
WH = "MAIN"


def line(sku="SKU-A", quantity=1, price="1.00", currency="EUR", warehouse=WH) -> LineInput:
    return LineInput(sku, warehouse, quantity, price, currency)


def place(*lines: LineInput, request_id="req-1", customer="cust-1", currency="EUR") -> PlaceOrder:
    return PlaceOrder(request_id, customer, currency, tuple(lines) or (line(),))


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in exc.value.violations]


@pytest.fixture
def uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(orders=FakeOrders(timeline := FakeTimeline()), timeline=timeline)


# ---------------------------------------------------------------- new_order validation


def test_a_valid_placement_becomes_a_pending_order():
    order = domain.new_order("o1", place(line("SKU-A", 2, "12.5"), line("SKU-B", 1, "0.0125", warehouse="")), WH)
    assert order.status is S.PENDING
    assert order.version == 1
    assert [(x.line_no, x.sku, x.warehouse_code, x.quantity, x.unit_price) for x in order.lines] == [
        (1, "SKU-A", WH, 2, Decimal("12.5")), (2, "SKU-B", WH, 1, Decimal("0.0125"))]
    assert order.total == Decimal("25.0125")


def test_every_problem_is_reported_at_once_with_its_field_path():
    cmd = PlaceOrder("", "", "eur", (
        line("SKU-A", quantity=0, currency="eur"),
        line("SKU-B", price="1.23456", currency="eur"),
        line("SKU-C", price="-1", currency="USD"),
        line("SKU-A", currency="eur"),
        line("", warehouse="W" * 33, currency="eur"),
    ))
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", cmd, WH)
    assert fields(exc) == [
        "request_id", "customer_id", "currency_code",
        "lines[0].quantity",
        "lines[1].unit_price.amount",
        "lines[2].unit_price.amount", "lines[2].unit_price.currency_code",
        "lines[3].sku",
        "lines[4].sku", "lines[4].warehouse_code",
    ]


def test_a_line_in_another_currency_is_refused():
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", place(line("SKU-A"), line("SKU-B", currency="USD")), WH)
    assert fields(exc) == ["lines[1].unit_price.currency_code"]


@pytest.mark.parametrize("warehouses", [("", WH), (WH, ""), ("", ""), (WH, WH)])
def test_the_same_sku_twice_in_one_warehouse_is_refused_after_defaulting_the_warehouse(warehouses):
    first, second = warehouses
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", place(line("SKU-A", warehouse=first), line("SKU-A", warehouse=second)), WH)
    assert fields(exc) == ["lines[1].sku"]


def test_the_same_sku_in_two_warehouses_is_two_lines():
    # the same SKU in two warehouses is two lines
    order = domain.new_order("o1", place(line("SKU-A", warehouse="EAST"), line("SKU-A", warehouse=WH)), WH)
    assert len(order.lines) == 2


@pytest.mark.parametrize("price", ["1e5", "NaN", "1.23456", "", "abc", "1,00", "123456789012345"])
def test_a_bad_price_is_refused(price):
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", place(line(price=price)), WH)
    assert fields(exc) == ["lines[0].unit_price.amount"]


@pytest.mark.parametrize("quantity", [0, -1, domain.MAX_QUANTITY + 1])
def test_a_bad_quantity_is_refused(quantity):
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", place(line(quantity=quantity)), WH)
    assert fields(exc) == ["lines[0].quantity"]


def test_quantity_and_price_limits_are_inclusive():
    order = domain.new_order("o1", place(line(quantity=domain.MAX_QUANTITY, price="0")), WH)
    assert order.lines[0].quantity == domain.MAX_QUANTITY
    assert order.total == 0


def test_an_order_needs_lines_but_not_too_many():
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", PlaceOrder("r", "c", "EUR", ()), WH)
    assert fields(exc) == ["lines"]
    many = tuple(line(f"SKU-{i}") for i in range(domain.MAX_LINES + 1))
    with pytest.raises(InvalidArgument) as exc:
        domain.new_order("o1", PlaceOrder("r", "c", "EUR", many), WH)
    assert fields(exc) == ["lines"]
    assert len(domain.new_order("o1", PlaceOrder("r", "c", "EUR", many[:-1]), WH).lines) == domain.MAX_LINES


def test_the_total_is_exact_even_at_the_limits():
    """The limits allow totals of 30 significant digits; the default 28-digit context would round them."""
    lines = tuple(line(f"SKU-{i}", domain.MAX_QUANTITY, "99999999999999.9999") for i in range(domain.MAX_LINES - 1))
    order = domain.new_order("o1", place(*lines, line("SMALL", 1, "0.0001")), WH)
    with decimal.localcontext(prec=60):
        exact = Decimal("99999999999999.9999") * domain.MAX_QUANTITY * (domain.MAX_LINES - 1) + Decimal("0.0001")
    assert order.total == exact  # 19899999999999999980100000.0001


def test_rejection_reason_names_every_failed_line():
    reason = domain.rejection_reason([(1, "SKU-A", WH, 5, 2, "insufficient stock"),
                                      (3, "NOPE", WH, 1, 0, "unknown sku")])
    assert reason == ("stock not available: line 1 SKU-A@MAIN: insufficient stock (requested 5, available 2); "
                      "line 3 NOPE@MAIN: unknown sku (requested 1, available 0)")


# ---------------------------------------------------------------- the state machine

EXPECTED_TRANSITIONS = {
    S.PENDING: {S.CONFIRMED, S.REJECTED, S.CANCELLED},
    S.CONFIRMED: {S.INVOICED, S.SHIPPED, S.CANCELLED},
    S.INVOICED: {S.SHIPPED, S.CANCELLED},
    S.SHIPPED: {S.COMPLETED},
}
ALLOWED = [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)]
REFUSED = [(a, b) for a, b in itertools.product(S, S) if b not in TRANSITIONS.get(a, frozenset())]


def an_order(status: OrderStatus = S.PENDING, version: int = 1) -> Order:
    return Order("o1", "req-1", "cust-1", "EUR", [domain.OrderLine(1, "SKU-A", WH, 1, Decimal(1))],
                 status=status, version=version)


def test_the_transition_table_is_the_documented_one():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED_TRANSITIONS


@pytest.mark.parametrize(("start", "target"), ALLOWED, ids=lambda s: str(s))
def test_every_allowed_move_works(start, target):
    order = an_order(start, version=4)
    assert order.can_move_to(target)
    order.move_to(target, "why")
    assert order.status is target
    assert order.version == 5
    assert order.rejection_reason == ("why" if target is S.REJECTED else "")


@pytest.mark.parametrize(("start", "target"), REFUSED, ids=lambda s: str(s))
def test_every_other_move_is_refused(start, target):
    order = an_order(start, version=4)
    assert not order.can_move_to(target)
    with pytest.raises(InvalidTransition) as exc:
        order.move_to(target)
    assert isinstance(exc.value, FailedPrecondition)
    assert (order.status, order.version) == (start, 4)


@pytest.mark.parametrize("terminal", [S.REJECTED, S.CANCELLED, S.COMPLETED])
def test_terminal_states_have_no_moves(terminal):
    assert terminal not in TRANSITIONS
    assert not any(an_order(terminal).can_move_to(target) for target in S)


def test_every_status_is_reachable_from_pending():
    reached, frontier = {S.PENDING}, [S.PENDING]
    while frontier:
        for nxt in TRANSITIONS.get(frontier.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(S)


def test_reject_keeps_the_reason_and_confirm_does_not_invent_one():
    rejected, confirmed = an_order(), an_order()
    rejected.reject("no stock")
    confirmed.confirm()
    assert (rejected.status, rejected.rejection_reason) == (S.REJECTED, "no stock")
    assert (confirmed.status, confirmed.rejection_reason) == (S.CONFIRMED, "")


# ---------------------------------------------------------------- place_order


def test_place_order_stores_the_order_and_emits_order_placed_with_an_exact_total(uow):
    order = handlers.place_order(uow, place(line("SKU-A", 3, "0.10"), line("SKU-B", 1, "5", warehouse="")), WH)
    assert uow.committed
    assert uow.orders.rows[order.order_id].status is S.PENDING
    assert uow.events == [Emitted("order", order.order_id, 1, ev.OrderPlaced(
        order_id=order.order_id, customer_id="cust-1",
        total=money_pb2.Money(currency_code="EUR", amount="5.30"),
        lines=[ev.OrderLineItem(line_no=1, sku="SKU-A", warehouse_code=WH, quantity=3,
                                unit_price=money_pb2.Money(currency_code="EUR", amount="0.10")),
               ev.OrderLineItem(line_no=2, sku="SKU-B", warehouse_code=WH, quantity=1,
                                unit_price=money_pb2.Money(currency_code="EUR", amount="5.00"))]))]


@pytest.mark.parametrize(("quantity", "price", "total"), [
    (3, "0.10", "0.30"), (3, "0.1", "0.30"), (7, "0.0125", "0.0875"), (1, "19.99", "19.99"),
    (10, "0.0001", "0.001"), (1000000, "0.0003", "300.00"), (1, "0", "0.00"),
])
def test_the_total_is_an_exact_decimal_string(uow, quantity, price, total):
    handlers.place_order(uow, place(line(quantity=quantity, price=price)), WH)
    assert uow.events[0].payload.total.amount == total


def test_placing_the_same_request_again_returns_the_first_order_and_emits_nothing(uow):
    first = handlers.place_order(uow, place(line("SKU-A", 2)), WH)
    again = handlers.place_order(uow, place(line("SKU-A", 2)), WH)
    assert again.order_id == first.order_id
    assert len(uow.orders.rows) == 1
    assert len(uow.events) == 1


def test_the_same_request_id_for_another_customer_is_already_exists(uow):
    handlers.place_order(uow, place(customer="cust-1"), WH)
    with pytest.raises(AlreadyExists):
        handlers.place_order(uow, place(customer="cust-2"), WH)
    assert len(uow.orders.rows) == 1
    assert len(uow.events) == 1


def test_an_invalid_placement_stores_and_emits_nothing(uow):
    with pytest.raises(InvalidArgument):
        handlers.place_order(uow, place(line(quantity=0)), WH)
    assert uow.orders.rows == {}
    assert uow.events == []
    assert uow.commits == 0


def test_get_order(uow):
    order = handlers.place_order(uow, place(), WH)
    assert handlers.get_order(uow, order.order_id).request_id == "req-1"
    with pytest.raises(NotFound):
        handlers.get_order(uow, "nope")
    with pytest.raises(InvalidArgument):
        handlers.get_order(uow, "")


# ---------------------------------------------------------------- the saga's reactions


def react(uow, fn, *args, **kwargs) -> None:
    """Runs a reaction as the consumer does: inside its transaction, which it then commits."""
    with uow:
        fn(uow, *args, **kwargs)
        assert not uow.committed  # reactions leave the commit to the consumer
        uow.commit()


@pytest.fixture
def placed(uow) -> Order:
    return handlers.place_order(uow, place(), WH)


def confirmed_lines():
    return [ev.OrderLineItem(line_no=1, sku="SKU-A", warehouse_code=WH, quantity=1,
                             unit_price=money_pb2.Money(currency_code="EUR", amount="1.00"))]


@pytest.mark.parametrize("first", ["stock", "credit"])
def test_the_order_is_confirmed_once_both_checks_pass_in_either_order(uow, placed, first):
    answers = {"stock": handlers.on_stock_answer, "credit": handlers.on_credit_answer}
    second = "credit" if first == "stock" else "stock"
    react(uow, answers[first], placed.order_id, ok=True)
    halfway = uow.orders.rows[placed.order_id]
    assert halfway.status is S.PENDING and halfway.version == 2
    assert len(uow.events) == 1  # only OrderPlaced so far
    react(uow, answers[second], placed.order_id, ok=True)
    stored = uow.orders.rows[placed.order_id]
    assert (stored.status, stored.version) == (S.CONFIRMED, 3)
    assert uow.events[-1] == Emitted("order", placed.order_id, 3, ev.OrderConfirmed(
        order_id=placed.order_id, customer_id="cust-1", lines=confirmed_lines(),
        total=money_pb2.Money(currency_code="EUR", amount="1.00")))


@pytest.mark.parametrize("failing", ["stock", "credit"])
def test_either_check_failing_rejects_the_order_and_a_late_success_changes_nothing(uow, placed, failing):
    answers = {"stock": handlers.on_stock_answer, "credit": handlers.on_credit_answer}
    other = "credit" if failing == "stock" else "stock"
    react(uow, answers[failing], placed.order_id, ok=False, reason="no")
    stored = uow.orders.rows[placed.order_id]
    assert (stored.status, stored.rejection_reason) == (S.REJECTED, "no")
    assert uow.events[-1].payload == ev.OrderRejected(order_id=placed.order_id, customer_id="cust-1", reason="no")
    events = list(uow.events)
    react(uow, answers[other], placed.order_id, ok=True)
    react(uow, answers[failing], placed.order_id, ok=False, reason="again")
    assert uow.events == events
    assert uow.orders.rows[placed.order_id].rejection_reason == "no"


def test_a_repeated_answer_changes_nothing(uow, placed):
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)
    saves = uow.orders.saves
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)
    assert uow.orders.saves == saves and uow.orders.rows[placed.order_id].version == 2


@pytest.mark.parametrize("reaction", [lambda uow, oid: handlers.on_stock_answer(uow, oid, ok=True),
                                      lambda uow, oid: handlers.on_credit_answer(uow, oid, ok=False)])
def test_an_event_for_an_unknown_order_is_not_found_so_the_consumer_retries(uow, reaction):
    with pytest.raises(NotFound), uow:
        reaction(uow, "no-such-order")
    assert uow.events == []


def delivered(payload, source: str) -> EventEnvelope:
    """The envelope the consumer hands a handler beside the payload (a dispatcher round's is about no order)."""
    return envelope.build(source=source, aggregate_type="order", aggregate_id=getattr(payload, "order_id", ""),
                          aggregate_version=1, payload=payload)


def test_the_consumer_turns_failed_lines_into_a_readable_reason(uow, placed):
    consumes = orders_events.build()
    handler = consumes.handlers["erp.events.v1.StockReservationFailed"]
    event = inv_ev.StockReservationFailed(order_id=placed.order_id, lines=[
        inv_ev.UnreservableLine(line_no=1, sku="SKU-A", warehouse_code=WH, requested=5, available=2,
                                reason=inv_ev.RESERVATION_FAILURE_REASON_INSUFFICIENT_STOCK)])
    react(uow, handler, event, delivered(event, "inventory"))
    assert uow.orders.rows[placed.order_id].rejection_reason == (
        "stock not available: line 1 SKU-A@MAIN: insufficient stock (requested 5, available 2)")


def confirmed(uow) -> Order:
    order = handlers.place_order(uow, place(line(quantity=2, price="10.00")), WH)
    react(uow, handlers.on_stock_answer, order.order_id, ok=True)
    react(uow, handlers.on_credit_answer, order.order_id, ok=True)
    return uow.orders.rows[order.order_id]


def test_invoice_then_shipment_then_payment_completes_the_order(uow):
    order = confirmed(uow)
    react(uow, handlers.on_invoice_issued, order.order_id, "inv-1", Decimal("24.00"))
    assert uow.orders.rows[order.order_id].status is S.INVOICED
    shipped = handlers.mark_shipped(uow, order.order_id)
    assert shipped.status is S.SHIPPED and shipped.fulfilment_status is domain.FulfilmentStatus.SHIPPED
    assert uow.events[-1].payload.DESCRIPTOR.name == "OrderShipped"
    react(uow, handlers.on_payment_received, order.order_id, Decimal("10.00"))
    assert uow.orders.rows[order.order_id].payment_status is domain.PaymentStatus.PARTLY_PAID
    react(uow, handlers.on_payment_received, order.order_id, Decimal("14.00"))
    done = uow.orders.rows[order.order_id]
    assert (done.status, done.payment_status) == (S.COMPLETED, domain.PaymentStatus.PAID)
    assert uow.events[-1].payload == ev.OrderCompleted(order_id=order.order_id, customer_id="cust-1")


def test_paid_before_shipping_completes_on_shipment_with_both_events(uow):
    order = confirmed(uow)
    react(uow, handlers.on_invoice_issued, order.order_id, "inv-1", Decimal("24.00"))
    react(uow, handlers.on_payment_received, order.order_id, Decimal("24.00"))
    assert uow.orders.rows[order.order_id].status is S.INVOICED
    handlers.mark_shipped(uow, order.order_id)
    assert [e.payload.DESCRIPTOR.name for e in uow.events[-2:]] == ["OrderShipped", "OrderCompleted"]
    assert uow.orders.rows[order.order_id].status is S.COMPLETED


def test_an_invoice_arriving_after_shipment_is_recorded_without_moving_back(uow):
    order = confirmed(uow)
    handlers.mark_shipped(uow, order.order_id)
    react(uow, handlers.on_invoice_issued, order.order_id, "inv-1", Decimal("24.00"))
    stored = uow.orders.rows[order.order_id]
    assert (stored.status, stored.invoice_id, stored.payment_status) == (S.SHIPPED, "inv-1",
                                                                           domain.PaymentStatus.UNPAID)
    react(uow, handlers.on_invoice_issued, order.order_id, "inv-2", Decimal("99"))  # a duplicate changes nothing
    assert uow.orders.rows[order.order_id].invoice_id == "inv-1"


def test_shipping_twice_is_harmless_and_shipping_a_pending_order_is_refused(uow, placed):
    with pytest.raises(FailedPrecondition):
        handlers.mark_shipped(uow, placed.order_id)
    order = confirmed(uow)
    handlers.mark_shipped(uow, order.order_id)
    events = list(uow.events)
    assert handlers.mark_shipped(uow, order.order_id).status is S.SHIPPED
    assert uow.events == events


def test_cancel_before_shipment_announces_whether_it_was_invoiced(uow):
    order = confirmed(uow)
    react(uow, handlers.on_invoice_issued, order.order_id, "inv-1", Decimal("24.00"))
    cancelled = handlers.cancel_order(uow, order.order_id, "customer changed their mind")
    assert cancelled.status is S.CANCELLED
    assert uow.events[-1].payload == ev.OrderCancelled(
        order_id=order.order_id, customer_id="cust-1", reason="customer changed their mind", was_invoiced=True,
        total=money_pb2.Money(currency_code="EUR", amount="20.00"))
    events = list(uow.events)
    handlers.cancel_order(uow, order.order_id, "again")  # repeating succeeds and changes nothing
    assert uow.events == events


def test_cancel_after_shipment_is_refused(uow):
    order = confirmed(uow)
    handlers.mark_shipped(uow, order.order_id)
    with pytest.raises(FailedPrecondition):
        handlers.cancel_order(uow, order.order_id, "too late")
    with pytest.raises(InvalidArgument):
        handlers.cancel_order(uow, order.order_id, "")


def test_list_orders_pages_newest_first_with_filters(uow):
    ids = [handlers.place_order(uow, place(request_id=f"r{i}", customer=f"c{i % 2}"), WH).order_id
           for i in range(5)]
    first, token = handlers.list_orders(uow, customer_id="", status=None, created_after=None, created_before=None,
                                        page_size=2, page_token="")
    second, token2 = handlers.list_orders(uow, customer_id="", status=None, created_after=None,
                                          created_before=None, page_size=2, page_token=token)
    third, token3 = handlers.list_orders(uow, customer_id="", status=None, created_after=None,
                                         created_before=None, page_size=2, page_token=token2)
    assert [o.order_id for o in first + second + third] == ids[::-1]
    assert token and token2 and token3 == ""
    only_c0, _ = handlers.list_orders(uow, customer_id="c0", status=None, created_after=None,
                                      created_before=None, page_size=10, page_token="")
    assert {o.customer_id for o in only_c0} == {"c0"} and len(only_c0) == 3
    with pytest.raises(InvalidArgument):  # a token belongs to its filters
        handlers.list_orders(uow, customer_id="c0", status=None, created_after=None, created_before=None,
                             page_size=2, page_token=token)


def test_fake_orders_refuse_a_lost_update(uow, placed):
    a = uow.orders.get(placed.order_id)
    b = uow.orders.get(placed.order_id)
    a.confirm()
    uow.orders.save(a)
    b.reject("late")
    with pytest.raises(Aborted):
        uow.orders.save(b)


# ---------------------------------------------------------------- the saga's deadline

DEADLINE = dt.timedelta(minutes=5)


def drive(uow, order_id: str, max_drives: int = 2):
    return handlers.drive_past_deadline(uow, order_id, DEADLINE, max_drives)


def test_an_order_within_its_deadline_or_answered_is_not_driven(uow, placed):
    uow.orders.clock = placed.created_at + DEADLINE - dt.timedelta(seconds=1)
    assert drive(uow, placed.order_id) is None
    uow.orders.clock += dt.timedelta(seconds=1)
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)
    react(uow, handlers.on_credit_answer, placed.order_id, ok=True)
    events = list(uow.events)
    assert drive(uow, placed.order_id) is None
    assert uow.events == events and uow.orders.rows[placed.order_id].status is S.CONFIRMED


def test_a_pending_order_past_its_deadline_publishes_its_order_placed_again_once_per_deadline(uow, placed):
    first_placed = uow.events[-1]
    uow.orders.clock = placed.created_at + DEADLINE
    assert drive(uow, placed.order_id) == handlers.DRIVEN
    stored = uow.orders.rows[placed.order_id]
    assert (stored.status, stored.drives, stored.driven_at, stored.version) == (S.PENDING, 1, uow.orders.clock, 2)
    assert uow.events[-1] == first_placed._replace(version=2)  # the same request, the order's new version
    assert drive(uow, placed.order_id) is None  # driven a moment ago: its next deadline counts from now
    uow.orders.clock += DEADLINE
    assert drive(uow, placed.order_id) == handlers.DRIVEN
    assert uow.orders.rows[placed.order_id].drives == 2
    assert uow.locked == [("order", placed.order_id)] * 3


def test_a_driven_order_is_confirmed_by_its_answers_as_usual(uow, placed):
    uow.orders.clock = placed.created_at + DEADLINE
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)
    assert drive(uow, placed.order_id) == handlers.DRIVEN
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)  # inventory's repeated answer
    react(uow, handlers.on_credit_answer, placed.order_id, ok=True)
    assert uow.orders.rows[placed.order_id].status is S.CONFIRMED
    assert isinstance(uow.events[-1].payload, ev.OrderConfirmed)


def test_an_order_still_unanswered_after_every_drive_is_rejected_naming_who_did_not_answer(uow, placed):
    react(uow, handlers.on_stock_answer, placed.order_id, ok=True)
    uow.orders.clock = placed.created_at
    for _ in range(2):
        uow.orders.clock += DEADLINE
        assert drive(uow, placed.order_id) == handlers.DRIVEN
    uow.orders.clock += DEADLINE
    assert drive(uow, placed.order_id) == handlers.REJECTED
    stored = uow.orders.rows[placed.order_id]
    assert stored.status is S.REJECTED
    reason = "no answer from crm (credit): asked 3 times, the deadline passed each time"
    assert stored.rejection_reason == reason
    assert uow.events[-1].payload == ev.OrderRejected(order_id=placed.order_id, customer_id="cust-1", reason=reason)
    events = list(uow.events)
    uow.orders.clock += DEADLINE
    assert drive(uow, placed.order_id) is None
    react(uow, handlers.on_credit_answer, placed.order_id, ok=True)  # a late answer changes nothing
    assert uow.events == events and uow.orders.rows[placed.order_id].status is S.REJECTED


def test_no_drives_allowed_rejects_at_the_first_deadline(uow, placed):
    uow.orders.clock = placed.created_at + DEADLINE
    assert drive(uow, placed.order_id, max_drives=0) == handlers.REJECTED
    assert "inventory (stock) and crm (credit)" in uow.orders.rows[placed.order_id].rejection_reason


def test_a_sweep_drives_or_rejects_every_order_past_its_deadline_and_only_those(uow):
    orders = [handlers.place_order(uow, place(request_id=f"req-{i}"), WH) for i in range(5)]
    uow.orders.clock = max(o.created_at for o in orders) + DEADLINE
    react(uow, handlers.on_stock_answer, orders[0].order_id, ok=False, reason="none left")
    settings = dataclasses.replace(load("orders"), env={"ERP_ORDER_PENDING_DEADLINE_SECONDS": "300",
                                                        "ERP_ORDER_PENDING_MAX_DRIVES": "1"})
    policy = deadline.Deadline.from_settings(settings)
    with unittest.mock.patch.object(deadline, "BATCH", 2):  # several pages
        assert deadline.sweep(lambda: uow, policy) == deadline.Swept(driven=4)
        uow.orders.clock += DEADLINE
        assert deadline.sweep(lambda: uow, policy) == deadline.Swept(rejected=4)
    assert [uow.orders.rows[o.order_id].status for o in orders] == [S.REJECTED] * 5


@pytest.mark.parametrize("name, value", [("ERP_ORDER_PENDING_DEADLINE_SECONDS", "-1"),
                                         ("ERP_ORDER_PENDING_MAX_DRIVES", "two"),
                                         ("ERP_ORDER_PENDING_SWEEP_SECONDS", "0")])
def test_bad_deadline_settings_stop_the_start_up_naming_the_setting(name, value):
    settings = dataclasses.replace(load("orders"), env={name: value})
    with pytest.raises(ValueError, match=name):
        deadline.Deadline.from_settings(settings)


def test_deadline_defaults():
    assert deadline.Deadline.from_settings(dataclasses.replace(load("orders"), env={})) == deadline.Deadline(
        dt.timedelta(minutes=5), 3, 30.0)
