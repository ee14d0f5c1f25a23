"""A mutating RPC marked @in_one_statement (orders' PlaceOrder) writes its idempotency key, its
answer, its order and its event in one autocommitted statement on its first try
(mesh/idempotency.py), on real PostgreSQL: the key goes in first and any conflict fails the whole
statement, so a repeat, a twin (either way round), a key of another request and an order placed
under a pruned key are answered the usual way, with nothing doubled and nothing half-written."""
from __future__ import annotations

import threading
import uuid

import pytest
import sqlalchemy as sa

from erp.orders.v1 import orders_pb2 as pb
from mesh import db, idempotency
from mesh.errors import Aborted
from tests import support
from tests.integration.test_idempotency_in_one_transaction import (
    METHOD,
    _placing,
    _request,
    _rows,
    committed_together,
    one_statements,
)
from tests.integration.test_set_based_batches import statements_of


@pytest.fixture
def orders(engine_for):
    return engine_for("orders")


# An order under a request id, written by hand by a session that holds it (lines added when it commits).
_HELD_ORDER = ("INSERT INTO orders (order_id, request_id, customer_id, currency_code, status, version,"
               " rejection_reason, created_at, updated_at) VALUES (:o, :k, 'CUST-1', 'EUR', 'pending', 1, '', now(), now())")


def _at_once(engine, request, run=None, guard: idempotency.Idempotency | None = None):
    guard = guard or idempotency.Idempotency(engine)
    return guard.guarded(METHOD, request, run or _placing(engine, request), pb.PlaceOrderResponse,
                         shared=True, at_once=True)


def _events(engine, key: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM outbox e JOIN orders o ON e.aggregate_id = o.order_id"
                                    " WHERE o.request_id = :k"), {"k": key}).scalar_one()


def _stored(engine, key: str) -> bytes | None:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT response FROM idempotency_keys WHERE request_id = :k"),
                            {"k": key}).scalar_one()


def test_the_servicer_s_placement_is_marked_to_write_in_one_statement():
    from services.orders.grpc_api import OrderServicer

    assert getattr(OrderServicer.PlaceOrder, idempotency._ONE_STATEMENT, False)
    assert getattr(OrderServicer.PlaceOrder, idempotency._ONE_TRANSACTION, False)  # its way on a conflict


def test_the_key_the_order_and_its_event_go_in_one_autocommitted_statement(orders):
    key, answered = str(uuid.uuid4()), {}
    sent = statements_of(orders, lambda: answered.setdefault("answer", _at_once(orders, _request(key))))
    assert len(sent) == 1, sent
    assert sent[0].startswith("WITH claimed AS (INSERT INTO idempotency_keys"), sent[0]
    assert pb.PlaceOrderResponse.FromString(_stored(orders, key)) == answered["answer"]
    assert "INSERT INTO outbox" in sent[0] and "INSERT INTO order_timeline" in sent[0], sent[0]
    with orders.connect() as conn:
        assert committed_together(conn, key), "the key, its answer, order, first step and event were not committed at once"


def test_a_repeat_answers_with_the_first_answer(orders):
    key = str(uuid.uuid4())
    first = _at_once(orders, _request(key))
    with orders.begin() as conn:  # the order moves on; the key's answer is the first one
        conn.execute(sa.text("UPDATE orders SET status = 'confirmed', version = 2 WHERE request_id = :k"), {"k": key})
    again = _at_once(orders, _request(key))
    assert again == first and again.order.status == pb.ORDER_STATUS_PENDING
    assert _rows(orders, key) == (1, 1) and _events(orders, key) == 1


def test_a_key_of_another_request_is_refused_and_nothing_is_written(orders):
    key = str(uuid.uuid4())
    other = _request(key)
    other.customer_id = "CUST-2"
    first = _at_once(orders, other)
    with pytest.raises(idempotency.KeyReused):
        _at_once(orders, _request(key))
    assert _rows(orders, key) == (1, 1) and _events(orders, key) == 1
    with orders.connect() as conn:
        assert conn.execute(sa.text("SELECT customer_id FROM orders WHERE order_id = :o"),
                            {"o": first.order.order_id}).scalar_one() == "CUST-2"


def test_a_refused_body_under_a_used_key_is_already_exists_not_its_own_refusal(orders, monkeypatch):
    """The handler runs before the key is looked at: its refusal of this body must not hide that
    the key belongs to another request (ALREADY_EXISTS, as the other way answers it)."""
    outcomes = one_statements(monkeypatch)
    key = str(uuid.uuid4())
    _at_once(orders, _request(key))
    bad = _request(key)
    bad.lines[0].quantity = 0
    with pytest.raises(idempotency.KeyReused):
        _at_once(orders, bad)
    assert outcomes[-1] is None and _rows(orders, key) == (1, 1) and _events(orders, key) == 1


def test_a_handler_in_one_statement_cannot_send_a_statement_of_its_own(orders):
    """Its connection refuses: a statement sent there would commit alone, before the key."""
    from services.orders.adapters import OrdersUnitOfWork

    key = str(uuid.uuid4())

    def reads() -> pb.PlaceOrderResponse:
        with OrdersUnitOfWork(orders, "orders") as uow:
            uow.orders.get("some-order")
        raise AssertionError("the statement was sent")

    with pytest.raises(RuntimeError, match="sends nothing but its one write"):
        _at_once(orders, _request(key), reads)
    assert _rows(orders, key) == (0, 0)


