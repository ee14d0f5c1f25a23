"""The event topology declared up front, dead letters kept in the service's schema, parked
unrouted events, the dead-letters tool and the migration of queues an older version declared,
on the real transports: the PostgreSQL event bus (embedded and external) and RabbitMQ."""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pika
import pytest
import sqlalchemy as sa

from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp_client import cli as erp_cli
from mesh import db, locks, retention, service
from mesh.events import dead_letters, envelope, topology
from mesh.events.amqp import AmqpOptions, AmqpTransport, dead_letter_queue, exchange_name, queue_counts, queue_name
from mesh.events.consumer import Consumer, EventHandlers
from mesh.events.envelope import decode
from mesh.events.pgbus import SCHEMA, PgTransport
from mesh.events.relay import Relay
from mesh.events.transport import Ack, Letter, Message, PublishFailed, TopologyMismatch
from mesh.service import libpq_dsn
from mesh.settings import load
from mesh.uow import UnitOfWork
from services import RUNNABLE
from services.tools import deadletters, migrate
from services.topology import consumers
from tests import support

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"
ADJUSTED = inv_ev.StockAdjusted.DESCRIPTOR.full_name
PLACED = orders_ev.OrderPlaced.DESCRIPTOR.full_name
MAX_ATTEMPTS = 3


@pytest.fixture
def amqp_engines(external_amqp, postgres_server, redis_server):
    """RabbitMQ (asked first: without it the skip names it), with the PostgreSQL and Redis that run,
    in a namespace of this test's own."""
    namespace = "erptest-" + uuid.uuid4().hex[:8]
    with support.fresh_database(postgres_server) as url:
        yield support.Engines(url, redis_server, "amqp", external_amqp, namespace)
    support.delete_amqp_namespace(external_amqp, namespace, ["probe", *RUNNABLE])


def transport_for(engines: support.Engines, engine, delivery_limit: int = 20):
    if engines.transport == "amqp":
        return AmqpTransport(engines.amqp_url, 20, MAX_ATTEMPTS, engines.namespace,
                             AmqpOptions(delivery_limit=delivery_limit))
    return PgTransport(engine, libpq_dsn(engines.database_url))


@pytest.fixture
def probe(engines):
    engine = db.create_engine(engines.database_url, schema="probe", pool_size=5)
    db.migrate(engine, "probe", PROBE_MIGRATIONS)
    yield engine, transport_for(engines, engine), engines
    engine.dispose()


def placed_order(order_id: str = "O-1") -> Message:
    env = envelope.build(source="orders", aggregate_type="order", aggregate_id=order_id, aggregate_version=1,
                         payload=orders_ev.OrderPlaced(order_id=order_id, customer_id="CUST-1"))
    return Message(env.event_type, env.event_id, env.SerializeToString())


def receive_ids(subscription, count: int) -> list[str]:
    """The event ids of `count` deliveries (acked), however many receives that takes."""
    got: list = []

    def more():
        batch = subscription.receive(timeout=0.3)
        subscription.settle([(d, Ack()) for d in batch])
        got.extend(decode(d.body).envelope.event_id for d in batch)
        return len(got) >= count

    support.wait_for(f"{count} deliveries", more)
    return got


def recording_handlers(fail: bool = False) -> EventHandlers:
    handlers = EventHandlers(consumer="probe")

    @handlers.on(inv_ev.StockAdjusted, lock=locks.by("stock", "sku"))
    def record(uow, payload, envelope) -> None:
        if fail:
            raise RuntimeError("handler always fails")
        uow.connection.execute(sa.text("INSERT INTO effects (event_id) VALUES (:e)"), {"e": envelope.event_id})

    return handlers


def emit(engine, payload) -> str:
    with UnitOfWork(engine, "probe") as uow:
        event_id = uow.emit(aggregate_type="stock", aggregate_id="agg", version=1, payload=payload)
        uow.commit()
    return event_id


