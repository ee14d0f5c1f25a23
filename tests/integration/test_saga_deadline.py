"""The saga finishes: a PENDING order whose answers were lost is driven again (its OrderPlaced
published anew through the outbox) and confirmed, or rejected with its compensations once the
tries are spent; inventory and crm answer a repeated OrderPlaced with their first answer and no
second effect; two sweepers at once (two replicas) drive an order once. Real PostgreSQL, real
consumers, relay and transports.

A lost answer is an answer orders' consumer acknowledges without applying (as if the message had
vanished): the handler of that answer is replaced, for the test, by one that drops it."""
from __future__ import annotations

import dataclasses
import datetime as dt
import threading

import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from erp.common.v1 import money_pb2
from erp.crm.v1 import crm_pb2 as crm_pb
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.orders.v1 import orders_pb2 as ord_pb
from erp_client.client import Line
from mesh.events import envelope
from services.orders import adapters as orders_adapters
from services.orders import deadline
from services.orders import handlers as orders_handlers
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.test_races import ON_EACH_POSTGRES, handling
from tests.interleaving import PausePoint, interleave

SAGA = ("inventory", "orders", "crm")
# The background sweeper stays out of the tests that sweep by hand.
NO_BACKGROUND_SWEEP = {"ERP_ORDER_PENDING_SWEEP_SECONDS": "3600"}
DEADLINE = deadline.Deadline(after=dt.timedelta(minutes=10), max_drives=2, sweep_seconds=3600)
PLACED, REJECTED = "erp.events.v1.OrderPlaced", "erp.events.v1.OrderRejected"


class Dropping:
    """Replaces one of orders' answer handlers by one that loses the answer (the consumer acks it,
    nothing changes) the first `times` times; counts the answers lost."""

    def __init__(self, monkeypatch, name: str, times: int = 10**9) -> None:
        self.lost, self.times, self._lock = 0, times, threading.Lock()
        original = getattr(orders_handlers, name)

        def answer(uow, *args, **kwargs):
            with self._lock:
                if self.lost < self.times:
                    self.lost += 1
                    return None
            return original(uow, *args, **kwargs)

        monkeypatch.setattr(orders_handlers, name, answer)


@dataclasses.dataclass
class Saga:
    client: object
    started: dict

    @property
    def orders_engine(self) -> sa.Engine:
        return self.started["orders"].runtime.engine

    def rows(self, service: str, sql: str, **params) -> list:
        with self.started[service].runtime.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def age(self, order_id: str) -> None:
        """Moves the order's clock an hour back: its deadline has passed."""
        with self.orders_engine.begin() as conn:
            conn.execute(sa.text("UPDATE orders SET created_at = created_at - interval '1 hour', "
                                 "driven_at = driven_at - interval '1 hour' WHERE order_id = :o"), {"o": order_id})

    def sweep(self) -> deadline.Swept:
        return deadline.sweep(self.started["orders"].runtime.uow, DEADLINE)

    def outbox(self, order_id: str) -> list[str]:
        return [r.event_type for r in self.rows("orders", "SELECT event_type FROM outbox WHERE aggregate_id = :o "
                                                          "ORDER BY id", o=order_id)]

    def steps(self, order_id: str) -> tuple[str, str]:
        [row] = self.rows("orders", "SELECT stock_step, credit_step FROM orders WHERE order_id = :o", o=order_id)
        return tuple(row)

    def reserved(self) -> int:
        return self.client.get_stock("CHAIR", "MAIN").reserved

    def open_orders(self) -> str:
        return self.client.get_customer("CUST-1").exposure.open_orders.amount

    def place(self, quantity: int = 2) -> str:
        return self.client.place_order("CUST-1", [Line("CHAIR", quantity, "10.00", "MAIN")]).order_id


def saga_mesh(engines, tmp_path, env: dict[str, str]):
    return running_mesh(engines, tmp_path, services=SAGA, env=env)


def stocked(client) -> None:
    client.create_warehouse("MAIN", "Main")
    client.create_product("CHAIR", "Chair")
    client.adjust_stock("CHAIR", "MAIN", 10, reason="opening stock")
    client.create_customer("CUST-1", "Acme", "1000.00")


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


# ---------------------------------------------------------------- a lost answer, driven again


