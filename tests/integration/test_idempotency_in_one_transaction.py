"""A mutating RPC marked @in_one_transaction (orders' PlaceOrder, CancelOrder, MarkShipped) runs its
unit of work inside its idempotency key's transaction (mesh/idempotency.py), on real PostgreSQL:
the key, the effect and the answer commit together or not at all, a twin waits on the uncommitted
claim and takes the answer stored with it (or the key, when the first call rolled back), and the
lock wait of the claim bounds only the claim."""
from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from erp.orders.v1 import orders_pb2 as pb
from mesh import idempotency
from mesh.errors import Aborted
from tests import support
from tests.integration.test_set_based_batches import statements_of

METHOD = "/erp.orders.v1.OrderService/PlaceOrder"


@pytest.fixture
def orders(engine_for):
    return engine_for("orders")


def _request(key: str) -> pb.PlaceOrderRequest:
    return pb.PlaceOrderRequest(request_id=key, customer_id="CUST-1", currency_code="EUR", lines=[
        pb.OrderLine(sku="SKU-1", warehouse_code="MAIN", quantity=2,
                          unit_price={"currency_code": "EUR", "amount": "5.00"})])


def _placing(engine, request: pb.PlaceOrderRequest, then=None):
    """The servicer's work for `request`: place_order on a fresh unit of work, answered as PlaceOrder does."""
    from services.orders import domain, handlers
    from services.orders.adapters import OrdersUnitOfWork
    from services.orders.grpc_api import to_proto

    def run() -> pb.PlaceOrderResponse:
        cmd = domain.PlaceOrder(request.request_id, request.customer_id, request.currency_code, tuple(
            domain.LineInput(li.sku, li.warehouse_code, li.quantity, li.unit_price.amount, li.unit_price.currency_code)
            for li in request.lines))
        order = handlers.place_order(OrdersUnitOfWork(engine, "orders"), cmd, "MAIN")
        if then is not None:
            then()
        return pb.PlaceOrderResponse(order=to_proto(order))

    return run


def _guarded(engine, request, run, guard: idempotency.Idempotency | None = None, at_once: bool = False):
    guard = guard or idempotency.Idempotency(engine)
    return guard.guarded(METHOD, request, run, pb.PlaceOrderResponse, shared=True, at_once=at_once)


def _rows(engine, key: str) -> tuple[int, int]:
    """(orders, idempotency keys) with this request id."""
    with engine.connect() as conn:
        return tuple(conn.execute(sa.text("SELECT (SELECT count(*) FROM orders WHERE request_id = :k),"
                                    " (SELECT count(*) FROM idempotency_keys WHERE request_id = :k)"),
                            {"k": key}).one())


def one_statements(monkeypatch) -> list[object]:
    """What each call's one statement came to (its answer; None: it wrote nothing, the call went
    the other way), and lock slices long enough that a forced interleaving, not a slice, ends a wait."""
    outcomes: list[object] = []
    original = idempotency.Idempotency._run_in_one_statement

    def recorded(self, *args, **kwargs):
        outcomes.append(original(self, *args, **kwargs))
        return outcomes[-1]

    monkeypatch.setattr(idempotency.Idempotency, "_run_in_one_statement", recorded)
    monkeypatch.setattr(idempotency, "_LOCK_SLICE_SECONDS", 30.0)
    return outcomes


def committed_together(conn, key: str) -> bool:
    """Whether the key with its answer, its order, the order's first step and its event were
    written by one transaction."""
    return conn.execute(sa.text(
        "SELECT k.xmin = o.xmin AND k.xmin = e.xmin AND k.xmin = t.xmin AND t.kind = 'placed'"
        " AND k.response IS NOT NULL FROM idempotency_keys k JOIN orders o USING (request_id)"
        " JOIN outbox e ON e.aggregate_id = o.order_id JOIN order_timeline t ON t.order_id = o.order_id"
        " WHERE request_id = :k"), {"k": key}).scalar_one()


def test_the_key_the_effect_and_the_answer_commit_in_one_transaction(orders):
    guard, first = idempotency.Idempotency(orders), str(uuid.uuid4())
    _guarded(orders, _request(first), _placing(orders, _request(first)), guard)  # reads the session's lock wait once
    key = str(uuid.uuid4())
    commits: list[object] = []

    def committed(conn) -> None:
        commits.append(conn)

    sa.event.listen(orders, "commit", committed)
    try:
        sent = statements_of(orders, lambda: _guarded(orders, _request(key), _placing(orders, _request(key)), guard))
    finally:
        sa.event.remove(orders, "commit", committed)
    assert len(commits) == 1, sent
    # claim, the placement (order, lines and first timeline step), the answer with the outbox row
    assert len(sent) == 3, sent
    assert "INSERT INTO outbox" in sent[-1] and "UPDATE idempotency_keys" in sent[-1], sent[-1]
    with orders.connect() as conn:
        assert committed_together(conn, key), "the key, its answer, order, first step and event were not committed at once"
        assert conn.execute(sa.text("SELECT count(*) FROM outbox")).scalar_one() == 2


