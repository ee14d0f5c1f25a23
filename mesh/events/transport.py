"""What the relay and the consumers need from a transport, whichever it is."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol


class PublishFailed(Exception):
    """The transport did not accept the batch; the relay keeps it and tries again."""


@dataclasses.dataclass
class Delivery:
    body: bytes
    attempts: int  # failed handling attempts before this delivery
    tag: object  # transport's handle for settling


@dataclasses.dataclass(frozen=True)
class Ack:
    pass


@dataclasses.dataclass(frozen=True)
class Retry:
    delay_seconds: float
    error: str
    # False when the handler did not fail, the infrastructure did (mesh.faults): the delivery
    # goes again with its attempts unchanged, so an outage never dead-letters it.
    counted: bool = True


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """The consumer gave up on the delivery and has recorded it in the service's dead_letters
    table (mesh.events.dead_letters): the transport only removes it."""

    reason: str


Outcome = Ack | Retry | DeadLetter


@dataclasses.dataclass(frozen=True)
class Message:
    event_type: str
    event_id: str
    body: bytes


@dataclasses.dataclass(frozen=True)
class Letter:
    """A dead letter on its way into the service's dead_letters table."""

    event_id: str | None
    event_type: str | None
    body: bytes
    attempts: int  # failed handling attempts
    error: str
    source: str  # "consumer", "broker" (a queue's delivery limit) or "bus" (an older PostgreSQL bus row)


class TopologyMismatch(Exception):
    """A queue exists with other arguments than this version declares (RabbitMQ refuses to
    redeclare it: 406 PRECONDITION_FAILED); services.tools.migrate moves it to the new ones."""

    def __init__(self, queue: str, detail: str) -> None:
        super().__init__(f"queue {queue} exists with the arguments of an older version ({detail}); "
                         "run `python -m services.tools.migrate` (`make migrate`), which declares it again "
                         "with this version's arguments")
        self.queue = queue


class Publisher(Protocol):
    def publish_many(self, messages: list[Message]) -> set[str]:
        """Publishes the messages, in order, as one batch. Returns once the transport has durably
        accepted them, with the ids of those no queue is bound to (not delivered anywhere).
        Raises PublishFailed when it cannot say the batch was accepted: then some of it may
        have been, and a retry repeats those (consumers' inboxes absorb the repeats)."""

    def close(self) -> None: ...


class Subscription(Protocol):
    def receive(self, timeout: float) -> list[Delivery]:
        """Waits up to `timeout` seconds for messages and returns them (maybe none)."""

    def settle(self, outcomes: list[tuple[Delivery, Outcome]]) -> None:
        """Acks, schedules a retry, or dead-letters each delivery."""

    def close(self) -> None: ...


class Transport(Protocol):
    """Creates publishers and subscriptions; each is used by one thread only."""

    def publisher(self) -> Publisher: ...

    def subscribe(self, queue: str, event_types: list[str]) -> Subscription: ...

    def declare_consumers(self, consumers: dict[str, list[str]]) -> None:
        """Declares, idempotently, each consuming service's queue(s) and its bindings to the
        event types it consumes ({service: event types}), so nothing published misses them."""

    def requeue(self, queue: str, messages: list[Message]) -> None:
        """Delivers messages to one service's queue, attempts reset, and returns once the
        transport has durably accepted them; PublishFailed otherwise (replaying dead letters)."""

    def drain_dead_letters(self, queue: str, sink: Callable[[list[Letter]], None]) -> int:
        """Hands what the transport itself dead-lettered for `queue` to sink() (which records it)
        and removes it once sink() has returned; how many."""


def retry_delays(base_ms: int, max_attempts: int) -> list[float]:
    """Backoff before attempt 2, 3, ... max_attempts: base, 4x base, 16x base..., in seconds."""
    return [base_ms * 4**i / 1000 for i in range(max(0, max_attempts - 1))]
