"""The floor of one order on this machine: the flow's statements, messages and call with nothing around them.

`make bench` measures it right after the orders row it is compared with (the echo's rows on both sides),
so both see the same hour. It answers what no profile does: how much of an order's CPU any change to
the code could take away, and how much only a change to the flow (fewer statements, rows, events) could.

An order's shape, as counted on 2026-12-05 (docs/performance-history.md; pg_stat_database in every bench
run): ~16 statements in ~4 transactions that insert ~48 rows and update ~16; 5 events published, in AMQP
transactions of ~4, which reach 9 queues and are delivered 32 at most at a time and acked 8 at once; one
gRPC call (the placement). The floor runs that shape alone, the cheapest way the mesh's parts allow:
- SQL: psycopg (prepared statements), each statement's rows as one JSON parameter, as mesh.bulk sends
  them, into one table with a key and one index; CPU of this thread and of the PostgreSQL backend serving it;
- AMQP: pika, persistent messages on quorum queues, as mesh.events.amqp declares them; CPU of this thread
  and of the RabbitMQ node;
- gRPC: the server CPU of one bare echo call, measured by the bench.
Left out, so the floor is a lower bound: every column, index, lock, read and constraint beyond those; the
emails; Redis; the relays' polls; the services' threads; the load generator.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from urllib.parse import urlparse

import orjson

from loadtests import accounting as acc


@dataclasses.dataclass(frozen=True)
class Shape:
    """What one order sends: statements (each writing rows_per_statement rows), and events."""

    transactions: int = 4
    inserts_per_transaction: int = 3
    updates_per_transaction: int = 1
    rows_per_statement: int = 4
    publishes: int = 5
    deliveries: int = 9  # queue entries: an event goes to every service that consumes it
    publishes_per_commit: int = 4
    prefetch: int = 32
    acks_every: int = 8

    def __post_init__(self) -> None:
        if not self.publishes <= self.deliveries <= 2 * self.publishes:
            raise ValueError("the floor routes each event to one or two queues: "
                             "publishes <= deliveries <= 2 * publishes")

    @property
    def statements(self) -> int:
        return self.transactions * (self.inserts_per_transaction + self.updates_per_transaction)

    @property
    def rows_inserted(self) -> int:
        return self.transactions * self.inserts_per_transaction * self.rows_per_statement

    @property
    def rows_updated(self) -> int:
        return self.transactions * self.updates_per_transaction * self.rows_per_statement

    def routing_keys(self) -> list[str]:
        """One order's events: "both" reaches two queues, "one" a single one; deliveries in all."""
        twice = self.deliveries - self.publishes
        return ["both"] * twice + ["one"] * (self.publishes - twice)


ORDER = Shape()


@dataclasses.dataclass
class Part:
    """One part of the floor: CPU per order on the client side (this thread) and on the server's."""

    client_ms: float
    server_ms: float
    done: int = 0  # over the measured orders: rows the server said it wrote, or messages sent or received

    @property
    def ms(self) -> float:
        return self.client_ms + self.server_ms


def per_order_ms(seconds: float, orders: int) -> float:
    return seconds * 1000 / orders if orders else 0.0


# ------------------------------------------------------------------------------------------------ SQL
_TABLE = "floor_rows"
_CREATE = (f"CREATE TABLE {_TABLE} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k text NOT NULL,"
           f" v int NOT NULL, body text NOT NULL, at timestamptz NOT NULL DEFAULT now())",
           f"CREATE INDEX {_TABLE}_by_k ON {_TABLE} (k)")
_INSERT = (f"INSERT INTO {_TABLE} (k, v, body) SELECT k, v, body FROM json_to_recordset(%s::json)"
           " AS r(k text, v int, body text) RETURNING id")
_UPDATE = f"UPDATE {_TABLE} SET v = v + 1, at = now() WHERE id = ANY(%s)"


def conninfo(database_url: str) -> str:
    """libpq's form of any database URL the mesh takes (postgres://, postgresql+psycopg://...)."""
    from sqlalchemy.engine import make_url

    from mesh import db

    return make_url(db.sqlalchemy_url(database_url)).set(drivername="postgresql").render_as_string(False)


