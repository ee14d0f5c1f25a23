"""In-memory stand-ins for notification's repositories and senders.

They keep the rules the database enforces (the UNIQUE (event_id, channel, recipient)
of deliveries, the newer-version-only upsert of contacts, the attempts check of
record(), FOR UPDATE SKIP LOCKED as a set of rows "another dispatcher holds"), so a
handler that breaks one fails here as it would against PostgreSQL. Stored values are
frozen dataclasses, so a handler that changes one and forgets to save it changes nothing.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

from mesh.errors import Aborted
from services.notification import domain
from services.notification.domain import (
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    Held,
    HoldStatus,
    SendFailed,
)
from tests.unit.fakes import FakeIntegrityError, FakeUnitOfWork


class FakeContacts:
    def __init__(self) -> None:
        self.rows: dict[str, Contact] = {}
        self.puts = 0

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def read_all(self, customer_ids: list[str]) -> None:
        """The real one reads them in one statement for get(); here get() reads the dict anyway."""

    def get(self, customer_id: str) -> Contact | None:
        return self.rows.get(customer_id)

    def put(self, contact: Contact) -> bool:
        """INSERT ... ON CONFLICT DO UPDATE WHERE (version, occurred_at) < the new one's."""
        self.puts += 1
        current = self.rows.get(contact.customer_id)
        if current is not None and (current.version, current.occurred_at) >= (contact.version, contact.occurred_at):
            return False
        self.rows[contact.customer_id] = contact
        return True


class FakeDeliveries:
    def __init__(self) -> None:
        self.rows: dict[str, Delivery] = {}
        self.attempt_rows: list[Attempt] = []
        self.locked_elsewhere: set[str] = set()  # rows another dispatcher holds (SKIP LOCKED skips them)
        self.claimed: list[str] = []

    def snapshot(self):
        return dict(self.rows), list(self.attempt_rows)

    def restore(self, snap) -> None:
        rows, attempts = snap
        self.rows, self.attempt_rows = dict(rows), list(attempts)

    def add(self, d: Delivery) -> None:
        """Written at once here; the real one writes at the commit, which nothing before it reads."""
        if d.delivery_id in self.rows:
            raise FakeIntegrityError(f"duplicate delivery id {d.delivery_id}")
        if any((r.event_id, r.channel, r.recipient) == (d.event_id, d.channel, d.recipient)
               for r in self.rows.values()):
            return  # ON CONFLICT (event_id, channel, recipient) DO NOTHING
        self.rows[d.delivery_id] = d

    def get(self, delivery_id: str) -> Delivery | None:
        return self.rows.get(delivery_id)

    def claim_due(self, now: dt.datetime, limit: int = 1, channels=tuple(Channel)) -> list[Delivery]:
        due = sorted((d for d in self.rows.values()
                      if d.status is DeliveryStatus.PENDING and d.next_attempt_at <= now and d.channel in channels
                      and d.delivery_id not in self.locked_elsewhere),
                     key=lambda d: (d.next_attempt_at, d.delivery_id))[:limit]
        self.claimed.extend(d.delivery_id for d in due)
        return due

    def next_due_at(self, channels=tuple(Channel)) -> dt.datetime | None:
        pending = [d.next_attempt_at for d in self.rows.values()
                   if d.status is DeliveryStatus.PENDING and d.channel in channels]
        return min(pending, default=None)

    def record(self, attempted: list[tuple[Delivery, Attempt]]) -> None:
        for d, attempt in attempted:
            stored = self.rows.get(d.delivery_id)
            if stored is None or stored.attempts != attempt.attempt_no - 1:
                raise Aborted(f"delivery {d.delivery_id} changed concurrently")
            if d.status is not DeliveryStatus.PENDING and d.attempts == 0:
                raise FakeIntegrityError("settled_after_an_attempt")
            if attempt.ok != (attempt.error == ""):
                raise FakeIntegrityError("ok_means_no_error")
            self.rows[d.delivery_id] = d
            self.attempt_rows.append(attempt)

    def attempts(self, delivery_id: str) -> list[Attempt]:
        return sorted((a for a in self.attempt_rows if a.delivery_id == delivery_id), key=lambda a: a.attempt_no)

    def list(self, query: domain.ListDeliveries, after: tuple[dt.datetime, str] | None, limit: int) -> list[Delivery]:
        found = [d for d in self.rows.values()
                 if (not query.recipient or d.recipient == query.recipient)
                 and (not query.customer_id or d.customer_id == query.customer_id)
                 and (not query.event_id or d.event_id == query.event_id)
                 and (after is None or (d.created_at, d.delivery_id) < after)]
        found.sort(key=lambda d: (d.created_at, d.delivery_id), reverse=True)
        return found[:limit]


