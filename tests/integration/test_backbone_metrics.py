"""The event backbone's metrics, read from the registry Prometheus scrapes, after known work on
each real transport: outbox gauges, deliveries by outcome, end-to-end latency, dead letters."""
from __future__ import annotations

import pytest

from mesh import metrics, sampled
from mesh.events import dead_letters
from mesh.events.consumer import Consumer
from mesh.events.relay import Relay
from mesh.uow import UnitOfWork
from tests.integration.test_event_backbone import (  # noqa: F401 - probe is a fixture
    ADJUSTED,
    MAX_ATTEMPTS,
    dead_letters_soon,
    drain,
    emit,
    probe,
    recording_handlers,
    run_consumer,
)


def sample(name: str, **labels) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def watched(probe):  # noqa: F811 - the fixture above, extended
    engine = probe[0]
    unwatch = sampled.watch("probe", engine)
    yield probe
    unwatch()


def test_outbox_gauges_follow_the_rows_waiting(watched):
    engine, transport, _ = watched
    assert sample("erp_outbox_pending", service="probe") == 0
    emit(engine, 3)
    assert sample("erp_outbox_pending", service="probe") == 3
    assert sample("erp_outbox_oldest_pending_age_seconds", service="probe") >= 0
    published = sample("erp_events_published_total", service="probe", result="ok")
    transport.subscribe("probe", [ADJUSTED]).close()
    Relay(engine, "probe", transport.publisher).publish_pending()
    assert sample("erp_outbox_pending", service="probe") == 0
    assert sample("erp_outbox_oldest_pending_age_seconds", service="probe") == 0
    assert sample("erp_events_published_total", service="probe", result="ok") == published + 3


def test_an_unreadable_database_leaves_the_gauges_out_and_counts_the_error(watched):
    engine, _, _ = watched
    errors = sample("erp_metrics_sample_errors_total", service="probe")
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE outbox RENAME TO outbox_away")
    try:
        assert metrics.REGISTRY.get_sample_value("erp_outbox_pending", {"service": "probe"}) is None
        assert sample("erp_metrics_sample_errors_total", service="probe") == errors + 1
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE outbox_away RENAME TO outbox")


def test_handled_deliveries_are_counted_with_their_latency(watched):
    engine, transport, _ = watched
    subscription = transport.subscribe("probe", [ADJUSTED])
    emit(engine, 4)
    Relay(engine, "probe", transport.publisher).publish_pending()
    acks = sample("erp_events_handled_total", consumer="probe", event_type=ADJUSTED, outcome="ack")
    latencies = sample("erp_event_latency_seconds_count", consumer="probe", event_type=ADJUSTED)
    consumer = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    drain(subscription, consumer)
    subscription.close()
    assert sample("erp_events_handled_total", consumer="probe", event_type=ADJUSTED, outcome="ack") == acks + 4
    assert sample("erp_event_latency_seconds_count", consumer="probe", event_type=ADJUSTED) == latencies + 4
    assert sample("erp_event_latency_seconds_sum", consumer="probe", event_type=ADJUSTED) > 0


def test_retries_and_dead_letters_are_counted_and_the_dead_letter_gauge_moves(watched):
    engine, transport, _ = watched
    transport.subscribe("probe", [ADJUSTED]).close()
    emit(engine, 1)
    Relay(engine, "probe", transport.publisher).publish_pending()

    def outcome(name: str) -> float:
        return sample("erp_events_handled_total", consumer="probe", event_type=ADJUSTED, outcome=name)

    retries, dead = outcome("retry"), outcome("dead_letter")
    consumer = Consumer(recording_handlers(fail=True), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    stop, thread = run_consumer(transport, consumer)
    try:
        dead_letters_soon(engine, transport, 1)
    finally:
        stop.set()
        thread.join(5)
    assert (outcome("retry"), outcome("dead_letter")) == (retries + MAX_ATTEMPTS - 1, dead + 1)
    assert sample("erp_dead_letters", service="probe") == 1
    assert dead_letters.discard(engine) == 1
    assert sample("erp_dead_letters", service="probe") == 0


def test_events_no_queue_takes_are_counted_apart_from_the_lag_then_parked(watched):
    from erp.events.v1 import orders_events_pb2 as orders_ev

    engine, transport, _ = watched
    emit(engine, 2, payload_type=orders_ev.OrderRejected)  # nobody is bound to this type here
    assert sample("erp_outbox_pending", service="probe") == 2  # not tried yet: it may well be routable
    assert Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=300).publish_pending() == 0
    assert (sample("erp_outbox_pending", service="probe"), sample("erp_outbox_unrouted", service="probe"),
            sample("erp_outbox_oldest_pending_age_seconds", service="probe")) == (0, 2, 0)
    assert Relay(engine, "probe", transport.publisher, unroutable_grace_seconds=0).publish_pending() == 2
    assert (sample("erp_outbox_unrouted", service="probe"), sample("erp_outbox_parked", service="probe")) == (0, 2)
