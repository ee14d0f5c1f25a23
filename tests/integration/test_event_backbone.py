"""The outbox, relay, consumers, inbox and dead letters, on each real transport:
the PostgreSQL event bus (embedded and external PostgreSQL) and RabbitMQ."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import db, locks
from mesh.events import dead_letters
from mesh.events.amqp import AmqpTransport, queue_name
from mesh.events.consumer import Consumer, EventHandlers
from mesh.events.pgbus import SCHEMA, PgTransport
from mesh.events.relay import Relay
from mesh.service import libpq_dsn
from mesh.uow import UnitOfWork
from tests import support

MIGRATIONS = Path(__file__).parent / "probe_migrations"
ADJUSTED = inv_ev.StockAdjusted.DESCRIPTOR.full_name
MAX_ATTEMPTS = 3


@pytest.fixture
def probe(engines):
    engine = db.create_engine(engines.database_url, schema="probe", pool_size=5)
    db.migrate(engine, "probe", MIGRATIONS)
    if engines.transport == "amqp":
        transport = AmqpTransport(engines.amqp_url, 20, MAX_ATTEMPTS, engines.namespace)
    else:
        transport = PgTransport(engine, libpq_dsn(engines.database_url))
    yield engine, transport, engines
    engine.dispose()


def emit(engine, count: int, payload_type=inv_ev.StockAdjusted) -> list[str]:
    ids = []
    with UnitOfWork(engine, "probe") as uow:
        for i in range(count):
            ids.append(uow.emit(aggregate_type="stock", aggregate_id=f"agg-{i % 3}", version=i + 1,
                                payload=payload_type()))
        uow.commit()
    return ids


def recording_handlers(fail: bool = False) -> EventHandlers:
    handlers = EventHandlers(consumer="probe")

    @handlers.on(inv_ev.StockAdjusted, lock=locks.by("stock", "sku"))
    def record(uow, payload, envelope) -> None:
        if fail:
            raise RuntimeError("handler always fails")
        uow.connection.execute(sa.text("INSERT INTO effects (event_id) VALUES (:e)"),
                               {"e": envelope.event_id})

    return handlers


def drain(subscription, consumer=None, idle_rounds: int = 3) -> list:
    """Receives until the queue stays empty; handles (or just acks) what arrives."""
    from mesh.events.transport import Ack

    seen, idle = [], 0
    while idle < idle_rounds:
        batch = subscription.receive(timeout=0.3)
        idle = idle + 1 if not batch else 0
        seen += batch
        subscription.settle([(d, consumer.handle(d) if consumer else Ack()) for d in batch])
    return seen


def unpublished(engine) -> list:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT event_type, attempts, last_error, published_at FROM outbox ORDER BY id")).all()


def effects(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT event_id FROM effects")).scalars())


def test_each_outbox_row_is_published_once_and_marked_after_the_confirm(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    ids = emit(engine, 20)
    relay = Relay(engine, "probe", transport.publisher)
    assert relay.publish_pending() == 20
    assert relay.publish_pending() == 0  # marked sent: never published again
    assert all(row.published_at is not None for row in unpublished(engine))
    delivered = drain(subscription)
    subscription.close()
    from mesh.events.envelope import decode

    assert sorted(decode(d.body).envelope.event_id for d in delivered) == sorted(ids)


def test_the_leading_relay_marks_a_batch_sent_with_the_next_read_and_never_sends_it_twice(probe):
    """The leader's loop leaves a batch's mark-sent to the statement that reads the next batch:
    that read marks it and leaves it out, so nothing goes out twice, and later rows go out once."""
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    first = emit(engine, 3)
    relay = Relay(engine, "probe", transport.publisher)
    assert relay.publish_pending(leave_marks=True) == 3
    assert all(row.published_at is None for row in unpublished(engine))  # published, not yet marked
    later = emit(engine, 2)
    assert relay.publish_pending(leave_marks=True) == 2  # the 3 marked by this read, not sent again
    assert [row.published_at is not None for row in unpublished(engine)] == [True] * 3 + [False] * 2
    assert relay.publish_pending() == 0
    assert all(row.published_at is not None for row in unpublished(engine))
    delivered = drain(subscription)
    subscription.close()
    from mesh.events.envelope import decode

    assert sorted(decode(d.body).envelope.event_id for d in delivered) == sorted(first + later)


def test_relay_killed_before_marking_republishes_and_the_inbox_absorbs_duplicates(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    ids = emit(engine, 5)
    crashing = Relay(engine, "probe", transport.publisher)

    def crash():
        raise KeyboardInterrupt("relay killed between publish and mark-sent")

    crashing.mark_published = crash
    with pytest.raises(KeyboardInterrupt):
        crashing.publish_pending()
    assert all(row.published_at is None for row in unpublished(engine))
    assert Relay(engine, "probe", transport.publisher).publish_pending() == 5  # the restarted relay
    consumer = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    delivered = drain(subscription, consumer)
    subscription.close()
    assert len(delivered) == 10  # every event twice on the wire...
    assert sorted(effects(engine)) == sorted(ids)  # ...and once in effect


def letters(engine, transport) -> list[dict]:
    """The probe's dead letters (after moving in what the transport itself dead-lettered)."""
    transport.drain_dead_letters("probe", dead_letters.recorder(engine))
    return [row for row in dead_letters.listing(engine, 100) if row["kind"] == "dead"]