def test_an_order_placed_under_a_forgotten_key_fails_the_statement_and_answers(orders):
    """The key was pruned (kept 7 days) and the same request comes again: the order's own unique
    request id fails the one statement, key and event with it, and the usual way answers the
    first order without a second event."""
    key = str(uuid.uuid4())
    first = _at_once(orders, _request(key))
    with orders.begin() as conn:
        conn.execute(sa.text("DELETE FROM idempotency_keys WHERE request_id = :k"), {"k": key})
    again = _at_once(orders, _request(key))
    assert again.order.order_id == first.order.order_id
    assert _rows(orders, key) == (1, 1) and _events(orders, key) == 1


def test_a_refused_request_writes_nothing_and_leaves_its_key_free(orders):
    key = str(uuid.uuid4())
    bad = _request(key)
    bad.lines[0].quantity = 0
    with pytest.raises(Exception) as refused:
        _at_once(orders, bad)
    assert type(refused.value).__name__ == "InvalidArgument", refused.value
    assert _rows(orders, key) == (0, 0)
    assert _at_once(orders, _request(key)).order.order_id and _rows(orders, key) == (1, 1)


@pytest.mark.parametrize("blocker", ["rolls back", "commits"])
def test_a_twin_waits_on_the_statement_holding_the_key(orders, blocker, monkeypatch):
    """Forced: the one statement has inserted the key and waits (on an uncommitted order under the
    same request id, held here) when a twin arrives; the twin waits on the statement's key. When
    the order held here rolls back, the statement commits and the twin answers with its order;
    when it commits (an order placed under a forgotten key), the statement fails, key and all,
    and both calls answer with that order. Nothing is written twice."""
    outcomes = one_statements(monkeypatch)
    key = str(uuid.uuid4())
    request = _request(key)
    results: dict = {}

    def call(name: str) -> None:
        try:
            results[name] = _at_once(orders, request)
        except Exception as exc:  # noqa: BLE001 - asserted below
            results[name] = exc

    held_order = str(uuid.uuid4())
    with orders.connect() as holder:
        holder.execute(sa.text(_HELD_ORDER), {"o": held_order, "k": key})
        statement = threading.Thread(target=call, args=("statement",))
        statement.start()
        support.wait_for("the statement to wait on the held order", lambda: support.waits_on_a_lock(orders))
        twin = threading.Thread(target=call, args=("twin",))
        twin.start()
        support.wait_for("the twin to wait too", lambda: support.waits_on_a_lock(orders, count=2))
        if blocker == "commits":
            holder.execute(sa.text(
                "INSERT INTO order_lines (order_id, line_no, sku, warehouse_code, quantity, unit_price)"
                " VALUES (:o, 1, 'SKU-1', 'MAIN', 2, 5.00)"), {"o": held_order})
            holder.commit()
        else:
            holder.rollback()
    statement.join(30)
    twin.join(30)
    assert not any(isinstance(r, Exception) for r in results.values()), results
    placed = {results["statement"].order.order_id, results["twin"].order.order_id}
    assert len(placed) == 1, placed
    assert _rows(orders, key) == (1, 1)
    if blocker == "commits":
        assert placed == {held_order} and _events(orders, key) == 0
        assert outcomes == [None, None], outcomes  # both statements failed on the held order's request id
    else:
        assert placed != {held_order} and _events(orders, key) == 1
        assert sorted(o is None for o in outcomes) == [False, True], outcomes  # one placed it, the twin's failed


def test_the_statement_s_wait_for_a_held_key_ends_at_the_call_s_deadline(orders):
    """Forced: the key's claim is held uncommitted past the call's whole wait, and the call's own
    sessions would wait for ever (lock_timeout 0): only the statement's slice can end its wait; the
    usual way waits out the rest, and the call is ABORTED; nothing written."""
    key = str(uuid.uuid4())
    outcome: dict = {}
    unbounded = db.create_engine(orders.url.render_as_string(hide_password=False), schema="orders", pool_size=2,
                                 timeouts=db.Timeouts(lock_ms=0))
    guard = idempotency.Idempotency(unbounded, wait_seconds=1.5)

    def call() -> None:
        try:
            _at_once(unbounded, _request(key), guard=guard)
        except Exception as exc:  # noqa: BLE001 - asserted below
            outcome["error"] = exc

    with orders.connect() as holder:
        holder.execute(sa.text("INSERT INTO idempotency_keys (request_id, method, fingerprint) VALUES (:k, :m, '\\x00')"),
                       {"k": key, "m": METHOD})
        waiting = threading.Thread(target=call)
        waiting.start()
        waiting.join(60)  # not a timing check: without a bounded wait this join would run out
        alive = waiting.is_alive()
        holder.rollback()
    waiting.join()
    unbounded.dispose()
    assert not alive, "the one statement's wait for a held key was not bounded"
    assert isinstance(outcome.get("error"), Aborted), outcome
    assert _rows(orders, key) == (0, 0)
