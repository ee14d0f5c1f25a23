"""The outbox relay: publishes committed outbox rows and marks them sent once the transport
has accepted them (the service's pruner, mesh/retention.py, deletes them a week later).

One relay per service is active at a time (a PostgreSQL advisory lock elects it), so
rows go out in commit order. The leader runs its statements on the connection that holds the
lock: a leader whose connection broke reads no further batch beside the one elected after it (the
batch it read already may still go out: the inboxes absorb the copies), and no round pays a pool
checkout (~60 µs of Python with the switch to autocommit and back). A lead that ends in an error
closes that connection, so the lock never stays behind in the pool.

Unsent rows go out in batches (one AMQP transaction each: one round trip per batch, not per
row); a batch the transport does not accept stays unsent as a whole and is tried again, in id
order, so per-aggregate order holds. While it leads, the relay marks a batch sent in the
statement that reads the next one (one round trip per round, not two), so a batch stays
unmarked until the next round (at most poll_seconds later). A relay killed between publish and
mark-sent republishes the rows on restart; consumers' inboxes absorb the duplicates.

An event type no service of the mesh consumes (OrderCompleted: an outside integration may bind a
queue to it) is sent once the transport has it, whether or not a queue took it. An
unroutable event type some service consumes (its queue not bound) is retried for a grace period, since a
consuming service may not have declared its queue yet (mesh.events.topology declares
them all before anything is published, but a queue may have been deleted by hand);
after that its rows are parked in bulk and logged: they stay in the outbox, marked
parked_at, never pruned, until the dead-letters tool replays (hands them back to the
relay) or discards them. While
a type is unroutable the relay backs off on that type alone (its rows are left out of
the batch, with no database write per attempt), so events nobody consumes never crowd
out the ones that are. Unroutable rows do not hold back their aggregate: no consumer
sees them, so skipping them reorders nothing any consumer sees.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import faults, metrics, sql, tracing
from mesh.db import advisory_key
from mesh.events.tables import outbox
from mesh.events.transport import Message, Publisher, PublishFailed

log = logging.getLogger("mesh.events.relay")
BATCH = 500


# Built once: the relay runs them every round, and building them was most of a round's CPU.
_UNSENT_BATCH = (sa.select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate_id, outbox.c.envelope,
                     outbox.c.attempts, (sa.func.extract("epoch", sa.func.now() - outbox.c.created_at)).label("age"))
           .where(outbox.c.published_at.is_(None)).order_by(outbox.c.id).limit(BATCH))
_RESTING: sa.BindParameter[list[str]] = sa.bindparam("resting", expanding=True)
# Rows published by the last round, marked sent in the statement that reads the next batch (a CTE:
# the read's snapshot does not see the mark, hence the exclusion). Already marked: left as they are.
_SENT = sa.bindparam("sent", type_=ARRAY(sa.BigInteger))
_MARK_SENT = outbox.update().where(outbox.c.id == sa.any_(_SENT), outbox.c.published_at.is_(None)).values(
    published_at=sa.func.now())
_MARK_THEN_UNSENT = _UNSENT_BATCH.add_cte(_MARK_SENT.cte("marked")).where(outbox.c.id != sa.all_(_SENT))
# The read of a round, by (marks to make, types resting), built once.
_READS = {(False, False): _UNSENT_BATCH, (False, True): _UNSENT_BATCH.where(outbox.c.event_type.not_in(_RESTING)),
          (True, False): _MARK_THEN_UNSENT, (True, True): _MARK_THEN_UNSENT.where(outbox.c.event_type.not_in(_RESTING))}


class Relay:
    def __init__(self, engine: sa.Engine, service: str, publisher_factory: Callable[[], Publisher],
                 poll_seconds: float = 0.2, unroutable_grace_seconds: float = 300.0,
                 consumed: Collection[str] | None = None) -> None:
        self.engine = engine
        # The event types some service of the mesh consumes (None: every type). A row of another
        # type that no queue took has gone to everyone it was for: it is sent, not retried or parked.
        self.consumed = consumed
        # Every statement of the relay stands alone (the leader lock keeps other relays out), so it
        # runs in autocommit: one round trip, where a transaction around it would add BEGIN and COMMIT.
        self.statements = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.service = service
        self.publisher_factory = publisher_factory
        self.poll_seconds = poll_seconds
        self.unroutable_grace_seconds = unroutable_grace_seconds
        self.wake = threading.Event()
        self._publisher: Publisher | None = None
        # event type -> (monotonic time of its next try, current delay) while it is unroutable
        self._unroutable: dict[str, tuple[float, float]] = {}
        # The last batch was refused by the transport (broker down): the relay then backs off
        # for real, instead of re-reading the outbox on every commit that wakes it.
        self.transport_failing = False
        self.unsettled = 0  # rows the last round read but could not settle (unroutable, or refused)
        self.unmarked: list[int] = []  # ids of rows published and not yet marked sent
        self._leading: sa.Connection | None = None  # while leading: the lock's connection, in autocommit

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sa.Connection]:
        """Where a statement runs: the leader lock's connection while leading, else one from the pool."""
        if self._leading is not None:
            yield self._leading
        else:
            with self.statements.connect() as conn:
                yield conn

    def publish_pending(self, leave_marks: bool = False) -> int:
        """Publishes what is unsent, in id order; returns how many rows it settled
        (confirmed, or marked unrouted after the grace period). leave_marks: the last batch's
        mark-sent is left to the next round's read (the leading relay's loop)."""
        total = 0
        while True:
            settled, rows_read, rested = self._round()
            total += settled
            self.unsettled = rows_read - settled
            # A full batch whose unroutable types now rest may hide routable rows behind it.
            if not (rested and rows_read == BATCH):
                break
        if not leave_marks:
            self.mark_published()
        return total

    def mark_published(self) -> None:
        """Marks sent what was published and is not marked yet."""
        if self.unmarked:
            with self._connection() as conn:
                sql.run(conn, _MARK_SENT, {"sent": self.unmarked})
            self.unmarked = []

    def _round(self) -> tuple[int, int, bool]:
        """One batch: (rows settled, rows read, whether some type started resting)."""
        now = time.monotonic()
        resting = sorted(t for t, (retry_at, _) in self._unroutable.items() if retry_at > now)
        with self._connection() as conn:
            read, params = _READS[bool(self.unmarked), bool(resting)], {"sent": self.unmarked, "resting": resting}
            # Resting types are an expanding NOT IN list, which only SQLAlchemy's execute renders.
            rows = (conn.execute(read, params) if resting else sql.run(conn, read, params)).all()
        self.unmarked = []  # the read marked them
        if not rows:
            return 0, 0, False
        sent: list[int] = []
        try:
            unroutable = self._publish(rows)
        except PublishFailed as exc:
            # Nothing of the batch counts as sent; the first row carries the error. Order per
            # aggregate holds: every row is tried again, in id order, in the next round.
            self._record_failure(rows[0].id, str(exc))
            self._drop_publisher()  # the connection may be broken: start a new one
            self.transport_failing = True
            return 0, len(rows), False
        self.transport_failing = False
        metrics.labelled(metrics.EVENT_BATCH_SIZE, self.service, "published").observe(len(rows))
        faults.crash_point("relay.published")
        settled_unrouted = 0
        unroutable_types: dict[str, list[sa.Row[Any]]] = {}
        unsubscribed = 0
        for row in rows:
            if str(row.event_id) not in unroutable:
                sent.append(row.id)
                self._unroutable.pop(row.event_type, None)
            elif not self._has_consumers(row.event_type):
                sent.append(row.id)
                unsubscribed += 1
            else:
                unroutable_types.setdefault(row.event_type, []).append(row)
        self.unmarked = sent
        metrics.EVENTS_PUBLISHED.labels(self.service, "ok").inc(len(sent) - unsubscribed)
        if unsubscribed:
            metrics.EVENTS_PUBLISHED.labels(self.service, "unsubscribed").inc(unsubscribed)
        for event_type, unrouted in unroutable_types.items():
            error = f"no queue bound to {event_type}"
            if max(row.age for row in unrouted) > self.unroutable_grace_seconds:
                settled_unrouted += self._mark_unrouted(event_type, error)
            else:
                self._record_failure(unrouted[0].id, error, quiet=event_type in self._unroutable,
                                     result="unrouted", count=len(unrouted))
                self._rest(event_type)
        return len(sent) + settled_unrouted, len(rows), bool(unroutable_types)

    def _publish(self, rows: Sequence[sa.Row[Any]]) -> set[str]:
        """Hands the rows to the transport; returns the ids no queue took. Traced: a publish span
        per row (see mesh.tracing), failed when the transport refused or nobody took it."""
        messages = [Message(row.event_type, str(row.event_id), bytes(row.envelope)) for row in rows]
        if not tracing.enabled():
            return self._get_publisher().publish_many(messages)
        batch, spans = tracing.publish_spans([EventEnvelope.FromString(m.body) for m in messages], self.service)
        try:
            unroutable = self._get_publisher().publish_many(messages)
            for message, span in zip(messages, spans, strict=True):
                if message.event_id in unroutable and self._has_consumers(message.event_type):
                    tracing.fail(span, f"no queue bound to {message.event_type}")
            return unroutable
        except PublishFailed as exc:
            for span in (batch, *spans):
                tracing.fail(span, str(exc))
            raise
        finally:
            for span in (*spans, batch):
                span.end()

    def _has_consumers(self, event_type: str) -> bool:
        return self.consumed is None or event_type in self.consumed

    def _rest(self, event_type: str) -> None:
        """Backs off on one unroutable type: 1 s, 2 s, ... up to 30 s between tries."""
        _, delay = self._unroutable.get(event_type, (0.0, 0.5))
        delay = min(delay * 2, 30.0)
        self._unroutable[event_type] = (time.monotonic() + delay, delay)

    def _mark_unrouted(self, event_type: str, error: str) -> int:
        """Parks every row of a type that has been unroutable for the whole grace period: the
        relay is done with them (published_at leaves them out of its reads), parked_at keeps them."""
        with self._connection() as conn:
            count = conn.execute(outbox.update().where(
                outbox.c.published_at.is_(None), outbox.c.event_type == event_type,
                outbox.c.created_at < sa.func.now() - sa.func.make_interval(0, 0, 0, 0, 0, 0,
                                                                            self.unroutable_grace_seconds),
            ).values(published_at=sa.func.now(), parked_at=sa.func.now(), attempts=outbox.c.attempts + 1,
                     last_error=f"unrouted: {error}"[:500])).rowcount
        log.warning("%d outbox rows of %s parked: %s for over %.0fs (python -m services.tools.deadletters list %s)",
                    count, event_type, error, self.unroutable_grace_seconds, self.service)
        metrics.EVENTS_PUBLISHED.labels(self.service, "parked").inc(count)
        self._rest(event_type)
        return count

    def _get_publisher(self) -> Publisher:
        if self._publisher is None:
            try:
                self._publisher = self.publisher_factory()
            except Exception as exc:  # noqa: BLE001 - broker down: keep rows, try later
                raise PublishFailed(f"cannot connect to the transport: {exc.__class__.__name__}") from exc
        return self._publisher

    def _drop_publisher(self) -> None:
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    def _record_failure(self, row_id: int, error: str, quiet: bool = False, result: str = "error",
                        count: int = 1) -> None:
        metrics.EVENTS_PUBLISHED.labels(self.service, result).inc(count)
        log.log(logging.DEBUG if quiet else logging.WARNING, "outbox row %s not published: %s", row_id, error)
        with self._connection() as conn:
            conn.execute(outbox.update().where(outbox.c.id == row_id)
                         .values(attempts=outbox.c.attempts + 1, last_error=error[:500]))

    def run(self, stop: threading.Event) -> None:
        """Loops until `stop` is set: holds the leader lock, publishes, waits for a wake-up."""
        while not stop.is_set():
            try:
                with self.engine.connect() as lock_conn:
                    key = advisory_key("relay:" + self.service)
                    if not lock_conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                        lock_conn.rollback()
                        stop.wait(1.0)  # another replica is the relay; stand by
                        continue
                    lock_conn.commit()
                    self._leading = lock_conn.execution_options(isolation_level="AUTOCOMMIT")
                    try:
                        self._lead(stop)
                        self.mark_published()  # before the lock goes: the next leader does not send them again
                    except BaseException:
                        lock_conn.invalidate()  # closed, not pooled: the server ends the session and its lock
                        raise
                    finally:
                        self._leading = None
                    lock_conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception:  # noqa: BLE001 - database or broker trouble: back off and retry
                log.exception("relay error; retrying")
                self._drop_publisher()
                stop.wait(1.0)
        try:
            self.mark_published()  # after a failed lead: what this relay sent is not sent again by the next one
        except Exception:  # noqa: BLE001 - the next relay republishes them; inboxes absorb that
            log.warning("published rows not marked sent at stop", exc_info=True)
        self._drop_publisher()

    def _lead(self, stop: threading.Event) -> None:
        backoff = self.poll_seconds
        while not stop.is_set():
            self.wake.clear()
            sent = self.publish_pending(leave_marks=True)
            if sent >= BATCH:
                continue
            # After failures (the transport refused the batch, or rows of a type no queue takes yet),
            # wait longer before the next round (up to 5 s).
            failing = self.transport_failing or self.unsettled > 0
            backoff = self.poll_seconds if sent or not failing else min(backoff * 2, 5.0)
            if self.transport_failing:
                stop.wait(backoff)  # the broker is down: a commit's wake-up must not cut the wait short
            else:
                self.wake.wait(backoff)

