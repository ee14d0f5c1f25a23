"""Consumers: handle each event once, whatever the transport delivers.

A handler's effect and the inbox row (consumer, event id) commit in one transaction,
then the delivery is acked; a duplicate finds its inbox row and changes nothing.
A failing handler is retried with backoff; after max_attempts, or at once when the
message cannot even be decoded, it goes to the dead-letter queue with the reason.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from google.protobuf import message
from sqlalchemy.dialects.postgresql import insert

from mesh import context, metrics
from mesh.events.envelope import Event, UndecodableEvent, decode, event_type
from mesh.events.tables import inbox
from mesh.events.transport import Ack, DeadLetter, Delivery, Outcome, Retry, Subscription, retry_delays

log = logging.getLogger("mesh.events.consumer")

Handler = Callable[[Any, message.Message, Event], None]  # (unit of work, payload, event)


@dataclasses.dataclass
class EventHandlers:
    """The events one service consumes, and what it does with each."""

    consumer: str
    handlers: dict[str, Handler] = dataclasses.field(default_factory=dict)

    def on(self, payload_type: type[message.Message]) -> Callable[[Handler], Handler]:
        def register(fn: Handler) -> Handler:
            self.handlers[event_type(payload_type)] = fn
            return fn

        return register

    @property
    def event_types(self) -> list[str]:
        return sorted(self.handlers)


class Consumer:
    def __init__(self, handlers: EventHandlers, uow_factory: Callable[[], Any], max_attempts: int,
                 retry_base_ms: int) -> None:
        self.handlers = handlers
        self.uow_factory = uow_factory
        self.max_attempts = max_attempts
        self.delays = retry_delays(retry_base_ms, max_attempts)

    def handle(self, delivery: Delivery) -> Outcome:
        outcome, event_type = self._handle(delivery)
        metrics.EVENTS_HANDLED.labels(self.handlers.consumer, event_type, type(outcome).__name__.lower()).inc()
        return outcome

    def _handle(self, delivery: Delivery) -> tuple[Outcome, str]:
        try:
            event = decode(delivery.body)
        except UndecodableEvent as exc:
            log.error("dead-lettering undecodable message: %s", exc)
            return DeadLetter(f"undecodable: {exc}"), "undecodable"
        env = event.envelope
        handler = self.handlers.handlers.get(env.event_type)
        if handler is None:
            return DeadLetter(f"{self.handlers.consumer} has no handler for {env.event_type}"), env.event_type
        with context.scope(correlation=env.correlation_id, causation=env.event_id):
            try:
                self._apply(handler, event)
                return Ack(), env.event_type
            except Exception as exc:  # noqa: BLE001 - every failure is retried, then dead-lettered
                attempt = delivery.attempts + 1
                error = f"{exc.__class__.__name__}: {exc}"
                if attempt >= self.max_attempts:
                    log.error("dead-lettering %s %s after %d attempts: %s", env.event_type, env.event_id,
                              attempt, error)
                    return DeadLetter(f"failed {attempt} times; last error {error}"), env.event_type
                delay = self.delays[min(attempt - 1, len(self.delays) - 1)]
                log.warning("retrying %s %s in %.2fs (attempt %d): %s", env.event_type, env.event_id,
                            delay, attempt, error)
                return Retry(delay, error), env.event_type

    def _apply(self, handler: Handler, event: Event) -> None:
        env = event.envelope
        with self.uow_factory() as uow:
            first_time = uow.connection.execute(
                insert(inbox).values(consumer=self.handlers.consumer, event_id=env.event_id,
                                     event_type=env.event_type)
                .on_conflict_do_nothing().returning(sa.literal(1))
            ).first()
            if first_time is None:
                log.info("duplicate %s %s ignored", env.event_type, env.event_id)
                return
            handler(uow, event.payload, event)
            uow.commit()

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
                    subscription.settle([(d, self.handle(d)) for d in deliveries])
            except Exception:  # noqa: BLE001
                log.exception("consumer transport error; resubscribing")
                stop.wait(1.0)
            finally:
                try:
                    subscription.close()
                except Exception:  # noqa: BLE001
                    pass
