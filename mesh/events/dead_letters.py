"""A service's dead letters and parked events, in its own schema (mesh.events.tables).

A dead letter is an event the service will not handle without help: its handler failed
ERP_EVENT_MAX_ATTEMPTS times, it does not decode, no handler takes it, or RabbitMQ
dead-lettered it at its queue's delivery limit. The consumer records it here before the
delivery leaves the queue; what the broker dead-letters waits in the queue's .dlq until
drained here (transport.drain_dead_letters). A parked event is one of the service's own
outbox rows that no queue was bound to for the relay's grace period (mesh.events.relay).

Both stay until replayed or discarded, one by event id or all; nothing prunes them, and
reading them consumes nothing. A replay is at least once: the transport confirms the message
before the row's deletion commits, so a crash in between leaves both (the consumers' inboxes
absorb the repeat).
"""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh.events.tables import dead_letters, outbox
from mesh.events.transport import Letter, Message, Transport

BATCH = 100

_RECORD = insert(dead_letters)
_RECORD = _RECORD.on_conflict_do_update(
    index_elements=[dead_letters.c.event_id], index_where=dead_letters.c.event_id.isnot(None),
    set_={"attempts": _RECORD.excluded.attempts, "error": _RECORD.excluded.error,
          "source": _RECORD.excluded.source, "dead_lettered_at": sa.func.now()})


_DEAD = sa.select(dead_letters.c.event_id, dead_letters.c.event_type, dead_letters.c.attempts, dead_letters.c.error,
                  dead_letters.c.source, dead_letters.c.dead_lettered_at.label("at"), dead_letters.c.body)
_PARKED = sa.select(outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate_id, outbox.c.attempts,
                    outbox.c.last_error.label("error"), outbox.c.parked_at.label("at"),
                    outbox.c.envelope.label("body")).where(outbox.c.parked_at.isnot(None))


class NotFound(Exception):
    """No dead letter or parked event with that id."""


def record(conn: sa.Connection, letters: Iterable[Letter]) -> None:
    """Records dead letters in conn's transaction; one row per event id (a repeat updates it)."""
    rows = [dataclasses.asdict(letter) for letter in letters]
    if rows:
        conn.execute(_RECORD, rows)


def recorder(engine: sa.Engine) -> Callable[[list[Letter]], None]:
    """sink() for transport.drain_dead_letters: records a batch and commits before returning."""
    def sink(letters: list[Letter]) -> None:
        with engine.begin() as conn:
            record(conn, letters)
    return sink


def listing(engine: sa.Engine, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead letters, then up to `limit` parked events, oldest first."""
    with engine.connect() as conn:
        dead = conn.execute(_DEAD.order_by(dead_letters.c.id).limit(limit)).mappings().all()
        parked = conn.execute(_PARKED.order_by(outbox.c.id).limit(limit)).mappings().all()
    return [{"kind": "dead", **row} for row in dead] + [{"kind": "parked", **row} for row in parked]


def counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {"dead": conn.execute(sa.select(sa.func.count()).select_from(dead_letters)).scalar_one(),
                "parked": conn.execute(sa.select(sa.func.count()).select_from(outbox)
                                       .where(outbox.c.parked_at.isnot(None))).scalar_one()}


def show(engine: sa.Engine, event_id: str) -> dict[str, Any]:
    """One dead letter or parked event, with its body (bytes)."""
    with engine.connect() as conn:
        row = conn.execute(_DEAD.where(dead_letters.c.event_id == event_id)).mappings().first()
        if row is not None:
            return {"kind": "dead", **row}
        if _is_uuid(event_id):
            row = conn.execute(_PARKED.where(outbox.c.event_id == event_id)).mappings().first()
    if row is None:
        raise NotFound(event_id)
    return {"kind": "parked", **row}


def replay(engine: sa.Engine, transport: Transport, queue: str, event_id: str | None = None) -> int:
    """Sends dead letters (one, or all when event_id is None) back into `queue`, attempts reset;
    each row is deleted in the transaction that held it locked while the transport confirmed it."""
    replayed = 0
    while True:
        with engine.begin() as conn:
            query = sa.select(dead_letters).order_by(dead_letters.c.id).limit(BATCH).with_for_update(skip_locked=True)
            if event_id is not None:
                query = query.where(dead_letters.c.event_id == event_id)
            rows = conn.execute(query).all()
            if not rows:
                return replayed
            transport.requeue(queue, [Message(r.event_type or "", r.event_id or "", bytes(r.body)) for r in rows])
            conn.execute(dead_letters.delete().where(dead_letters.c.id.in_([r.id for r in rows])))
        replayed += len(rows)
        if event_id is not None:
            return replayed


def discard(engine: sa.Engine, event_id: str | None = None) -> int:
    with engine.begin() as conn:
        query = dead_letters.delete()
        if event_id is not None:
            query = query.where(dead_letters.c.event_id == event_id)
        return conn.execute(query).rowcount


def replay_parked(engine: sa.Engine, event_id: str | None = None) -> int:
    """Hands parked outbox rows back to the relay, which publishes them in its next round (and
    parks them again at once if no queue is bound to their type yet)."""
    if event_id is not None and not _is_uuid(event_id):
        return 0
    with engine.begin() as conn:
        return conn.execute(_parked(outbox.update(), event_id).values(
            parked_at=None, published_at=None, attempts=0, last_error=None)).rowcount


def discard_parked(engine: sa.Engine, event_id: str | None = None) -> int:
    if event_id is not None and not _is_uuid(event_id):
        return 0
    with engine.begin() as conn:
        return conn.execute(_parked(outbox.delete(), event_id)).rowcount


_Statement = TypeVar("_Statement", sa.Update, sa.Delete)


def _parked(statement: _Statement, event_id: str | None) -> _Statement:
    statement = statement.where(outbox.c.parked_at.isnot(None))
    return statement if event_id is None else statement.where(outbox.c.event_id == event_id)


def _is_uuid(event_id: str) -> bool:
    """The outbox's event ids are UUIDs: anything else names no parked row (and must not reach
    PostgreSQL, which would refuse the cast)."""
    try:
        uuid.UUID(event_id)
    except ValueError:
        return False
    return True