def dead_letters_soon(engine, transport, count: int, timeout: float = 20.0) -> list[dict]:
    return support.wait_for(f"{count} dead letters", lambda: len(found := letters(engine, transport)) >= count
                            and found, timeout)


def run_consumer(transport, consumer) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(lambda: transport.subscribe("probe", [ADJUSTED]), stop),
                              daemon=True)
    thread.start()
    return stop, thread


def test_a_handler_that_always_fails_ends_in_the_dead_letter_queue_and_can_be_replayed(probe):
    engine, transport, _ = probe
    transport.subscribe("probe", [ADJUSTED]).close()
    [event_id] = emit(engine, 1)
    Relay(engine, "probe", transport.publisher).publish_pending()
    consumer = Consumer(recording_handlers(fail=True), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    stop, thread = run_consumer(transport, consumer)
    try:
        [dead] = dead_letters_soon(engine, transport, 1)
    finally:
        stop.set()
        thread.join(5)
    assert dead["event_id"] == event_id
    assert int(dead["attempts"]) == MAX_ATTEMPTS
    assert "handler always fails" in str(dead["error"])
    assert effects(engine) == []
    # Replayed once the handler is fixed, it takes effect exactly once.
    assert dead_letters.replay(engine, transport, "probe") == 1
    fixed = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    subscription = transport.subscribe("probe", [ADJUSTED])
    drain(subscription, fixed)
    subscription.close()
    assert effects(engine) == [event_id]
    assert letters(engine, transport) == []


def test_an_outage_during_handling_is_waited_out_and_never_dead_letters(probe):
    """The database connection dies under the handler more times than max_attempts allows: each
    is retried without counting, the consumer waits for the database before taking more, and the
    event takes effect once (DESIGN decision 12). Before, it was dead-lettered."""
    engine, transport, _ = probe
    transport.subscribe("probe", [ADJUSTED]).close()
    [event_id] = emit(engine, 1)
    Relay(engine, "probe", transport.publisher).publish_pending()
    outages, asked = [], []
    handlers = EventHandlers(consumer="probe")

    @handlers.on(inv_ev.StockAdjusted, lock=locks.by("stock", "sku"))
    def record(uow, payload, envelope) -> None:
        if len(outages) <= MAX_ATTEMPTS:  # one more than the attempts an event has
            outages.append(1)
            uow.connection.execute(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
        uow.connection.execute(sa.text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": envelope.event_id})

    def ready() -> bool:
        asked.append(1)
        return db.ping(engine)

    consumer = Consumer(handlers, lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20, ready=ready)
    stop, thread = run_consumer(transport, consumer)
    try:
        support.wait_for("the event's effect", lambda: effects(engine) == [event_id], timeout=30)
    finally:
        stop.set()
        thread.join(5)
    assert len(outages) == MAX_ATTEMPTS + 1 and len(asked) >= MAX_ATTEMPTS + 1
    assert letters(engine, transport) == []


def test_a_relay_facing_a_down_broker_backs_off_whatever_the_commits(probe):
    """Before, every commit woke the relay, which re-read the outbox and tried the broker again:
    one round per commit for as long as the broker was down."""
    engine, _, _ = probe
    tries = []

    def broker_down():
        tries.append(1)
        raise ConnectionRefusedError("broker down")

    relay = Relay(engine, "probe", broker_down, poll_seconds=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    try:
        for _ in range(40):  # 40 commits in about 2 s, each waking the relay
            emit(engine, 1)
            relay.wake.set()
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(5)
    # Backing off 0.1, 0.2, 0.4, 0.8 s... leaves room for about 6 tries in 2 s, not 40.
    assert 2 <= len(tries) <= 8, f"{len(tries)} publish tries for 40 commits"
    assert all(row.published_at is None for row in unpublished(engine))  # nothing lost meanwhile


def _relay_lock_holders(engine) -> list[int]:
    """Backends holding the probe relay's leader lock (a bigint key: classid its high half, objid its low)."""
    key = db.advisory_key("relay:probe")
    with engine.connect() as conn:
        return list(conn.execute(sa.text(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
            "AND classid = :high AND objid = :low AND database = (SELECT oid FROM pg_database "
            "WHERE datname = current_database())"), {"high": (key >> 32) & 0xFFFFFFFF, "low": key & 0xFFFFFFFF}).scalars())


def _wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.05)
    return found


def test_a_relay_whose_lock_connection_is_gone_publishes_nothing_beside_the_next_leader(probe):
    """The leader's statements run on the connection that holds its lock. Forced interleaving: its
    backend is terminated and another session takes the lock before the relay's next round; rows
    committed then stay for the new leader. (When the rounds ran on pooled connections, the old
    leader went on publishing beside the new one.)"""
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])  # (a queue bound: the rows are routable)
    relay = Relay(engine, "probe", transport.publisher, poll_seconds=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    other = engine.connect()
    try:
        emit(engine, 1)
        relay.wake.set()
        _wait_for(lambda: all(row.published_at for row in unpublished(engine)))
        [pid] = _relay_lock_holders(engine)
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        other.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": db.advisory_key("relay:probe")})
        other.commit()
        emit(engine, 3)
        relay.wake.set()
        time.sleep(1.5)  # rounds at 0.05 s, and the relay's 1 s retry after the error
        assert [row.published_at for row in unpublished(engine)][1:] == [None] * 3
        other.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": db.advisory_key("relay:probe")})
        other.commit()
        _wait_for(lambda: all(row.published_at for row in unpublished(engine)))  # the relay leads again
    finally:
        other.close()
        stop.set()
        thread.join(5)
        subscription.close()
    assert not thread.is_alive()
    _wait_for(lambda: not _relay_lock_holders(engine))  # unlocked at stop, the connection back in the pool


def test_a_lead_that_ends_in_an_error_leaves_no_lock_in_the_pool(probe):
    """A relay whose lead raised used to hand its lock's connection back to the pool, still holding
    the session lock: no other replica could lead until that pooled connection went away."""
    engine, transport, _ = probe
    relay = Relay(engine, "probe", transport.publisher, poll_seconds=0.05)
    stop = threading.Event()

    def fails(leave_marks: bool = False) -> int:
        stop.set()  # no second lead
        raise RuntimeError("a bug in a round")

    relay.publish_pending = fails
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    _wait_for(lambda: not _relay_lock_holders(engine))


def test_a_poison_message_goes_straight_to_the_dead_letter_queue(probe):
    engine, transport, engines = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    garbage = b"\xff\x00 definitely not an event envelope"
    if engines.transport == "amqp":
        conn = pika.BlockingConnection(pika.URLParameters(engines.amqp_url))
        conn.channel().basic_publish("", queue_name(engines.namespace, "probe"), garbage)
        conn.close()
    else:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {SCHEMA}.messages (queue, event_id, event_type, body) "
                                 "VALUES ('probe', 'x', 'garbage', :b)"), {"b": garbage})
    consumer = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    drain(subscription, consumer)
    subscription.close()
    [dead] = letters(engine, transport)
    assert dead["body"] == garbage
    assert "undecodable" in dead["error"]
    assert int(dead["attempts"]) == 1  # no retries for what can never decode


