"""The unit of work: one database transaction, the events it emits, and what runs
after it commits. Services subclass it to attach their repositories.

A unit of work may join a transaction that is already open (`SharedTransaction`, set for
the current call by mesh.idempotency for a method that runs in one transaction with its key):
it then works on that transaction's connection, its commit() writes what it gathered and
leaves the COMMIT, and its after-commit work, to the owner. A shared transaction in one statement
(mesh.idempotency.in_one_statement) takes the unit of work's one write too (write_claimed), which
its owner sends with the key, the answer and the events."""
from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, NoReturn, Self, cast

import sqlalchemy as sa
from google.protobuf import message

from mesh import bulk, locks, sql
from mesh.events import envelope
from mesh.events.tables import outbox

log = logging.getLogger("mesh.uow")
# A transaction's events in one statement, in emit order (the relay ships by id), its text the same
# for any number of events (mesh.bulk).
OUTBOX_INSERT = bulk.insert_many(outbox, ["event_id", "event_type", "aggregate_id", "envelope"])
# The same, bound under a name of its own: in a one-statement write, beside the writer's own rows.
CLAIMED_EVENTS = "claimed_events"
OUTBOX_INSERT_CLAIMED = bulk.insert_many(outbox, ["event_id", "event_type", "aggregate_id", "envelope"],
                                         param=CLAIMED_EVENTS)


def with_events(statement: str) -> sa.TextClause:
    """`statement` (an INSERT, UPDATE or DELETE) that also writes a shared transaction's events
    (SharedTransaction.events) to the outbox: its owner's last statement carries them, one round
    trip less per call. Bind the events with bulk.rows(events)."""
    return sa.text(f"WITH events AS ({OUTBOX_INSERT.text}) {statement}")


class SharedTransaction:
    """An open transaction the first unit of work entered in this context joins. Its owner
    commits it once the work is done, then calls `committed()`; `ready` says whether the
    unit of work that joined it committed its part (False: it left without committing, so
    what it did must not be kept); `events`, the outbox rows of that part, which the owner
    writes with its own last statement (with_events). one_statement: the owner runs the unit of
    work's one write itself (`deferred`, handed over by write_claimed), on a connection in
    autocommit: nothing is written before it."""

    def __init__(self, engine: sa.Engine, connection: sa.Connection, one_statement: bool = False) -> None:
        self.engine, self.connection = engine, connection
        self.one_statement = one_statement
        self.joined = False
        self.ready = False
        self.events: list[dict[str, Any]] = []
        self.deferred: tuple[sa.TextClause, dict[str, Any]] | None = None
        self._after_commit: list[Callable[[], None]] = []

    def join(self, engine: sa.Engine) -> sa.Connection | None:
        """The connection to work on, for the first unit of work on the same engine; None after.
        In one statement, a stand-in that refuses every use: a statement sent there would commit
        alone (autocommit), before the one write and without the key."""
        if self.joined or engine is not self.engine:
            return None
        self.joined = True
        return cast(sa.Connection, _NoStatements()) if self.one_statement else self.connection

    def part_done(self, after_commit: list[Callable[[], None]], events: list[dict[str, Any]]) -> None:
        self.ready = True
        self._after_commit.extend(after_commit)
        self.events = events

    def committed(self) -> None:
        """The owner committed: the joined unit of work's after-commit work runs now."""
        _run_hooks(self._after_commit)


class _NoStatements:
    """The connection a unit of work gets in a shared transaction in one statement."""

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"a unit of work in one statement sends nothing but its one write (claimed_writer);"
                           f" it used its connection's {name}")


_shared: contextvars.ContextVar[SharedTransaction | None] = contextvars.ContextVar("shared_transaction", default=None)


@contextlib.contextmanager
def sharing(transaction: SharedTransaction) -> Iterator[SharedTransaction]:
    """Within the block, the first unit of work entered joins `transaction`."""
    token = _shared.set(transaction)
    try:
        yield transaction
    finally:
        _shared.reset(token)


def _run_hooks(hooks: list[Callable[[], None]]) -> None:
    for fn in hooks:
        try:
            fn()
        except Exception:  # noqa: BLE001 - the commit stands; a hook failure is only logged
            log.exception("after-commit hook failed")


class UnitOfWork:
    def __init__(self, engine: sa.Engine, service: str, on_events: Callable[[], None] | None = None) -> None:
        """on_events: runs after each commit that wrote events to the outbox (the relay's wake-up)."""
        self.engine = engine
        self.service = service
        self._on_events = on_events
        self._after_commit: list[Callable[[], None]] = []
        self._outbox: list[dict[str, Any]] = []  # outbox rows: column name to value
        self._locked: set[int] = set()
        self._shared: SharedTransaction | None = None
        self.connection: sa.Connection

    def __enter__(self) -> Self:
        shared = _shared.get()
        joined = shared.join(self.engine) if shared is not None else None
        self._shared = shared if joined is not None else None
        if joined is not None:
            self.connection = joined
        else:
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
        if self._shared is not None:
            return  # the owner ends the transaction: it keeps it only if commit() ran (ready)
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

    def run(self, statement: sa.ClauseElement, params: Mapping[str, Any] | None = None) -> sql.Rows:
        """A hot statement in this transaction, on the driver's cursor (mesh.sql)."""
        return sql.run(self.connection, statement, params)

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

    @property
    def claimed_writer(self) -> Callable[[sa.TextClause, Mapping[str, Any]], None] | None:
        """write_claimed in a shared transaction in one statement whose write is still to come;
        None otherwise: repositories then write as usual."""
        shared = self._shared
        return self.write_claimed if shared is not None and shared.one_statement and shared.deferred is None else None

    def write_claimed(self, statement: sa.TextClause, params: Mapping[str, Any]) -> None:
        """Hands the transaction's owner its one write (a statement of mesh.idempotency.with_claim),
        which it sends with the call's key, answer and events once the handler has answered."""
        if self._shared is None or not self._shared.one_statement or self._shared.deferred is not None:
            raise RuntimeError("write_claimed is for the one write of a shared transaction in one statement")
        self._shared.deferred = (statement, dict(params))

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Runs fn once the transaction has committed (cache invalidation, relay wake-up)."""
        self._after_commit.append(fn)

    def flush(self) -> None:
        """Subclasses write the rows their repositories gathered for the commit here (orders'
        timeline steps): one statement per kind of row for the whole transaction."""

    def commit(self) -> None:
        self.flush()
        events, self._outbox = self._outbox, []  # in emit order (the relay ships by id)
        # A commit without events does not wake the relay: it would read the outbox for nothing.
        hooks = [*self._after_commit, *([self._on_events] if events and self._on_events else [])]
        self._committed = True
        if self._shared is not None:
            self._shared.part_done(hooks, events)  # written with the owner's last statement
            return
        if events:
            self.run(OUTBOX_INSERT, bulk.rows(events))
        self.connection.commit()
        _run_hooks(hooks)

    def rollback(self) -> None:
        if self._shared is not None:
            raise RuntimeError("a unit of work in a shared transaction cannot roll back part of it; raise instead")
        self._outbox = []
        self._locked = set()  # the rollback released them
        self.connection.rollback()
        self.start()  # fresh repositories: what they gathered for the commit (flush) is dropped too