def effects(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT event_id FROM effects")).scalars())


def dead(engine) -> list[dict]:
    return [row for row in dead_letters.listing(engine, 100) if row["kind"] == "dead"]


# ---------------------------------------------------------------- topology up front


def test_what_each_service_consumes_comes_from_its_events_module():
    found = consumers()
    assert set(found) == set(RUNNABLE)
    crm = importlib.import_module("services.crm.events").build()
    assert found["crm"] == tuple(crm.event_types)
    assert PLACED in found["crm"] and PLACED in found["inventory"]


def test_an_event_published_before_any_consumer_subscribed_reaches_the_consuming_services(probe):
    """Before, crm's queue existed only once crm had subscribed: an OrderPlaced published
    earlier was unroutable, and the order stayed PENDING for ever."""
    _, transport, _ = probe
    topology.declare_all(transport, consumers())
    topology.declare_all(transport, consumers())  # idempotent
    message = placed_order()
    publisher = transport.publisher()
    assert publisher.publish_many([message]) == set()  # routed, though nobody has subscribed yet
    publisher.close()
    for consumer in ("crm", "inventory"):
        subscription = transport.subscribe(consumer, list(consumers()[consumer]))
        assert receive_ids(subscription, 1) == [message.event_id]
        subscription.close()


def test_a_batch_goes_out_in_one_write_and_still_reports_what_no_queue_took(amqp_engines, monkeypatch):
    """The publisher queues a batch's frames on pika's channel and tx_commit sends them together;
    pika's own basic_publish would write and poll once per message."""
    transport = AmqpTransport(amqp_engines.amqp_url, 20, MAX_ATTEMPTS, amqp_engines.namespace)
    subscription = transport.subscribe("probe", [PLACED])
    publisher = transport.publisher()
    flushes = []
    flush = pika.BlockingConnection._flush_output
    monkeypatch.setattr(pika.BlockingConnection, "_flush_output",
                        lambda self, *waiters: (flushes.append(1), flush(self, *waiters))[1])
    routed = [placed_order(f"O-{i}") for i in range(30)]
    nobody = Message(ADJUSTED, str(uuid.uuid4()), routed[0].body)  # no queue is bound to this type here
    assert publisher.publish_many([*routed[:10], nobody, *routed[10:]]) == {nobody.event_id}
    assert len(flushes) <= 2, f"{len(flushes)} writes for one batch"  # tx.commit's, and the returns' read
    monkeypatch.undo()
    publisher.close()
    assert receive_ids(subscription, 30) == [m.event_id for m in routed]  # all of them, in order
    subscription.close()


def test_a_service_start_declares_every_consumers_queue_before_its_relay_publishes(engines, tmp_path):
    spec = importlib.import_module("services.orders.service").spec()
    runtime = service.build_runtime(spec, support.settings_for("orders", engines, tmp_path))
    try:
        publisher = runtime.relay.publisher_factory()  # what the relay publishes through
        assert publisher.publish_many([placed_order()]) == set()  # crm and inventory never started
        publisher.close()
    finally:
        runtime.cache.close()
        runtime.engine.dispose()


# ---------------------------------------------------------------- who consumes


def ids_received(subscription, seconds: float, settle: bool = True) -> list[str]:
    """The event ids delivered to `subscription` over `seconds` (acked unless `settle` is False)."""
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = subscription.receive(timeout=0.3)
        if settle:
            subscription.settle([(d, Ack()) for d in batch])
        got.extend(decode(d.body).envelope.event_id for d in batch)
    return got


def consuming(transport):
    """A subscription to probe's queue that is a consumer of it already (pika sends basic.consume
    on the first receive)."""
    subscription = transport.subscribe("probe", [PLACED])
    assert subscription.receive(timeout=0.1) == []
    return subscription


def publish(transport, count: int, prefix: str) -> list[str]:
    messages = [placed_order(f"{prefix}-{i}") for i in range(count)]
    publisher = transport.publisher()
    assert publisher.publish_many(messages) == set()
    publisher.close()
    return [m.event_id for m in messages]


def test_one_process_consumes_a_service_queue_and_another_takes_over_what_it_held_when_it_stops(amqp_engines):
    """ERP_AMQP_CONSUMERS=single (the default): RabbitMQ delivers a service queue to one
    consumer at a time, so the chart's second replica waits instead of halving every batch."""
    transport = AmqpTransport(amqp_engines.amqp_url, 20, MAX_ATTEMPTS, amqp_engines.namespace)
    assert transport.queues_of("probe")[queue_name(amqp_engines.namespace, "probe")]["x-single-active-consumer"]
    active, waiting = consuming(transport), consuming(transport)
    first = publish(transport, 40, "A")
    assert sorted(ids_received(active, 1.5)) == sorted(first)
    assert ids_received(waiting, 0.6) == []
    held = publish(transport, 5, "B")
    assert sorted(ids_received(active, 1.0, settle=False)) == sorted(held)  # not acked: still its
    active.close()
    assert sorted(receive_ids(waiting, 5)) == sorted(held)  # given back, and to the one left
    later = publish(transport, 5, "C")
    assert sorted(receive_ids(waiting, 5)) == sorted(later)
    waiting.close()


def test_competing_consumers_share_a_service_queue_and_switching_needs_migrate(amqp_engines):
    options = AmqpOptions(single_active_consumer=False)
    transport = AmqpTransport(amqp_engines.amqp_url, 20, MAX_ATTEMPTS, amqp_engines.namespace, options)
    assert "x-single-active-consumer" not in transport.queues_of("probe")[queue_name(amqp_engines.namespace, "probe")]
    one, two = consuming(transport), consuming(transport)
    sent = publish(transport, 40, "A")
    got_one, got_two = ids_received(one, 1.5), ids_received(two, 0.6)
    assert got_one and got_two and sorted(got_one + got_two) == sorted(sent)
    one.close()
    two.close()
    single = AmqpTransport(amqp_engines.amqp_url, 20, MAX_ATTEMPTS, amqp_engines.namespace)
    with pytest.raises(TopologyMismatch, match="services.tools.migrate"):
        single.declare_consumers({"probe": [PLACED]})
    queue = queue_name(amqp_engines.namespace, "probe")
    assert single.upgrade_consumers({"probe": [PLACED]}) == [
        f"{queue}: declared again with this version's arguments (0 messages kept, moved through {queue}.moving)"]
    single.declare_consumers({"probe": [PLACED]})
    waiting = publish(single, 3, "B")  # and back, keeping them (a single-consumer queue refuses basic.get)
    assert transport.upgrade_consumers({"probe": [PLACED]}) == [
        f"{queue}: declared again with this version's arguments (3 messages kept, moved through {queue}.moving)"]
    assert sorted(receive_ids(transport.subscribe("probe", [PLACED]), 3)) == sorted(waiting)


# ---------------------------------------------------------------- queues of an older version


def declare_old_crm_queue(engines: support.Engines, messages: int) -> str:
    """crm's queue as the previous version declared it (no delivery limit, no dead-lettering),
    bound to OrderPlaced, holding `messages` events."""
    queue = queue_name(engines.namespace, "crm")
    conn = pika.BlockingConnection(pika.URLParameters(engines.amqp_url))
    ch = conn.channel()
    ch.exchange_declare(exchange_name(engines.namespace), exchange_type="topic", durable=True)
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind(queue, exchange_name(engines.namespace), routing_key=PLACED)
    ch.confirm_delivery()
    for i in range(messages):
        m = placed_order(f"O-{i}")
        ch.basic_publish(exchange_name(engines.namespace), PLACED, m.body,
                         pika.BasicProperties(message_id=m.event_id, type=m.event_type, delivery_mode=2))
    conn.close()
    return queue


def migrate_env(monkeypatch, engines: support.Engines, tmp_path) -> None:
    """The settings of `make migrate` and the dead-letters tool, for this test's engines."""
    for name, value in {"ERP_DATABASE_URL": engines.database_url, "ERP_AMQP_URL": engines.amqp_url,
                        "ERP_EVENT_TRANSPORT": engines.transport, "ERP_AMQP_NAMESPACE": engines.namespace,
                        "ERP_EVENT_RETRY_BASE_MS": "20", "ERP_EVENT_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
                        "ERP_DATA_DIR": str(tmp_path), "ERP_LOG_FORMAT": "text"}.items():
        monkeypatch.setenv(name, value)


def test_a_queue_an_older_version_declared_fails_the_start_and_migrate_moves_it_keeping_its_messages(
        amqp_engines, tmp_path, monkeypatch, capsys):
    engines = amqp_engines
    queue = declare_old_crm_queue(engines, 2)
    spec = importlib.import_module("services.orders.service").spec()
    with pytest.raises(TopologyMismatch, match="services.tools.migrate") as refused:
        service.build_runtime(spec, support.settings_for("orders", engines, tmp_path))
    assert queue in str(refused.value)
    migrate_env(monkeypatch, engines, tmp_path)
    # An older crm still consuming: migrate says what to do, and changes nothing.
    conn = pika.BlockingConnection(pika.URLParameters(engines.amqp_url))
    conn.channel().basic_consume(queue, lambda *a: None)
    try:
        assert migrate.main(["crm"]) == 1
        assert "consumers" in capsys.readouterr().err
    finally:
        conn.close()
    assert migrate.main(["crm"]) == 0
    assert f"{queue}: declared again" in capsys.readouterr().out
    transport = AmqpTransport.from_settings(load("crm"))
    connection = transport.connect()
    assert queue_counts(connection, queue) == (2, 0)  # its messages kept
    connection.close()
    topology.declare_all(transport, consumers())  # this version's arguments now
    subscription = transport.subscribe("crm", list(consumers()["crm"]))
    assert len(receive_ids(subscription, 2)) == 2
    subscription.close()


# ---------------------------------------------------------------- dead letters


def run_consumer(transport, consumer) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(lambda: transport.subscribe("probe", [ADJUSTED]), stop),
                              daemon=True)
    thread.start()
    return stop, thread