def test_an_unroutable_publish_is_detected_and_kept_until_the_grace_period_ends(probe):
    engine, transport, _ = probe
    emit(engine, 1, payload_type=orders_ev.OrderRejected)  # nobody is bound to this type here
    relay = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=300)
    assert relay.publish_pending() == 0
    [row] = unpublished(engine)
    assert row.published_at is None and row.attempts == 1 and "no queue bound" in row.last_error
    assert Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=0).publish_pending() == 1
    [row] = unpublished(engine)
    assert row.published_at is not None and row.last_error.startswith("unrouted")


class FailingOnce:
    """Wraps a publisher; its first batch fails like a dropped broker connection."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def publish_many(self, messages) -> set[str]:
        from mesh.events.transport import PublishFailed

        self.calls += 1
        if self.calls == 1:
            raise PublishFailed("connection lost")
        return self.inner.publish_many(messages)

    def close(self) -> None:
        self.inner.close()


def test_a_failed_publish_keeps_per_aggregate_order(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    emit(engine, 9)  # aggregates agg-0, agg-1, agg-2, versions 1..9 round robin
    flaky = FailingOnce(transport.publisher())
    relay = Relay(engine, "probe", lambda: flaky)
    assert relay.publish_pending() == 0  # the batch failed: nothing counts as sent...
    rows = unpublished(engine)
    assert all(row.published_at is None for row in rows)
    assert rows[0].attempts == 1 and "connection lost" in rows[0].last_error
    relay.publisher_factory = transport.publisher
    assert relay.publish_pending() == 9  # ...and it all goes again, in order
    from mesh.events.envelope import decode

    envelopes = [decode(d.body).envelope for d in drain(subscription)]
    subscription.close()
    assert len(envelopes) == 9
    for aggregate in ("agg-0", "agg-1", "agg-2"):
        versions = [e.aggregate_version for e in envelopes if e.aggregate_id == aggregate]
        assert versions == sorted(versions)


def test_one_batch_mixes_routable_and_unroutable_events(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    wanted = emit(engine, 3)
    emit(engine, 2, payload_type=orders_ev.OrderRejected)  # nobody is bound to this type here
    wanted += emit(engine, 3)
    relay = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=300)
    assert relay.publish_pending() == 6
    from mesh.events.envelope import decode

    assert sorted(decode(d.body).envelope.event_id for d in drain(subscription)) == sorted(wanted)
    subscription.close()
    left = [row for row in unpublished(engine) if row.published_at is None]
    assert [row.event_type for row in left] == [orders_ev.OrderRejected.DESCRIPTOR.full_name] * 2


def test_events_nobody_consumes_do_not_crowd_out_the_ones_that_are(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    emit(engine, 600, payload_type=orders_ev.OrderRejected)  # more than a relay batch, unroutable
    [wanted] = emit(engine, 1)
    relay = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=300)
    assert relay.publish_pending() == 1  # the routable event behind them went out
    with engine.connect() as conn:
        tried = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE attempts > 0")).scalar()
    assert tried == 1  # one try for the whole unroutable type, not one write per row
    from mesh.events.envelope import decode

    assert [decode(d.body).envelope.event_id for d in drain(subscription)] == [wanted]
    subscription.close()
    later = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=0)
    assert later.publish_pending() == 600  # after the grace period, settled in bulk
    assert all(row.published_at is not None for row in unpublished(engine))


def receive_all(subscription, count: int, timeout: float = 10.0) -> list:
    """Deliveries until `count` have arrived (over as many receives as it takes), unsettled."""
    got: list = []
    end = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        got += subscription.receive(timeout=0.3)
    assert len(got) == count, f"expected {count} deliveries, got {len(got)}"
    return got


def published_batch(engine, transport, count: int):
    """A subscription with `count` events emitted, relayed and received (not settled yet)."""
    subscription = transport.subscribe("probe", [ADJUSTED])
    ids = emit(engine, count)
    Relay(engine, "probe", transport.publisher).publish_pending()
    return subscription, ids, receive_all(subscription, count)


class CountingUnitsOfWork:
    def __init__(self, engine) -> None:
        self.engine, self.opened = engine, 0

    def __call__(self) -> UnitOfWork:
        self.opened += 1
        return UnitOfWork(self.engine, "probe")


def hooked_handlers(ran: list[str], poison: set[str] = frozenset()) -> EventHandlers:
    """Records each event's effect and an after-commit hook; raises for the events in `poison`."""
    handlers = EventHandlers(consumer="probe")

    @handlers.on(inv_ev.StockAdjusted, lock=locks.by("stock", "sku"))
    def record(uow, payload, envelope) -> None:
        event_id = envelope.event_id
        uow.connection.execute(sa.text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": event_id})
        uow.after_commit(lambda: ran.append(event_id))
        if event_id in poison:
            raise RuntimeError("poison event")

    return handlers


def test_a_batch_of_deliveries_is_applied_in_one_transaction(probe):
    engine, transport, _ = probe
    subscription, ids, batch = published_batch(engine, transport, 8)
    units, ran = CountingUnitsOfWork(engine), []
    consumer = Consumer(hooked_handlers(ran), units, MAX_ATTEMPTS, 20)
    outcomes = consumer.handle_batch(batch)
    subscription.settle(list(zip(batch, outcomes, strict=True)))
    subscription.close()
    from mesh.events.transport import Ack

    assert outcomes == [Ack()] * 8
    assert units.opened == 1  # one transaction for the eight events
    again = transport.subscribe("probe", [ADJUSTED])
    assert drain(again) == []  # all eight acked (AMQP: in one frame), none redelivered
    again.close()
    assert sorted(effects(engine)) == sorted(ids) and sorted(ran) == sorted(ids)
    # The same deliveries again (a redelivery after a lost ack) change nothing.
    assert consumer.handle_batch(batch) == [Ack()] * 8
    assert sorted(effects(engine)) == sorted(ids) and len(ran) == 8


def _batches(stage: str) -> tuple[float, float]:
    """erp_event_batch_size's (count, sum) for the probe's stage."""
    labels = {"service": "probe", "stage": stage}
    return tuple(REGISTRY.get_sample_value(f"erp_event_batch_size_{kind}", labels) or 0.0  # type: ignore[return-value]
                 for kind in ("count", "sum"))


def test_batch_sizes_are_measured_per_relay_round_and_per_consumer_batch(probe):
    engine, transport, _ = probe
    published, consumed = _batches("published"), _batches("consumed")
    subscription, _, batch = published_batch(engine, transport, 8)
    Relay(engine, "probe", transport.publisher).publish_pending()  # nothing left: an empty round is no batch
    assert _batches("published") == (published[0] + 1, published[1] + 8)
    Consumer(hooked_handlers([]), CountingUnitsOfWork(engine), MAX_ATTEMPTS, 20).handle_batch(batch)
    assert _batches("consumed") == (consumed[0] + 1, consumed[1] + 8)
    subscription.close()


def test_one_failing_event_in_a_batch_costs_only_itself_a_retry(probe):
    engine, transport, _ = probe
    subscription, ids, batch = published_batch(engine, transport, 5)
    from mesh.events.envelope import decode
    from mesh.events.transport import Ack, Retry

    order = [decode(d.body).envelope.event_id for d in batch]
    ran: list[str] = []
    consumer = Consumer(hooked_handlers(ran, poison={order[2]}), CountingUnitsOfWork(engine), MAX_ATTEMPTS, 20)
    outcomes = consumer.handle_batch(batch)
    subscription.settle(list(zip(batch, outcomes, strict=True)))
    subscription.close()
    assert [type(o) for o in outcomes] == [Ack, Ack, Retry, Ack, Ack]
    assert "poison event" in outcomes[2].error
    healthy = sorted(i for i in ids if i != order[2])
    # The rolled-back batch left nothing behind: each healthy event took effect once, its hook ran once,
    # and the poison event's hook never ran.
    assert sorted(effects(engine)) == healthy
    assert sorted(ran) == healthy


def test_an_event_delivered_twice_in_one_batch_takes_effect_once(probe):
    engine, transport, _ = probe
    subscription = transport.subscribe("probe", [ADJUSTED])
    [event_id] = emit(engine, 1)
    relay = Relay(engine, "probe", transport.publisher)
    relay.publish_pending()
    with engine.begin() as conn:  # the relay "crashed" before marking: the same row goes again
        conn.execute(sa.text("UPDATE outbox SET published_at = NULL"))
    relay.publish_pending()
    batch = receive_all(subscription, 2)
    ran: list[str] = []
    units = CountingUnitsOfWork(engine)
    outcomes = Consumer(hooked_handlers(ran), units, MAX_ATTEMPTS, 20).handle_batch(batch)
    subscription.settle(list(zip(batch, outcomes, strict=True)))
    subscription.close()
    from mesh.events.transport import Ack

    assert outcomes == [Ack(), Ack()]
    assert units.opened == 1  # applied as a batch, not after a rolled-back one
    assert effects(engine) == [event_id] and ran == [event_id]


def test_a_batch_kept_waiting_for_a_lock_gives_up_and_applies_its_events_one_by_one(probe):
    """Two replicas' batches can wait on each other's row locks; a batch gives up a wait
    (lock_timeout) and falls back instead of stalling until the deadlock detector fires."""
    engine, transport, _ = probe
    from mesh import metrics
    from mesh.events.transport import Ack

    subscription = transport.subscribe("probe", [ADJUSTED])
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO effects (event_id) VALUES ('the-lock')"))
    ids = emit(engine, 3)
    Relay(engine, "probe", transport.publisher).publish_pending()
    batch = receive_all(subscription, 3)
    handlers = EventHandlers(consumer="probe")

    @handlers.on(inv_ev.StockAdjusted, lock=locks.by("stock", "sku"))
    def record(uow, payload, envelope) -> None:
        uow.connection.execute(sa.text("SELECT 1 FROM effects WHERE event_id = 'the-lock' FOR UPDATE"))
        uow.connection.execute(sa.text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": envelope.event_id})

    fallbacks = metrics.EVENT_BATCH_FALLBACKS.labels("probe")
    before = fallbacks._value.get()
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT 1 FROM effects WHERE event_id = 'the-lock' FOR UPDATE"))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(
        outcomes=Consumer(handlers, lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20).handle_batch(batch)))
    worker.start()
    try:
        end = time.monotonic() + 20
        while fallbacks._value.get() == before and time.monotonic() < end:
            time.sleep(0.02)
        assert fallbacks._value.get() == before + 1  # gave up while the lock was still held
    finally:
        holder.rollback()
        holder.close()
    worker.join(20)
    subscription.settle(list(zip(batch, result["outcomes"], strict=True)))
    subscription.close()
    assert result["outcomes"] == [Ack()] * 3
    assert sorted(e for e in effects(engine) if e != "the-lock") == sorted(ids)
