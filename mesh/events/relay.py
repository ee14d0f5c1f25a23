"""The outbox relay: publishes committed outbox rows and marks them sent after the confirm.

One relay per service is active at a time (a PostgreSQL advisory lock elects it), so
rows go out in commit order. A row that fails to publish stays unsent, and later rows
of the same aggregate wait behind it, so per-aggregate order holds; other aggregates
carry on. A relay killed between publish and mark-sent republishes the row on restart;
consumers' inboxes absorb the duplicate.

An unroutable row (no queue bound to its type) is retried for a grace period, since a
consuming service may not have declared its queue yet on a fresh install; after that it
is marked with the reason and logged, since no service consumes that event type.
Unroutable rows do not hold back their aggregate: no consumer sees them, so skipping
them reorders nothing any consumer sees.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

from mesh import metrics
from mesh.db import advisory_key
from mesh.events.tables import outbox
from mesh.events.transport import Publisher, PublishFailed, Unroutable

log = logging.getLogger("mesh.events.relay")
BATCH = 500
RETENTION = "7 days"  # published rows are kept this long for inspection, then deleted


class Relay:
    def __init__(self, engine: sa.Engine, service: str, publisher_factory: Callable[[], Publisher],
                 poll_seconds: float = 0.2, unroutable_grace_seconds: float = 300.0) -> None:
        self.engine = engine
        self.service = service
        self.publisher_factory = publisher_factory
        self.poll_seconds = poll_seconds
        self.unroutable_grace_seconds = unroutable_grace_seconds
        self.wake = threading.Event()
        self._publisher: Publisher | None = None
        self._last_cleanup = 0.0

    def publish_pending(self) -> int:
        """Publishes what is unsent, in id order; returns how many rows were confirmed."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.id, outbox.c.event_id, outbox.c.event_type, outbox.c.aggregate_id,
                          outbox.c.envelope, outbox.c.attempts,
                          (sa.func.extract("epoch", sa.func.now() - outbox.c.created_at)).label("age"))
                .where(outbox.c.published_at.is_(None)).order_by(outbox.c.id).limit(BATCH)
            ).all()
        if not rows:
            return 0
        sent: list[int] = []
        blocked: set[str] = set()
        try:
            for row in rows:
                if row.aggregate_id in blocked:
                    continue
                try:
                    self._get_publisher().publish(row.event_type, str(row.event_id), bytes(row.envelope))
                    sent.append(row.id)
                except Unroutable as exc:
                    if row.age > self.unroutable_grace_seconds:
                        log.warning("outbox row %s (%s): %s for %.0fs; marking it unrouted", row.id,
                                    row.event_type, exc, row.age)
                        self._record_failure(row.id, f"unrouted: {exc}")
                        sent.append(row.id)
                    else:
                        self._record_failure(row.id, str(exc), quiet=row.attempts > 0)
                except PublishFailed as exc:
                    blocked.add(row.aggregate_id)
                    self._record_failure(row.id, str(exc))
                    self._drop_publisher()  # the connection may be broken: start a new one
                    break
        finally:
            self._mark_sent(sent)
        return len(sent)

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

    def _mark_sent(self, ids: list[int]) -> None:
        if not ids:
            return
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id.in_(ids)).values(published_at=sa.func.now()))
        metrics.EVENTS_PUBLISHED.labels(self.service).inc(len(ids))

    def _record_failure(self, row_id: int, error: str, quiet: bool = False) -> None:
        metrics.PUBLISH_FAILURES.labels(self.service, error.split(":")[0][:40]).inc()
        log.log(logging.DEBUG if quiet else logging.WARNING, "outbox row %s not published: %s", row_id, error)
        with self.engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == row_id)
                         .values(attempts=outbox.c.attempts + 1, last_error=error[:500]))

    def cleanup(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DELETE FROM outbox WHERE published_at < now() - interval '{RETENTION}'"))

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
                    self._lead(stop)
            except Exception:  # noqa: BLE001 - database or broker trouble: back off and retry
                log.exception("relay error; retrying")
                self._drop_publisher()
                stop.wait(1.0)
        self._drop_publisher()

    def _lead(self, stop: threading.Event) -> None:
        backoff = self.poll_seconds
        while not stop.is_set():
            self.wake.clear()
            sent = self.publish_pending()
            if time.monotonic() - self._last_cleanup > 3600:
                self._last_cleanup = time.monotonic()
                self.cleanup()
            if sent == BATCH:
                continue
            # After failures, wait longer before the next round (up to 5 s).
            backoff = self.poll_seconds if sent or not self._has_failed_rows() else min(backoff * 2, 5.0)
            self.wake.wait(backoff)

    def _has_failed_rows(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(sa.select(sa.literal(1)).select_from(outbox).where(
                outbox.c.published_at.is_(None), outbox.c.attempts > 0).limit(1)).scalar())

