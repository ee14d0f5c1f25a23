"""The unit of work: one database transaction, the events it emits, and what runs
after it commits. Services subclass it to attach their repositories."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from google.protobuf import message

from mesh import bulk, locks
from mesh.events import envelope
from mesh.events.tables import outbox

log = logging.getLogger("mesh.uow")
# A transaction's events in one statement, in emit order (the relay ships by id), its text the same
# for any number of events (mesh.bulk).
OUTBOX_INSERT = bulk.insert_many(outbox, ["event_id", "event_type", "aggregate_id", "envelope"])


class UnitOfWork:
    def __init__(self, engine: sa.Engine, service: str, on_events: Callable[[], None] | None = None) -> None:
        """on_events: runs after each commit that wrote events to the outbox (the relay's wake-up)."""
        self.engine = engine
        self.service = service
        self._on_events = on_events
        self._after_commit: list[Callable[[], None]] = []
        self._outbox: list[dict[str, Any]] = []  # outbox rows: column name to value
        self._locked: set[int] = set()
        self.connection: sa.Connection

    def __enter__(self) -> Self:
        self.connection = self.engine.connect()
        self.connection.begin()
        self._committed = False
        self._after_commit = []
        self._outbox = []
        self._locked = set()
        self.start()
        return self

    def start(self) -> None:
        """Subclasses attach repositories to self.connection here."""

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if not self._committed:
                self.connection.rollback()
        finally:
            self.connection.close()

    def lock(self, kind: str, *ids: str) -> None:
        """Serializes this transaction with every other writer of these aggregates (mesh.locks):
        call it first, before reading the state the change depends on. Idempotent within a
        transaction: an aggregate locked already (by the event consumer) costs nothing."""
        self.lock_all([(kind, ident) for ident in ids])

    def lock_all(self, refs: Iterable[locks.AggregateRef], then_lock_timeout: str | None = None) -> None:
        """lock() for several (kind, id) aggregates at once, in the one global key order;
        then_lock_timeout: the lock wait of the rest of the transaction, set in the same round trip."""
        locks.lock_aggregates(self.connection, self.service, refs, self._locked, then_lock_timeout)

    def try_lock(self, kind: str, ident: str) -> bool:
        """lock() without waiting: False (nothing locked) when another transaction holds it."""
        return locks.try_lock_aggregate(self.connection, self.service, (kind, ident), self._locked)

    def emit(self, *, aggregate_type: str, aggregate_id: str, version: int, payload: message.Message) -> str:
        """Writes an event to the outbox in this transaction; returns its event id. The rows are
        inserted together, in emit order, when the transaction commits (one statement for a
        batch of events, not one per event)."""
        env = envelope.build(source=self.service, aggregate_type=aggregate_type, aggregate_id=aggregate_id,
                             aggregate_version=version, payload=payload)
        self._outbox.append({"event_id": env.event_id, "event_type": env.event_type, "aggregate_id": aggregate_id,
                             "envelope": env.SerializeToString()})
        return env.event_id

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Runs fn once the transaction has committed (cache invalidation, relay wake-up)."""
        self._after_commit.append(fn)

    def flush(self) -> None:
        """Subclasses write the rows their repositories gathered for the commit here (orders'
        timeline steps): one statement per kind of row for the whole transaction."""

    def commit(self) -> None:
        self.flush()
        emitted = bool(self._outbox)
        if emitted:  # the emitted events, in emit order (the relay ships by id)
            rows, self._outbox = self._outbox, []
            self.connection.execute(OUTBOX_INSERT, bulk.by_column(rows))
        self.connection.commit()
        self._committed = True
        # A commit without events does not wake the relay: it would read the outbox for nothing.
        for fn in [*self._after_commit, *([self._on_events] if emitted and self._on_events else [])]:
            try:
                fn()
            except Exception:  # noqa: BLE001 - the commit stands; a hook failure is only logged
                log.exception("after-commit hook failed")

    def rollback(self) -> None:
        self._outbox = []
        self._locked = set()  # the rollback released them
        self.connection.rollback()
        self.start()  # fresh repositories: what they gathered for the commit (flush) is dropped too