def test_a_dead_letter_is_kept_in_the_services_schema_and_reading_it_consumes_nothing(probe):
    """Before, dead letters waited in the .dlq and every listing took them out and put them
    back (nack, requeue): a redelivery each, and RabbitMQ 4 drops a message past 20."""
    engine, transport, engines = probe
    transport.subscribe("probe", [ADJUSTED]).close()
    event_id = emit(engine, inv_ev.StockAdjusted(sku="S-1"))
    Relay(engine, "probe", transport.publisher).publish_pending()
    consumer = Consumer(recording_handlers(fail=True), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    stop, thread = run_consumer(transport, consumer)
    try:
        support.wait_for("the dead letter", lambda: dead(engine))
    finally:
        stop.set()
        thread.join(5)
    if engines.transport == "amqp":
        connection = transport.connect()
        assert queue_counts(connection, dead_letter_queue(queue_name(engines.namespace, "probe"))) == (0, 0)
        connection.close()
    for _ in range(25):  # more listings than RabbitMQ 4's default delivery limit
        [letter] = dead(engine)
    assert letter["event_id"] == event_id and letter["attempts"] == MAX_ATTEMPTS and letter["source"] == "consumer"
    assert "handler always fails" in letter["error"]
    assert dead_letters.show(engine, event_id)["kind"] == "dead"
    # Replayed once the handler is fixed, it takes effect once, and the row is gone.
    assert dead_letters.replay(engine, transport, "probe", event_id) == 1
    assert dead(engine) == []
    fixed = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    stop, thread = run_consumer(transport, fixed)
    try:
        support.wait_for("the replayed event's effect", lambda: effects(engine) == [event_id])
    finally:
        stop.set()
        thread.join(5)


def test_a_replay_the_transport_does_not_confirm_keeps_the_dead_letter(probe):
    engine, transport, _ = probe
    with engine.begin() as conn:
        dead_letters.record(conn, [Letter("E-1", ADJUSTED, b"x", 3, "boom", "consumer")])

    class Refusing:
        def requeue(self, queue, messages):
            raise PublishFailed("broker down")

    with pytest.raises(PublishFailed, match="broker down"):
        dead_letters.replay(engine, Refusing(), "probe")
    assert [row["event_id"] for row in dead(engine)] == ["E-1"]
    assert dead_letters.discard(engine, "E-1") == 1 and dead(engine) == []


def test_past_its_delivery_limit_a_message_moves_to_the_dlq_and_from_there_into_the_table(amqp_engines):
    """A message whose consumers keep dying under it (each death returns it to the queue) is
    dead-lettered by RabbitMQ to the .dlq instead of being dropped, and kept from there on."""
    engines = amqp_engines
    engine = db.create_engine(engines.database_url, schema="probe", pool_size=2)
    db.migrate(engine, "probe", PROBE_MIGRATIONS)
    transport = transport_for(engines, engine, delivery_limit=2)
    try:
        transport.subscribe("probe", [ADJUSTED]).close()
        event_id = emit(engine, inv_ev.StockAdjusted(sku="S-1"))
        Relay(engine, "probe", transport.publisher).publish_pending()
        queue = queue_name(engines.namespace, "probe")
        connection = transport.connect()
        for _ in range(3):  # a consumer takes it and dies: its channel closes without an ack
            channel = connection.channel()
            assert next(channel.consume(queue, inactivity_timeout=10))[0] is not None
            channel.close()
        support.wait_for("the message in the .dlq", lambda: queue_counts(connection, dead_letter_queue(queue))[0] == 1)
        connection.close()
        assert transport.drain_dead_letters("probe", dead_letters.recorder(engine)) == 1
        [letter] = dead(engine)
        assert letter["event_id"] == event_id and letter["source"] == "broker"
        assert "delivery_limit" in letter["error"]
        assert dead_letters.replay(engine, transport, "probe", event_id) == 1
        subscription = transport.subscribe("probe", [ADJUSTED])
        assert receive_ids(subscription, 1) == [event_id]
        subscription.close()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- parked (unrouted) events


def test_an_unrouted_event_is_parked_never_pruned_and_replayed_through_the_relay(probe):
    """Before, it was marked published and deleted with the published rows after 7 days."""
    engine, transport, _ = probe
    parked_id = emit(engine, orders_ev.OrderRejected(order_id="O-1"))  # nobody is bound to it here
    relay = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=0)
    assert relay.publish_pending() == 1
    transport.subscribe("probe", [ADJUSTED]).close()
    sent_id = emit(engine, inv_ev.StockAdjusted(sku="S-1"))
    assert relay.publish_pending() == 1
    with engine.begin() as conn:  # both settled long ago
        conn.execute(sa.text("UPDATE outbox SET published_at = now() - interval '30 days'"))
    retention.prune_all(engine, retention.outbox(), threading.Event())
    with engine.connect() as conn:
        assert list(conn.execute(sa.text("SELECT event_id::text FROM outbox")).scalars()) == [parked_id]
    [row] = [r for r in dead_letters.listing(engine, 10) if r["kind"] == "parked"]
    assert row["event_id"] == parked_id and row["error"].startswith("unrouted")
    assert sent_id not in {r["event_id"] for r in dead_letters.listing(engine, 10)}
    # A consumer of the type appears; the replayed row goes out in the relay's next round.
    subscription = transport.subscribe("probe", [orders_ev.OrderRejected.DESCRIPTOR.full_name])
    assert dead_letters.replay_parked(engine, parked_id) == 1
    assert Relay(engine, "probe", transport.publisher).publish_pending() == 1
    assert sorted(receive_ids(subscription, 2)) == sorted([sent_id, parked_id])  # the queue had the first too
    subscription.close()
    assert dead_letters.listing(engine, 10) == []


