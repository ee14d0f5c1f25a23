"""The embedded transport: a message bus in PostgreSQL that needs no broker.

It keeps the RabbitMQ transport's semantics: publishing routes a message into one row
per bound queue and is "confirmed" once committed (no binding: unroutable); a
subscriber locks a batch (FOR UPDATE SKIP LOCKED, so replicas compete like consumers
of one queue), settles each message, and commits: deleted when acked, delayed when
retried, deleted when dead-lettered (the consumer has recorded it in the service's
dead_letters table; rows an older version marked dead are moved there by
drain_dead_letters). LISTEN/NOTIFY wakes subscribers at once.
The bus lives in its own schema, `erp_bus`, beside the services' schemas.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from mesh.db import advisory_key
from mesh.events.transport import Ack, DeadLetter, Delivery, Letter, Message, Outcome, Retry

log = logging.getLogger("mesh.events.pgbus")
SCHEMA = "erp_bus"
CHANNEL = "erp_bus"

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.bindings (
    queue text NOT NULL,
    event_type text NOT NULL,
    PRIMARY KEY (event_type, queue)
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue text NOT NULL,
    event_id text NOT NULL,
    event_type text NOT NULL,
    body bytea NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL DEFAULT now(),
    dead boolean NOT NULL DEFAULT false,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS messages_ready ON {SCHEMA}.messages (queue, id) WHERE NOT dead;
"""


def ensure_schema(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key("erp_bus")})
        conn.exec_driver_sql(DDL)


_BIND = sa.text(f"INSERT INTO {SCHEMA}.bindings (queue, event_type) VALUES (:q, :t) ON CONFLICT DO NOTHING")
_ROUTE = sa.text(f"INSERT INTO {SCHEMA}.messages (queue, event_id, event_type, body) "
                 f"SELECT queue, :id, :type, :body FROM {SCHEMA}.bindings WHERE event_type = :type")


class PgPublisher:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def publish_many(self, messages: list[Message]) -> set[str]:
        """One transaction for the batch: a message routes to one row per bound queue."""
        unroutable: set[str] = set()
        with self.engine.begin() as conn:
            for m in messages:
                routed = conn.execute(_ROUTE, {"id": m.event_id, "type": m.event_type, "body": m.body}).rowcount
                if not routed:
                    unroutable.add(m.event_id)
            if len(unroutable) < len(messages):
                conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
        return unroutable

    def close(self) -> None:
        pass


class PgSubscription:
    def __init__(self, engine: sa.Engine, dsn: str, queue: str, event_types: list[str], batch: int = 32) -> None:
        self.engine = engine
        self.queue = queue
        self.batch = batch
        with engine.begin() as conn:
            for event_type in event_types:
                conn.execute(_BIND, {"q": queue, "t": event_type})
        self.listener = psycopg.connect(dsn, autocommit=True)
        self.listener.execute(f"LISTEN {CHANNEL}")
        self._conn: sa.Connection | None = None

    def receive(self, timeout: float) -> list[Delivery]:
        rows = self._lock_batch()
        if rows:
            return rows
        # Nothing ready: sleep until a publish notifies us, or the timeout (retries come due).
        for _ in self.listener.notifies(timeout=timeout, stop_after=1):
            pass
        return self._lock_batch()

    def _lock_batch(self) -> list[Delivery]:
        conn = self.engine.connect()
        conn.begin()
        rows = conn.execute(sa.text(
            f"SELECT id, body, attempts FROM {SCHEMA}.messages "
            "WHERE queue = :q AND NOT dead AND available_at <= now() "
            "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
        ), {"q": self.queue, "n": self.batch}).all()
        if not rows:
            conn.rollback()
            conn.close()
            return []
        self._conn = conn  # the row locks are our unacked deliveries until settle()
        return [Delivery(body=bytes(r.body), attempts=r.attempts, tag=r.id) for r in rows]

    def settle(self, outcomes: list[tuple[Delivery, Outcome]]) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            for delivery, outcome in outcomes:
                if isinstance(outcome, Ack):
                    conn.execute(sa.text(f"DELETE FROM {SCHEMA}.messages WHERE id = :id"), {"id": delivery.tag})
                elif isinstance(outcome, Retry):
                    conn.execute(sa.text(
                        f"UPDATE {SCHEMA}.messages SET attempts = attempts + :n, last_error = :e, "
                        "available_at = now() + make_interval(secs => :d) WHERE id = :id"
                    ), {"id": delivery.tag, "e": outcome.error[:500], "d": outcome.delay_seconds,
                        "n": int(outcome.counted)})
                elif isinstance(outcome, DeadLetter):  # recorded in the service's dead_letters table
                    conn.execute(sa.text(f"DELETE FROM {SCHEMA}.messages WHERE id = :id"), {"id": delivery.tag})
            conn.commit()
        finally:
            conn.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.listener.close()


class PgTransport:
    def __init__(self, engine: sa.Engine, dsn: str) -> None:
        self.engine = engine
        self.dsn = dsn
        ensure_schema(engine)

    def publisher(self) -> PgPublisher:
        return PgPublisher(self.engine)

    def subscribe(self, queue: str, event_types: list[str]) -> PgSubscription:
        return PgSubscription(self.engine, self.dsn, queue, event_types)

    def declare_consumers(self, consumers: dict[str, list[str]]) -> None:
        """The bindings of every consuming service (mesh.events.topology), in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(_BIND, [{"q": queue, "t": t} for queue, types in consumers.items() for t in types])

    def requeue(self, queue: str, messages: list[Message]) -> None:
        """Committed when it returns: the messages wait in `queue`, attempts reset."""
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {SCHEMA}.messages (queue, event_id, event_type, body) "
                                 "VALUES (:q, :id, :type, :body)"),
                         [{"q": queue, "id": m.event_id, "type": m.event_type, "body": m.body} for m in messages])
            conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})

    def drain_dead_letters(self, queue: str, sink: Callable[[list[Letter]], None], batch: int = 100) -> int:
        """Moves rows an older version marked dead into sink(), deleting them in the same
        transaction once sink() has returned."""
        moved = 0
        while True:
            with self.engine.begin() as conn:
                rows = conn.execute(sa.text(
                    f"SELECT id, event_id, event_type, body, attempts, last_error FROM {SCHEMA}.messages "
                    "WHERE queue = :q AND dead ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"), {"q": queue, "n": batch}).all()
                if not rows:
                    return moved
                sink([Letter(event_id=r.event_id, event_type=r.event_type, body=bytes(r.body), attempts=r.attempts,
                             error=r.last_error or "dead-lettered", source="bus") for r in rows])
                conn.execute(sa.text(f"DELETE FROM {SCHEMA}.messages WHERE id = ANY(:ids)"),
                             {"ids": [r.id for r in rows]})
            moved += len(rows)
