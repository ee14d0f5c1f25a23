"""Consumers: handle each event once, whatever the transport delivers.

A handler's effect and the inbox row (consumer, event id) commit in one transaction,
then the delivery is acked; a duplicate finds its inbox row and changes nothing.
A failing handler is retried with backoff; after max_attempts, or at once when the
message cannot even be decoded, it is recorded with the reason in the service's
dead_letters table (mesh.events.dead_letters), then leaves the queue.

The deliveries that arrive together (up to the prefetch) are applied in one transaction,
in delivery order: one BEGIN, one COMMIT and one set of after-commit hooks per batch,
not per event, which is most of what an event costs once the broker is busy. When any
event of a batch fails, or the commit does, the whole batch rolls back and each event is
applied again on its own, so a poison event costs only itself a retry. A batch holds its
row locks longer than one event would, and two replicas' batches can wait on each other
(measured: crm's customer locks, with two processes); so a batch waits at most
BATCH_LOCK_TIMEOUT for a lock, then falls back to one event per transaction, instead of
waiting for PostgreSQL's deadlock detector (1 s).

Every handler is registered with the aggregates it writes (`on(..., lock=...)`). Before any
handler runs, the transaction takes the advisory locks of all its events' aggregates, sorted
(mesh.locks): a replica handling another event of the same aggregate (a release racing its
reservation, a cancellation racing its invoice) waits for this transaction to commit, and
then reads what it wrote.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa
from google.protobuf import message

from mesh import bulk, call_context, faults, metrics, tracing
from mesh.events import dead_letters
from mesh.events.envelope import Event, UndecodableEvent, decode, event_type
from mesh.events.tables import inbox
from mesh.events.transport import Ack, DeadLetter, Delivery, Letter, Outcome, Retry, Subscription, retry_delays
from mesh.locks import AggregateRef

if TYPE_CHECKING:
    from erp.events.v1.envelope_pb2 import EventEnvelope
    from mesh.uow import UnitOfWork

log = logging.getLogger("mesh.events.consumer")

# (unit of work, payload, the envelope it came in: ids, source, times, aggregate version)
Handler = Callable[["UnitOfWork", message.Message, "EventEnvelope"], None]
# What a service registers: a handler of its own unit of work (a UnitOfWork subclass) and of one payload type.
W = TypeVar("W", bound="UnitOfWork")
P = TypeVar("P", bound=message.Message)
# The consumer's own aggregates that handling a payload reads and writes: (kind, id) pairs.
LockKeys = Callable[[Any], Iterable[AggregateRef]]

# Built once: an INSERT built per event costs more Python than the round trip it makes.
# One statement inserts the inbox rows of all the events of a transaction; it returns the new ones.
_INBOX_COLUMNS, _NEW_ONLY = ["consumer", "event_id", "event_type"], "ON CONFLICT DO NOTHING RETURNING event_id::text"
RECORD_IN_INBOX_RETURNING_NEW = bulk.insert_many(inbox, _INBOX_COLUMNS, _NEW_ONLY)
# The aggregate locks wait as long as the connection allows (ERP_DB_LOCK_TIMEOUT_MS); once they
# are held, a lone event's handler waits at most LONE_LOCK_TIMEOUT for a row, a batch's
# BATCH_LOCK_TIMEOUT (set with the aggregate locks: one round trip, not three).
LONE_LOCK_TIMEOUT = "5s"
BATCH_LOCK_TIMEOUT = "100ms"
# After a lock_first batch's row locks (which wait like the aggregates'), its handlers' lock wait is
# set with the inbox rows, in the same round trip: the setting in a CTE the insert reads.
_SET_BATCH_LOCK_TIMEOUT_THEN_RECORD = bulk.insert_many(inbox, _INBOX_COLUMNS, _NEW_ONLY,
                                                      set_locally={"lock_timeout": BATCH_LOCK_TIMEOUT})
# An infrastructure failure (mesh.faults) sends the delivery back after this, uncounted, and the
# consumer takes nothing more until its dependencies answer, asking at most this often.
OUTAGE_RETRY_SECONDS = 1.0
OUTAGE_POLL_MAX_SECONDS = 5.0
_OUTCOME_LABELS = {Ack: "ack", Retry: "retry", DeadLetter: "dead_letter"}


@dataclasses.dataclass
class EventHandlers:
    """The events one service consumes, and what it does with each."""

    consumer: str
    handlers: dict[str, Handler] = dataclasses.field(default_factory=dict)
    locks: dict[str, LockKeys] = dataclasses.field(default_factory=dict)
    # Locks, in one global order, the rows a batch of these events will lock (crm: the batch's
    # customers), before any handler runs: replicas' batches then queue for those rows instead
    # of deadlocking, and that wait does not count against BATCH_LOCK_TIMEOUT.
    lock_first: Callable[[Any, list[Event]], None] | None = None
    # Reads, under the batch's locks, what its handlers will read (notification: the batch's
    # contacts; crm: its credit checks' views and its invoices; finance: what its invoices look
    # at), in one statement instead of one per event; the repository keeps it for them.
    read_first: Callable[[Any, list[Event]], None] | None = None

    def on(self, payload_type: type[P], *, lock: LockKeys
           ) -> Callable[[Callable[[W, P, EventEnvelope], None]], Callable[[W, P, EventEnvelope], None]]:
        """Registers the handler of one event type. `lock(payload)` names the aggregates (of
        this service) the handler reads and writes, as (kind, id) pairs: they are locked
        before it runs (mesh.locks). Required, so that no handler is added without deciding."""
        def register(fn: Callable[[W, P, EventEnvelope], None]) -> Callable[[W, P, EventEnvelope], None]:
            # Stored as a Handler: it is only called with a payload of payload_type (dispatch is by its
            # event type) and the service's own unit of work (its Runtime's uow_class).
            self.handlers[event_type(payload_type)] = cast(Handler, fn)
            self.locks[event_type(payload_type)] = lock
            return fn

        return register

    def aggregates(self, events: Iterable[Event]) -> list[AggregateRef]:
        """The aggregates the handlers of these events lock."""
        return [ref for event in events for ref in self.locks[event.envelope.event_type](event.payload)]

    @property
    def event_types(self) -> list[str]:
        return sorted(self.handlers)


class Consumer:
    def __init__(self, handlers: EventHandlers, uow_factory: Callable[[], UnitOfWork], max_attempts: int,
                 retry_base_ms: int, ready: Callable[[], bool] | None = None) -> None:
        """ready(): whether the dependencies answer (the database); polled after an outage."""
        self.handlers = handlers
        self.uow_factory = uow_factory
        self.max_attempts = max_attempts
        self.delays = retry_delays(retry_base_ms, max_attempts)
        self.ready = ready

    def handle(self, delivery: Delivery) -> Outcome:
        outcome, event_type = self._handle(delivery)
        metrics.labelled(metrics.EVENTS_HANDLED, self.handlers.consumer, event_type,
                         _OUTCOME_LABELS[type(outcome)]).inc()
        return outcome

    def handle_batch(self, deliveries: list[Delivery]) -> list[Outcome]:
        """The outcome of each delivery, in order; the events commit together when all succeed."""
        if deliveries:
            metrics.labelled(metrics.EVENT_BATCH_SIZE, self.handlers.consumer, "consumed").observe(len(deliveries))
        if len(deliveries) < 2 or any(d.attempts for d in deliveries):  # a retry goes alone: it failed before
            return [self.handle(d) for d in deliveries]
        ready: list[tuple[Handler, Event]] = []
        for delivery in deliveries:
            try:
                event = decode(delivery.body)
            except UndecodableEvent:
                break
            handler = self.handlers.handlers.get(event.envelope.event_type)
            if handler is None:
                break
            ready.append((handler, event))
        if len(ready) < len(deliveries) or not self._apply_together(ready):
            metrics.labelled(metrics.EVENT_BATCH_FALLBACKS, self.handlers.consumer).inc()
            return [self.handle(d) for d in deliveries]
        for _, event in ready:
            metrics.labelled(metrics.EVENTS_HANDLED, self.handlers.consumer, event.envelope.event_type, "ack").inc()
        return [Ack() for _ in deliveries]

    def _apply_together(self, ready: list[tuple[Handler, Event]]) -> bool:
        """Applies every event in one transaction; False (all rolled back) when one fails."""
        try:
            with self.uow_factory() as uow:
                refs = self.handlers.aggregates(event for _, event in ready)
                if self.handlers.lock_first is None:
                    uow.lock_all(refs, then_lock_timeout=BATCH_LOCK_TIMEOUT)
                else:  # its row locks wait like the aggregates' (not counted against the batch's timeout)
                    uow.lock_all(refs, then_lock_timeout=LONE_LOCK_TIMEOUT)
                    self.handlers.lock_first(uow, [event for _, event in ready])
                if self.handlers.read_first is not None:
                    self.handlers.read_first(uow, [event for _, event in ready])
                recording = RECORD_IN_INBOX_RETURNING_NEW if self.handlers.lock_first is None \
                    else _SET_BATCH_LOCK_TIMEOUT_THEN_RECORD
                applied = self._apply_in(uow, ready, recording)
                uow.commit()
            self._observe_latency(applied)
            return True
        except Exception as exc:  # noqa: BLE001 - each event is applied again alone, and retried there
            log.info("batch of %d events rolled back (%s: %s); applying them one by one", len(ready),
                     exc.__class__.__name__, exc)
            return False

    def _handle(self, delivery: Delivery) -> tuple[Outcome, str]:
        try:
            event = decode(delivery.body)
        except UndecodableEvent as exc:
            log.error("dead-lettering undecodable message: %s", exc)
            return self._dead_letter(delivery, f"undecodable: {exc}"), "undecodable"
        env = event.envelope
        handler = self.handlers.handlers.get(env.event_type)
        if handler is None:
            return self._dead_letter(delivery, f"{self.handlers.consumer} has no handler for {env.event_type}",
                                     env), env.event_type
        with call_context.scope(correlation=env.correlation_id, causation=env.event_id):
            try:
                self._apply(handler, event)
                return Ack(), env.event_type
            except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
                attempt = delivery.attempts + 1
                error = f"{exc.__class__.__name__}: {exc}"
                if faults.is_infrastructure(exc):
                    log.warning("%s %s not handled, the infrastructure failed (%s); again in %.1fs, "
                                "no attempt counted", env.event_type, env.event_id, error, OUTAGE_RETRY_SECONDS)
                    return Retry(OUTAGE_RETRY_SECONDS, error, counted=False), env.event_type
                if attempt >= self.max_attempts:
                    log.error("dead-lettering %s %s after %d attempts: %s", env.event_type, env.event_id,
                              attempt, error)
                    return self._dead_letter(delivery, f"failed {attempt} times; last error {error}",
                                             env), env.event_type
                delay = self.delays[min(attempt - 1, len(self.delays) - 1)]
                log.warning("retrying %s %s in %.2fs (attempt %d): %s", env.event_type, env.event_id,
                            delay, attempt, error)
                return Retry(delay, error), env.event_type

    def _dead_letter(self, delivery: Delivery, reason: str, env: EventEnvelope | None = None) -> Outcome:
        """Records the delivery in the service's dead_letters table, so that it can leave the
        queue; when that fails, the delivery goes back uncounted and waits for the database."""
        letter = Letter(event_id=env.event_id if env else None, event_type=env.event_type if env else None,
                        body=delivery.body, attempts=delivery.attempts + 1, error=reason[:2000], source="consumer")
        try:
            with self.uow_factory() as uow:
                dead_letters.record(uow.connection, [letter])
                uow.commit()
        except Exception as exc:  # noqa: BLE001 - kept in the queue until it can be recorded
            log.warning("dead letter not recorded (%s: %s); again in %.1fs", exc.__class__.__name__, exc,
                        OUTAGE_RETRY_SECONDS)
            return Retry(OUTAGE_RETRY_SECONDS, f"dead letter not recorded: {exc.__class__.__name__}", counted=False)
        return DeadLetter(reason)

    def _apply(self, handler: Handler, event: Event) -> None:
        with self.uow_factory() as uow:
            uow.lock_all(self.handlers.aggregates([event]), then_lock_timeout=LONE_LOCK_TIMEOUT)
            applied = self._apply_in(uow, [(handler, event)])
            uow.commit()
        self._observe_latency(applied)

    def _observe_latency(self, applied: list[Event]) -> None:
        """Creation to committed handling, per event: the backbone's end-to-end delay."""
        now = time.time()
        for event in applied:
            env = event.envelope
            metrics.labelled(metrics.EVENT_LATENCY, self.handlers.consumer, env.event_type).observe(
                max(0.0, now - env.occurred_at.ToMicroseconds() / 1e6))

    def _apply_in(self, uow: UnitOfWork, ready: list[tuple[Handler, Event]],
                  recording: sa.TextClause = RECORD_IN_INBOX_RETURNING_NEW) -> list[Event]:
        """Records the events in the inbox and runs the handler of each new one, in order, in
        uow's transaction; a duplicate (its inbox row is there, or it came earlier in this
        batch) changes nothing. Returns the events applied."""
        first_time = set(uow.run(recording, bulk.rows([
            {"consumer": self.handlers.consumer, "event_id": e.envelope.event_id, "event_type": e.envelope.event_type}
            for _, e in ready])).scalars())
        applied = []
        for handler, event in ready:
            env = event.envelope
            if env.event_id not in first_time:
                log.info("duplicate %s %s ignored", env.event_type, env.event_id)
                continue
            first_time.discard(env.event_id)
            with call_context.scope(correlation=env.correlation_id, causation=env.event_id), self._traced(env):
                handler(uow, event.payload, env)
            applied.append(event)
        return applied

    def _traced(self, envelope: EventEnvelope) -> AbstractContextManager[object]:
        """The event's process span (mesh.tracing), current while its handler runs."""
        if tracing.enabled():
            return tracing.process_span(envelope, self.handlers.consumer)
        return contextlib.nullcontext()

    def wait_until_ready(self, stop: threading.Event) -> None:
        """Takes no more deliveries until ready() answers (or stop): an outage is waited out,
        not spent on the events' retries."""
        if self.ready is None:
            return
        pause = OUTAGE_RETRY_SECONDS
        while not stop.is_set() and not self.ready():
            log.warning("%s: dependencies not answering; pausing deliveries %.1fs", self.handlers.consumer, pause)
            stop.wait(pause)
            pause = min(pause * 2, OUTAGE_POLL_MAX_SECONDS)

    def run(self, subscription_factory: Callable[[], Subscription], stop: threading.Event) -> None:
        """Receives, handles and settles until `stop` is set; reconnects after transport errors."""
        while not stop.is_set():
            try:
                subscription = subscription_factory()
            except Exception as exc:  # noqa: BLE001 - transport not reachable yet
                log.warning("cannot subscribe (%s); retrying", exc.__class__.__name__)
                stop.wait(1.0)
                continue
            try:
                while not stop.is_set():
                    deliveries = subscription.receive(timeout=0.5)
                    outcomes = self.handle_batch(deliveries)
                    if deliveries:
                        faults.crash_point("consumer.committed")
                    subscription.settle(list(zip(deliveries, outcomes, strict=True)))
                    if any(isinstance(o, Retry) and not o.counted for o in outcomes):
                        self.wait_until_ready(stop)
            except Exception as exc:  # noqa: BLE001
                if faults.is_transport_outage(exc):
                    log.warning("%s: broker connection lost (%s); resubscribing", self.handlers.consumer,
                                exc.__class__.__name__)
                else:
                    log.exception("consumer transport error; resubscribing")
                stop.wait(1.0)
            finally:
                try:
                    subscription.close()
                except Exception:  # noqa: BLE001
                    pass