def test_an_event_no_service_consumes_is_sent_at_once_whether_or_not_a_queue_took_it(probe):
    """Before, every order's OrderCompleted was retried for the grace period, then parked for ever
    (one outbox row per completed order, and a parked-events panel that never emptied)."""
    engine, transport, _ = probe
    rejected, completed = orders_ev.OrderRejected.DESCRIPTOR.full_name, orders_ev.OrderCompleted.DESCRIPTOR.full_name
    relay = Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=3600, consumed={ADJUSTED, rejected})
    unsubscribed = emit(engine, orders_ev.OrderCompleted(order_id="O-1"))  # no queue, no consumer
    waiting = emit(engine, orders_ev.OrderRejected(order_id="O-2"))  # a consumer's queue is missing
    assert relay.publish_pending() == 1
    with engine.connect() as conn:
        rows = {r[0]: tuple(r[1:]) for r in conn.execute(sa.text(
            "SELECT event_id::text, published_at IS NOT NULL, parked_at IS NOT NULL, attempts FROM outbox"))}
    assert rows[unsubscribed] == (True, False, 0)  # sent; the pruner deletes it with the rest
    assert rows[waiting] == (False, False, 1)  # tried again until its queue is there, then parked
    assert dead_letters.listing(engine, 10) == []
    # An outside integration's queue bound to it takes it like any other.
    outside = transport.subscribe("probe", [completed])
    again = emit(engine, orders_ev.OrderCompleted(order_id="O-3"))
    assert relay.publish_pending() == 1
    assert receive_ids(outside, 1) == [again]
    outside.close()


