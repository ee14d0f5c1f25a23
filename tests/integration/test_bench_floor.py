"""The floor's parts (loadtests/floor.py) on the real PostgreSQL and RabbitMQ: they send the order's
shape and leave nothing behind."""
from __future__ import annotations

import uuid

import pika
import psycopg
import pytest

from loadtests import floor
from tests import support


def _assert_gone(amqp_url: str, name: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        for queue in (f"{name}.a", f"{name}.b"):
            with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="404"):
                connection.channel().queue_declare(queue, passive=True)
    finally:
        connection.close()


def test_the_sql_part_writes_an_orders_rows_and_drops_its_table(postgres_server):
    with support.fresh_database(postgres_server) as url:
        part = floor.sql_part(url, orders=3)
        assert part.client_ms > 0 and part.server_ms >= 0  # /proc counts the backend in 10 ms ticks
        assert part.done == 3 * (floor.ORDER.rows_inserted + floor.ORDER.rows_updated)  # as the server answered
        with psycopg.connect(floor.conninfo(url)) as conn:
            assert conn.execute("SELECT to_regclass('floor_rows')").fetchone()[0] is None


@pytest.mark.parametrize("shape", [floor.ORDER, floor.Shape(deliveries=5), floor.Shape(deliveries=10)],
                         ids=["order", "one-queue-each", "two-queues-each"])
def test_the_amqp_part_delivers_every_event_to_its_queues_and_deletes_them(external_amqp, shape):
    name = f"erp-floor-test-{uuid.uuid4().hex[:8]}"
    publishing, delivering = floor.amqp_parts(external_amqp, orders=3, shape=shape, name=name)
    assert (publishing.done, delivering.done) == (3 * shape.publishes, 3 * shape.deliveries)
    assert publishing.client_ms > 0 and delivering.client_ms > 0  # the broker's /proc ticks are 10 ms: maybe 0 here
    _assert_gone(external_amqp, name)


def test_the_amqp_parts_queues_are_deleted_when_a_run_fails(external_amqp, monkeypatch):
    def lost(*_args):
        raise RuntimeError("consumer lost")

    monkeypatch.setattr(floor, "_consume", lost)
    name = f"erp-floor-test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(RuntimeError, match="consumer lost"):
        floor.amqp_parts(external_amqp, orders=2, name=name)
    _assert_gone(external_amqp, name)