def test_an_order_whose_credit_approval_was_lost_is_driven_again_by_the_sweeper_and_confirmed(
        engines, tmp_path, monkeypatch):
    """The whole path: the orders service's own background sweeper, a deadline of a second."""
    lost = Dropping(monkeypatch, "on_credit_answer", times=1)
    env = {"ERP_ORDER_PENDING_DEADLINE_SECONDS": "1", "ERP_ORDER_PENDING_SWEEP_SECONDS": "0.2",
           "ERP_ORDER_PENDING_MAX_DRIVES": "1000"}
    driven_before = metric("erp_orders_driven_again_total")
    with saga_mesh(engines, tmp_path, env) as (client, started):
        saga = Saga(client, started)
        stocked(client)
        order_id = saga.place()
        support.wait_for("the credit approval to be lost", lambda: lost.lost == 1)
        order = client.wait_for_order(order_id)
        assert order.status == ord_pb.ORDER_STATUS_CONFIRMED, order
        assert saga.outbox(order_id).count(PLACED) >= 2, "confirmed without being driven again"
        assert metric("erp_orders_driven_again_total") > driven_before
        # Each answered every OrderPlaced, but reserved and counted the order once.
        assert saga.reserved() == 2
        assert saga.open_orders() == "20.00"
        assert len(saga.rows("crm", "SELECT 1 FROM credit_decisions WHERE order_id = :o", o=order_id)) == 1
        assert saga.rows("inventory", "SELECT sku, quantity FROM reservations WHERE order_id = :o",
                         o=order_id) == [("CHAIR", 2)]


def test_an_order_driven_again_after_its_credit_approval_was_lost_is_confirmed(engines, tmp_path, monkeypatch):
    lost = Dropping(monkeypatch, "on_credit_answer", times=1)
    with saga_mesh(engines, tmp_path, NO_BACKGROUND_SWEEP) as (client, started):
        saga = Saga(client, started)
        stocked(client)
        order_id = saga.place()
        support.wait_for("the credit approval to be lost and the stock answer applied",
                         lambda: lost.lost == 1 and saga.steps(order_id) == ("ok", "pending"))
        assert saga.sweep() == deadline.Swept(), "driven before its deadline"
        saga.age(order_id)
        assert saga.sweep() == deadline.Swept(driven=1)
        assert saga.sweep() == deadline.Swept(), "driven twice within one deadline"
        assert client.wait_for_order(order_id).status == ord_pb.ORDER_STATUS_CONFIRMED
        assert saga.outbox(order_id) == [PLACED, PLACED, "erp.events.v1.OrderConfirmed"]
        assert (saga.reserved(), saga.open_orders()) == (2, "20.00")


# ---------------------------------------------------------------- nobody answers: rejected, compensated


def test_an_order_nobody_answers_is_rejected_after_its_drives_and_its_stock_and_credit_are_released(
        engines, tmp_path, monkeypatch):
    stock, credit = Dropping(monkeypatch, "on_stock_answer"), Dropping(monkeypatch, "on_credit_answer")
    rejected_before = metric("erp_orders_rejected_by_deadline_total")
    with saga_mesh(engines, tmp_path, NO_BACKGROUND_SWEEP) as (client, started):
        saga = Saga(client, started)
        stocked(client)
        order_id = saga.place()
        for asked in range(1, DEADLINE.max_drives + 2):  # the placement, then each drive
            support.wait_for(f"answer {asked} of inventory and crm to be lost",
                             lambda asked=asked: (stock.lost, credit.lost) == (asked, asked))
            # Every answer was given, the first effect kept, none doubled.
            assert (saga.reserved(), saga.open_orders()) == (2, "20.00")
            saga.age(order_id)
            expected = deadline.Swept(driven=1) if asked <= DEADLINE.max_drives else deadline.Swept(rejected=1)
            assert saga.sweep() == expected
        order = client.wait_for_order(order_id)
        assert order.status == ord_pb.ORDER_STATUS_REJECTED
        assert order.rejection_reason == ("no answer from inventory (stock) and crm (credit): asked 3 times, "
                                          "the deadline passed each time")
        assert saga.outbox(order_id) == [PLACED, PLACED, PLACED, REJECTED]
        assert metric("erp_orders_rejected_by_deadline_total") == rejected_before + 1
        # The compensations: inventory releases the reservation, crm the credit.
        support.wait_for("the reservation and the credit to be released",
                         lambda: (saga.reserved(), saga.open_orders()) == (0, "0.00"))
        assert saga.sweep() == deadline.Swept()


# ---------------------------------------------------------------- a repeated OrderPlaced: the first answer again