class FakeHeld:
    """held_notifications: one row per event (ON CONFLICT DO NOTHING); only waiting rows move."""

    def __init__(self) -> None:
        self.rows: dict[str, Held] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, h: Held) -> bool:
        if h.event_id in self.rows:
            return False
        self.rows[h.event_id] = h
        return True

    def waiting_for(self, customer_id: str) -> list[Held]:
        return sorted((h for h in self.rows.values()
                       if h.customer_id == customer_id and h.status is HoldStatus.WAITING),
                      key=lambda h: (h.held_at, h.event_id))

    def settle(self, event_ids: list[str], status: HoldStatus, at: dt.datetime) -> int:
        moved = [e for e in event_ids if e in self.rows and self.rows[e].status is HoldStatus.WAITING]
        for e in moved:
            self.rows[e] = dataclasses.replace(self.rows[e], status=status, settled_at=at)
        return len(moved)

    def give_up(self, cutoff: dt.datetime, at: dt.datetime, limit: int) -> list[Held]:
        overdue = sorted((h for h in self.rows.values() if h.status is HoldStatus.WAITING and h.held_at <= cutoff),
                         key=lambda h: h.held_at)[:limit]
        self.settle([h.event_id for h in overdue], HoldStatus.NO_SUCH_CUSTOMER, at)
        return [self.rows[h.event_id] for h in overdue]

    def count_waiting(self) -> int:
        return sum(h.status is HoldStatus.WAITING for h in self.rows.values())

    def list(self, query: domain.ListHeld, after: tuple[dt.datetime, str] | None, limit: int) -> list[Held]:
        found = [h for h in self.rows.values()
                 if (not query.customer_id or h.customer_id == query.customer_id)
                 and (query.status is None or h.status is query.status)
                 and (after is None or (h.held_at, h.event_id) < after)]
        found.sort(key=lambda h: (h.held_at, h.event_id), reverse=True)
        return found[:limit]


def fake_uow() -> FakeUnitOfWork:
    return FakeUnitOfWork(contacts=FakeContacts(), deliveries=FakeDeliveries(), held=FakeHeld())


@dataclasses.dataclass
class Sent:
    delivery_id: str
    channel: Channel
    recipient: str
    at: dt.datetime


class FakeSenders:
    """Records every send. Scripted outcomes per recipient: each send takes the next one
    (an error text fails it, "" succeeds); with none left, the send succeeds."""

    def __init__(self, script: dict[str, list[str]] | None = None, crash: dict[str, Exception] | None = None) -> None:
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.crash = crash or {}
        self.sent: list[Sent] = []
        self.contacts: list = []  # the contact each send was given (a webhook's signing secrets)
        self.paused_channels: dict[Channel, float] = {}  # as Senders.paused() answers

    def paused(self) -> dict[Channel, float]:
        return dict(self.paused_channels)

    def send(self, d: Delivery, now: dt.datetime, contact=None) -> None:
        self.sent.append(Sent(d.delivery_id, d.channel, d.recipient, now))
        self.contacts.append(contact)
        if d.recipient in self.crash:
            raise self.crash[d.recipient]
        outcomes = self.script.get(d.recipient)
        error = outcomes.pop(0) if outcomes else ""
        if error:
            raise SendFailed(error)

    def to(self, recipient: str) -> list[Sent]:
        return [s for s in self.sent if s.recipient == recipient]
