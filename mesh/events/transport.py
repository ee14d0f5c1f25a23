"""What the relay and the consumers need from a transport, whichever it is."""
from __future__ import annotations

import dataclasses
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
    reason: str


Outcome = Ack | Retry | DeadLetter


@dataclasses.dataclass(frozen=True)
class Message:
    event_type: str
    event_id: str
    body: bytes


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

    def dead_letters(self, queue: str, limit: int) -> list[dict]: ...

    def replay_dead_letters(self, queue: str) -> int: ...


def retry_delays(base_ms: int, max_attempts: int) -> list[float]:
    """Backoff before attempt 2, 3, ... max_attempts: base, 4x base, 16x base..., in seconds."""
    return [base_ms * 4**i / 1000 for i in range(max(0, max_attempts - 1))]