def test_inventory_and_crm_answer_a_repeated_order_placed_for_a_failed_reservation_and_a_rejection_the_same(
        engines, tmp_path, monkeypatch):
    """Answered once with a failure, the order is asked again when stock and credit have come since:
    the answer is the first one, and nothing is reserved or counted."""
    stock, credit = Dropping(monkeypatch, "on_stock_answer"), Dropping(monkeypatch, "on_credit_answer")
    with saga_mesh(engines, tmp_path, NO_BACKGROUND_SWEEP) as (client, started):
        saga = Saga(client, started)
        stocked(client)
        order_id = client.place_order("CUST-1", [Line("CHAIR", 20, "100.00", "MAIN")]).order_id  # 2,000 > 1,000
        support.wait_for("both answers", lambda: (stock.lost, credit.lost) == (1, 1))
        client.adjust_stock("CHAIR", "MAIN", 20, reason="delivery")
        client.crm.SetCreditLimit(crm_pb.SetCreditLimitRequest(
            customer_id="CUST-1", credit_limit=money_pb2.Money(currency_code="EUR", amount="5000.00")))
        saga.age(order_id)
        assert saga.sweep() == deadline.Swept(driven=1)
        support.wait_for("both answers again", lambda: (stock.lost, credit.lost) == (2, 2))
        assert (saga.reserved(), saga.open_orders()) == (0, "0.00")
        answers = saga.rows("inventory", "SELECT event_type FROM outbox WHERE aggregate_id = :o", o=order_id)
        assert [r.event_type for r in answers] == ["erp.events.v1.StockReservationFailed"] * 2
        answers = saga.rows("crm", "SELECT envelope FROM outbox WHERE aggregate_id = :o ORDER BY id", o=order_id)
        assert len(answers) == 2 and len({_payload(r.envelope) for r in answers}) == 1


def _payload(envelope_bytes: bytes) -> bytes:
    return envelope.decode(envelope_bytes).envelope.payload.value


# ---------------------------------------------------------------- two replicas sweeping at once


@pytest.fixture
def orders_only(engines, tmp_path):
    with running_mesh(engines, tmp_path, services=("orders",), env=NO_BACKGROUND_SWEEP) as (client, started):
        yield Saga(client, started)


@ON_EACH_POSTGRES
def test_a_sweeper_that_read_an_order_as_due_before_another_drove_it_leaves_it(orders_only, monkeypatch):
    """The replica's scan saw the order past its deadline; the other replica drives it meanwhile."""
    order_id = orders_only.place()
    orders_only.age(order_id)
    pause = PausePoint(monkeypatch, orders_adapters.OrderRepository, "past_deadline")
    run = interleave(orders_only.orders_engine, pause, orders_only.sweep, orders_only.sweep)
    assert (run.first, run.second) == (deadline.Swept(skipped=1), deadline.Swept(driven=1)), run
    assert orders_only.outbox(order_id) == [PLACED, PLACED]
    assert orders_only.rows("orders", "SELECT drives FROM orders WHERE order_id = :o", o=order_id) == [(1,)]


@ON_EACH_POSTGRES
def test_a_sweeper_finding_the_order_locked_by_the_other_skips_it_without_waiting(orders_only, monkeypatch):
    order_id = orders_only.place()
    orders_only.age(order_id)
    pause = PausePoint(monkeypatch, orders_adapters.OrderRepository, "get")
    run = interleave(orders_only.orders_engine, pause, orders_only.sweep, orders_only.sweep)
    assert (run.first, run.second) == (deadline.Swept(driven=1), deadline.Swept(skipped=1)), run
    assert not run.second_waited, "the second sweeper queued behind the first instead of moving on"
    assert orders_only.outbox(order_id) == [PLACED, PLACED]


@ON_EACH_POSTGRES
def test_an_answer_arriving_while_the_sweeper_rejects_the_order_waits_and_changes_nothing(orders_only, monkeypatch):
    order_id = orders_only.place()
    orders_only.age(order_id)
    consumer = handling(orders_only.started["orders"])
    pause = PausePoint(monkeypatch, orders_adapters.OrderRepository, "get")
    give_up = dataclasses.replace(DEADLINE, max_drives=0)
    run = interleave(orders_only.orders_engine, pause,
                     lambda: deadline.sweep(orders_only.started["orders"].runtime.uow, give_up),
                     lambda: consumer.deliver(crm_ev.CreditApproved(order_id=order_id, customer_id="CUST-1"),
                                              aggregate_id=order_id))
    assert run.first == deadline.Swept(rejected=1), run
    assert run.second_waited, "the answer was applied inside the sweeper's transaction"
    assert orders_only.client.get_order(order_id).status == ord_pb.ORDER_STATUS_REJECTED
    assert orders_only.outbox(order_id) == [PLACED, REJECTED]