# ---------------------------------------------------------------- the dead-letters tool


def migrated(engines: support.Engines, name: str):
    spec = importlib.import_module(f"services.{name}.service").spec()
    engine = db.create_engine(engines.database_url, schema=name, pool_size=2)
    db.migrate(engine, name, spec.migrations_dir)
    return engine


def test_the_dead_letters_tool_lists_shows_replays_and_discards_one_or_all(engines, tmp_path, monkeypatch, capsys):
    migrate_env(monkeypatch, engines, tmp_path)
    engine = migrated(engines, "inventory")
    transport = transport_for(engines, engine)
    try:
        topology.declare_all(transport, consumers())
        first, second = placed_order("O-1"), placed_order("O-2")
        with engine.begin() as conn:
            dead_letters.record(conn, [Letter(m.event_id, m.event_type, m.body, 5, "boom", "consumer")
                                       for m in (first, second)])
            conn.execute(sa.text("INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, published_at, "
                                 "parked_at, last_error) VALUES (:e, :t, 'S-1', :b, now(), now(), 'unrouted: x')"),
                         {"e": str(uuid.uuid4()), "t": ADJUSTED, "b": b""})
        assert deadletters.main(["list", "inventory"]) == 0
        listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(row["kind"], row["event_id"]) for row in listed][:2] == [("dead", first.event_id),
                                                                         ("dead", second.event_id)]
        assert listed[2]["kind"] == "parked" and listed[0]["aggregate_id"] == "O-1"
        assert deadletters.main(["show", "inventory", first.event_id]) == 0
        assert json.loads(capsys.readouterr().out)["payload"]["order_id"] == "O-1"
        assert deadletters.main(["show", "inventory", "no-such-event"]) == 1
        assert "no dead letter or parked event no-such-event" in capsys.readouterr().err
        assert deadletters.main(["replay", "inventory", first.event_id]) == 0
        subscription = transport.subscribe("inventory", list(consumers()["inventory"]))
        assert receive_ids(subscription, 1) == [first.event_id]
        subscription.close()
        assert deadletters.main(["replay", "inventory", first.event_id]) == 1  # gone from the table
        assert erp_cli.main(["deadletters", "discard", "inventory", "--all", "--kind", "dead"]) == 0
        assert "discarded 1 dead letters and 0 parked events" in capsys.readouterr().out
        assert [row["kind"] for row in dead_letters.listing(engine, 10)] == ["parked"]
        with pytest.raises(SystemExit) as typo:
            deadletters.main(["list", "inventry"])
        assert typo.value.code == 2
    finally:
        engine.dispose()