@pytest.mark.parametrize("at_once", [False, True], ids=["in one transaction", "in one statement"])
def test_a_failure_after_the_handler_s_part_keeps_neither_the_effect_nor_the_key(orders, at_once, monkeypatch):
    """The guard commits (or, in one statement, sends the handler's write) once the servicer has
    answered: a call that fails before that keeps nothing, and the same request again runs once."""
    outcomes = one_statements(monkeypatch)
    key = str(uuid.uuid4())

    def then() -> None:
        raise RuntimeError("the process dies before the guard commits")

    with pytest.raises(RuntimeError):
        _guarded(orders, _request(key), _placing(orders, _request(key), then), at_once=at_once)
    assert _rows(orders, key) == (0, 0)
    placed = _guarded(orders, _request(key), _placing(orders, _request(key)), at_once=at_once)  # runs once
    assert placed.order.order_id and _rows(orders, key) == (1, 1)
    assert outcomes == ([placed] if at_once else []), outcomes  # in one statement, the second placed it


def test_the_handler_waits_for_locks_as_long_as_the_session_says_not_the_claim_s_slice(orders):
    """The claim sets a slice's lock wait to wait for a twin; the handler's statements get the
    session's own again. A handler that answers without writing keeps nothing and its answer is
    stored on its own."""
    from services.orders.adapters import OrdersUnitOfWork

    key, seen = str(uuid.uuid4()), {}

    def look() -> pb.PlaceOrderResponse:
        with OrdersUnitOfWork(orders, "orders") as uow:
            seen["lock_timeout"], seen["session"] = uow.connection.execute(sa.text(
                "SELECT current_setting('lock_timeout'), reset_val FROM pg_settings WHERE name = 'lock_timeout'")).one()
            seen["claimed here"] = uow.connection.execute(sa.text(
                "SELECT xmin::text = pg_current_xact_id()::text FROM idempotency_keys WHERE request_id = :k"),
                {"k": key}).scalar_one()
        return pb.PlaceOrderResponse(order=pb.Order(order_id="answered-from-what-was-there"))

    answer = _guarded(orders, _request(key), look)
    assert seen["claimed here"], "the handler did not run in the key's transaction"
    assert seen["lock_timeout"] == "10s" and seen["session"] == "10000", seen
    again = _guarded(orders, _request(key), _placing(orders, _request(key)))
    assert again == answer and _rows(orders, key) == (0, 1)


@pytest.mark.parametrize("at_once", [False, True], ids=["in one transaction", "in one statement"])
@pytest.mark.parametrize("first", ["commits", "rolls back"])
def test_a_twin_waits_on_the_uncommitted_claim_and_takes_its_answer_or_the_key(orders, first, at_once, monkeypatch):
    """Forced: the first call has claimed the key in its transaction and not committed when the
    twin arrives. The twin's claim (or its one statement, which fails then) waits on that row; the
    first call's answer is stored and committed, and the twin returns it without running; or the
    first call rolls back, and the twin takes the key and runs the handler once."""
    outcomes = one_statements(monkeypatch)
    key = str(uuid.uuid4())
    request = _request(key)
    stored = pb.PlaceOrderResponse(order=pb.Order(order_id="the-first-call-s-order"))
    result: dict = {}

    def twin() -> None:
        try:
            result["answer"] = _guarded(orders, request, _placing(orders, request), at_once=at_once)
        except Exception as exc:  # noqa: BLE001 - asserted below
            result["error"] = exc

    waiting = threading.Thread(target=twin)
    with orders.connect() as holder:
        holder.execute(sa.text("INSERT INTO idempotency_keys (request_id, method, fingerprint) VALUES (:k, :m, :fp)"),
                       {"k": key, "m": METHOD, "fp": idempotency.fingerprint(METHOD, request, "")})
        waiting.start()
        support.wait_for("the twin's claim to wait for the first call's", lambda: support.waits_on_a_lock(orders))
        if first == "commits":
            holder.execute(sa.text("UPDATE idempotency_keys SET response = :r WHERE request_id = :k"),
                           {"k": key, "r": stored.SerializeToString()})
            holder.commit()
        else:
            holder.rollback()
    waiting.join(30)
    assert "error" not in result, repr(result.get("error"))
    if first == "commits":
        assert result["answer"] == stored and _rows(orders, key) == (0, 1)
    else:
        assert result["answer"].order.order_id != stored.order.order_id and _rows(orders, key) == (1, 1)
    if at_once:  # the twin's one statement waited; it failed on the committed key, or placed the order
        assert outcomes == [None if first == "commits" else result["answer"]], outcomes


def test_the_claim_s_wait_is_bounded_by_its_own_setting(orders):
    """Forced: the key's uncommitted claim is held and the waiting session's own lock_timeout is
    unlimited, so only the setting in the claim's statement can end its wait: ABORTED at the deadline."""
    key = str(uuid.uuid4())
    guard = idempotency.Idempotency(orders)
    outcome: dict = {}

    def claim_for_half_a_second() -> None:
        with orders.connect() as conn:
            conn.execute(sa.text("SET lock_timeout = 0"))  # this session would wait for ever
            conn.commit()
            try:
                guard._claim_in_transaction(conn, key, METHOD, b"\x01", until=time.monotonic() + 0.5)
            except Exception as exc:  # noqa: BLE001 - asserted below
                outcome["error"] = exc
            finally:
                conn.rollback()
                conn.execute(sa.text("RESET lock_timeout"))
                conn.commit()

    with orders.connect() as holder:
        holder.execute(sa.text("INSERT INTO idempotency_keys (request_id, method, fingerprint) VALUES (:k, :m, '\\x00')"),
                       {"k": key, "m": METHOD})
        waiting = threading.Thread(target=claim_for_half_a_second)
        waiting.start()
        waiting.join(60)  # not a timing check: without the setting this join would run out
        alive = waiting.is_alive()
        holder.rollback()
    waiting.join()
    assert not alive, "the claim's wait was not bounded by the statement's own setting"
    assert isinstance(outcome.get("error"), Aborted), outcome