def sql_part(database_url: str, orders: int, shape: Shape = ORDER) -> Part:
    """`orders` orders' statements after a tenth as many to warm up, in a table dropped afterwards."""
    import psutil
    import psycopg

    with psycopg.connect(conninfo(database_url), prepare_threshold=0) as conn:
        for statement in _CREATE:
            conn.execute(statement)
        conn.commit()
        try:
            backend = psutil.Process(conn.info.backend_pid)
            body = "x" * 60

            def one_order(n: int) -> int:
                written = 0
                for t in range(shape.transactions):
                    with conn.transaction():
                        ids: list[int] = []
                        for s in range(shape.inserts_per_transaction):
                            rows = [{"k": f"{n}-{t}-{s}-{r}", "v": r, "body": body} for r in range(shape.rows_per_statement)]
                            ids += [row[0] for row in conn.execute(_INSERT, (orjson.dumps(rows).decode(),))]
                        written += len(ids)
                        for _ in range(shape.updates_per_transaction):
                            written += conn.execute(_UPDATE, (ids[:shape.rows_per_statement],)).rowcount
                return written

            for n in range(max(1, orders // 10)):
                one_order(n)
            client, server = time.thread_time(), _cpu(backend)
            written = sum(one_order(n) for n in range(orders))
            return Part(per_order_ms(time.thread_time() - client, orders), per_order_ms(_cpu(backend) - server, orders),
                        written)
        finally:
            with contextlib.suppress(psycopg.Error):  # a lost connection: the run's database goes anyway
                conn.rollback()
                conn.execute(f"DROP TABLE IF EXISTS {_TABLE}")
                conn.commit()


# ------------------------------------------------------------------------------------------------ AMQP
def amqp_parts(amqp_url: str, orders: int, shape: Shape = ORDER, name: str = "") -> tuple[Part, Part]:
    """(publishing, delivering): `orders` orders' events published, then consumed, on two quorum queues
    of their own (`name`.a and .b, and an exchange `name`), deleted afterwards."""
    import pika

    params = pika.URLParameters(amqp_url)
    broker = acc.broker_pids(urlparse(amqp_url).port or 5672)
    name = name or f"erp-floor-{uuid.uuid4().hex[:8]}"
    queues = (f"{name}.a", f"{name}.b")
    connection = pika.BlockingConnection(params)
    try:
        channel = connection.channel()
        channel.exchange_declare(name, "direct", auto_delete=True)
        for queue in queues:
            channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(queues[0], name, "one")
        for queue in queues:
            channel.queue_bind(queue, name, "both")
        channel.tx_select()
        keys = shape.routing_keys()
        persistent = pika.BasicProperties(delivery_mode=2, content_type="application/protobuf")
        body = b"x" * 300

        def publish(n: int) -> int:
            pending = 0
            for _ in range(n):
                for key in keys:
                    channel.basic_publish(name, key, body, persistent)
                    pending += 1
                    if pending == shape.publishes_per_commit:
                        channel.tx_commit()
                        pending = 0
            if pending:
                channel.tx_commit()
            return n * len(keys)

        warm = max(1, orders // 10)
        publish(warm)
        client, server = time.thread_time(), _cpu_of(broker)
        sent = publish(orders)
        publishing = Part(per_order_ms(time.thread_time() - client, orders), per_order_ms(_cpu_of(broker) - server, orders),
                          sent)
        consumer = connection.channel()
        consumer.basic_qos(prefetch_count=shape.prefetch)
        _consume(consumer, queues, warm, shape)
        client, server = time.thread_time(), _cpu_of(broker)
        received = _consume(consumer, queues, orders, shape)
        delivering = Part(per_order_ms(time.thread_time() - client, orders), per_order_ms(_cpu_of(broker) - server, orders),
                          received)
        return publishing, delivering
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):  # durable queues: removed even after a failure
            cleanup = connection.channel()
            for queue in queues:
                cleanup.queue_delete(queue)
        with contextlib.suppress(pika.exceptions.AMQPError):
            connection.close()


def _consume(channel, queues: tuple[str, str], orders: int, shape: Shape) -> int:
    """Delivers and acks the queue entries of `orders` orders, from both queues in turn; how many."""
    twice, received = shape.deliveries - shape.publishes, 0
    for queue, entries in ((queues[0], shape.publishes), (queues[1], twice)):
        left, unacked = orders * entries, 0
        if not left:  # a shape whose events each reach one queue leaves the second empty
            continue
        for method, _properties, _body in channel.consume(queue, inactivity_timeout=10):
            if method is None:
                raise TimeoutError(f"{left} messages of {queue} did not arrive")
            left, unacked, received = left - 1, unacked + 1, received + 1
            if unacked == shape.acks_every or left == 0:
                channel.basic_ack(method.delivery_tag, multiple=True)
                unacked = 0
            if left == 0:
                break
        channel.cancel()
    return received


def _cpu(process) -> float:
    return acc.cpu_seconds(process)[0]


def _cpu_of(pids: set[int]) -> float:
    import psutil

    return sum(_cpu(psutil.Process(pid)) for pid in pids)


# ------------------------------------------------------------------------------------------------ report
@dataclasses.dataclass
class Floor:
    sql: Part
    publishing: Part | None  # None: no RabbitMQ (the PostgreSQL event bus)
    delivering: Part | None
    echo_ms: float | None  # the server CPU of one bare echo call: the placement's gRPC call
    shape: Shape = ORDER

    @property
    def total_ms(self) -> float:
        parts = [self.sql, self.publishing, self.delivering]
        return sum(p.ms for p in parts if p is not None) + (self.echo_ms or 0.0)

    def lines(self, order_ms: float | None) -> list[str]:
        s = self.shape
        out = [f"SQL    {s.transactions} transactions, {s.statements} statements inserting {s.rows_inserted} rows and "
               f"updating {s.rows_updated}: {self.sql.ms:.2f} ms (client {self.sql.client_ms:.2f}, "
               f"PostgreSQL {self.sql.server_ms:.2f})"]
        if self.publishing and self.delivering:
            out.append(f"AMQP   {s.publishes} events published in transactions of {s.publishes_per_commit}: "
                       f"{self.publishing.ms:.2f} ms (client {self.publishing.client_ms:.2f}, RabbitMQ "
                       f"{self.publishing.server_ms:.2f}); {s.deliveries} deliveries acked {s.acks_every} at once: "
                       f"{self.delivering.ms:.2f} ms (client {self.delivering.client_ms:.2f}, RabbitMQ "
                       f"{self.delivering.server_ms:.2f})")
        else:
            out.append("AMQP   not measured: no RabbitMQ (the PostgreSQL event bus carries the events)")
        if self.echo_ms is not None:
            out.append(f"gRPC   the placement's call, the echo's server CPU: {self.echo_ms:.2f} ms")
        share = f" = {self.total_ms / order_ms:.0%} of the order's {order_ms:.2f} ms" if order_ms else ""
        out.append(f"floor  {self.total_ms:.2f} ms{share}")
        return out


def budget_ms(pgbench_tps: float | None, cores: int, ratio: float = acc.ORDERS_VS_PGBENCH) -> float | None:
    """The machine's CPU per order that `ratio` x pgbench's transactions per second leaves, every core busy."""
    return cores * 1000 / (ratio * pgbench_tps) if pgbench_tps else None


def measure(database_url: str, amqp_url: str, echo_ms: float | None, seconds: float = 3.0) -> Floor:
    """The floor, each part run for about `seconds` (sized from a short first try)."""
    probe = max(0.001, _timed(lambda: sql_part(database_url, 20)) / 20)
    sql = sql_part(database_url, max(20, int(seconds / probe)))
    publishing = delivering = None
    if amqp_url:
        probe = max(0.001, _timed(lambda: amqp_parts(amqp_url, 20)) / 20)
        publishing, delivering = amqp_parts(amqp_url, max(20, int(seconds / probe)))
    return Floor(sql, publishing, delivering, echo_ms)


def _timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> int:
    """`python -m loadtests.floor`: the floor alone (no gRPC part: that is the bench's echo), on the engines
    the bench would use, in a database and queues of its own."""
    from loadtests import localmesh
    from mesh import db

    engines = localmesh.engines(require_amqp=True)
    engines = engines.database(f"erp_floor_{uuid.uuid4().hex[:8]}")
    db.ensure_database(engines.database_url)
    try:
        print(f"engines: {engines.description}")
        for line in measure(engines.database_url, engines.amqp_url, None).lines(None):
            print(line)
    finally:
        localmesh.drop_database(engines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