def test_the_dead_letters_tool_fails_when_the_broker_is_down(amqp_engines, tmp_path, monkeypatch, capsys):
    migrate_env(monkeypatch, amqp_engines, tmp_path)
    migrated(amqp_engines, "crm").dispose()
    monkeypatch.setenv("ERP_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2F")
    assert deadletters.main(["list", "crm"]) == 1
    assert "error:" in capsys.readouterr().err


def test_the_erp_client_needs_no_mesh_until_deadletters_and_says_when_it_is_missing():
    imports = subprocess.run([sys.executable, "-c", "import sys, erp_client.cli; print('mesh' in sys.modules)"],
                             capture_output=True, text=True, check=True)
    assert imports.stdout.strip() == "False"
    blocked = subprocess.run([sys.executable, "-c", "import sys; sys.modules['mesh'] = None\n"
                              "from erp_client import cli; sys.exit(cli.main(['deadletters', 'list', 'crm']))"],
                             capture_output=True, text=True)
    assert blocked.returncode == 1
    assert "needs the server package" in blocked.stderr


# ---------------------------------------------------------------- settings


def test_amqp_timeouts_the_delivery_limit_and_the_consumers_are_settings(external_amqp, monkeypatch):
    monkeypatch.setenv("ERP_AMQP_URL", external_amqp)
    for name, value in {"ERP_AMQP_HEARTBEAT_SECONDS": "7", "ERP_AMQP_BLOCKED_CONNECTION_TIMEOUT_SECONDS": "11",
                        "ERP_AMQP_SOCKET_TIMEOUT_SECONDS": "3", "ERP_AMQP_DELIVERY_LIMIT": "9",
                        "ERP_AMQP_CONSUMERS": "competing"}.items():
        monkeypatch.setenv(name, value)
    transport = AmqpTransport.from_settings(load("crm"))
    assert transport.options == AmqpOptions(7, 11.0, 3.0, 9, single_active_consumer=False)
    connection = transport.connect()
    try:
        params = connection._impl.params
        assert (params.heartbeat, params.blocked_connection_timeout, params.socket_timeout) == (7, 11.0, 3.0)
    finally:
        connection.close()
    assert transport.queues_of("crm")[queue_name("erp", "crm")]["x-delivery-limit"] == 9
    monkeypatch.setenv("ERP_AMQP_CONSUMERS", "single")
    assert AmqpTransport.from_settings(load("crm")).options.single_active_consumer
    monkeypatch.setenv("ERP_AMQP_CONSUMERS", "all")
    with pytest.raises(ValueError, match="ERP_AMQP_CONSUMERS"):
        load("crm")
    monkeypatch.setenv("ERP_AMQP_CONSUMERS", "single")
    monkeypatch.setenv("ERP_AMQP_DELIVERY_LIMIT", "0")
    with pytest.raises(ValueError, match="ERP_AMQP_DELIVERY_LIMIT"):
        load("crm")


def test_the_postgres_bus_moves_an_older_versions_dead_rows_into_the_table(pg_server):
    with support.fresh_database(pg_server) as url:
        engine = db.create_engine(url, schema="probe", pool_size=2)
        try:
            db.migrate(engine, "probe", PROBE_MIGRATIONS)
            transport = PgTransport(engine, libpq_dsn(url))
            with engine.begin() as conn:
                conn.execute(sa.text(f"INSERT INTO {SCHEMA}.messages (queue, event_id, event_type, body, attempts, "
                                     "dead, last_error) VALUES ('probe', 'E-1', :t, 'x', 5, true, 'boom')"),
                             {"t": ADJUSTED})
            assert transport.drain_dead_letters("probe", dead_letters.recorder(engine)) == 1
            assert [(r["event_id"], r["source"], r["error"]) for r in dead(engine)] == [("E-1", "bus", "boom")]
            with engine.connect() as conn:
                assert conn.execute(sa.text(f"SELECT count(*) FROM {SCHEMA}.messages")).scalar() == 0
        finally:
            engine.dispose()
