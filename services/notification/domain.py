"""Notification's rules: who can be reached how, what one delivery is, how an attempt
moves it (retry with exponential backoff, then DELIVERED or FAILED), what a signed
webhook request carries, and what a notification held for an unknown customer is.
No I/O here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence

from mesh.addresses import MAX_URL, valid_email, valid_webhook_url
from mesh.errors import Violations

MAX_NAME = 200
MAX_ID = 64
MAX_PARTY_ID = 80  # a customer id, or "supplier:" and a supplier id
MAX_ERROR = 500
# However many attempts are configured, no retry waits longer than this.
MAX_RETRY_DELAY_SECONDS = 3600.0


class SendFailed(Exception):
    """The recipient did not accept a notification; the message says why."""


class RelayUnavailable(SendFailed):
    """The server every notification of a channel goes through (the SMTP relay) could not be
    reached: the notification was not attempted, so the attempt does not count against it, and
    its channel waits (Senders.paused) instead of spending every queued notification's attempts
    on one outage."""


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """Names a customer's webhook secret: derived from the master key key_id and secret_id
    (mesh.webhook_keys.derive). secret_id "" is the service-wide ERP_WEBHOOK_SECRET (LEGACY)."""

    secret_id: str
    key_id: str


LEGACY = SecretRef("", "")


@dataclasses.dataclass(frozen=True)
class Signing:
    """Which secrets sign a customer's webhook deliveries (from CustomerUpdated): the current
    one, and during a rotation's overlap window the one it replaced."""

    current: SecretRef = LEGACY
    previous: SecretRef | None = None
    previous_expires_at: dt.datetime | None = None

    def refs_at(self, now: dt.datetime) -> list[SecretRef]:
        """The secrets a delivery sent at `now` is signed with, the current one first."""
        if self.previous is None or self.previous_expires_at is None or now >= self.previous_expires_at:
            return [self.current]
        return [self.current, self.previous]


@dataclasses.dataclass(frozen=True)
class Contact:
    """What notification keeps of a customer (a projection of CustomerUpdated)."""

    customer_id: str
    name: str
    email: str  # empty: no email
    webhook_url: str  # empty: no webhook
    version: int  # the customer's aggregate version; older updates are ignored
    occurred_at: dt.datetime  # when crm made the change (orders updates of one version)
    signing: Signing = Signing()


@dataclasses.dataclass(frozen=True)
class Notify:
    """An event a customer is told about, with its template's fields."""

    event_id: str
    event_type: str
    customer_id: str
    fields: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    body: str


@dataclasses.dataclass(frozen=True)
class Delivery:
    delivery_id: str
    event_id: str
    event_type: str
    customer_id: str
    channel: Channel
    recipient: str  # email address or webhook URL
    subject: str
    body: str
    data: dict[str, str]  # the template's fields, sent in the webhook's JSON
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: int = 0
    last_error: str = ""
    last_attempt_at: dt.datetime | None = None


@dataclasses.dataclass(frozen=True)
class Attempt:
    delivery_id: str
    attempt_no: int
    attempted_at: dt.datetime
    error: str  # empty when it succeeded

    @property
    def ok(self) -> bool:
        return not self.error


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("ERP_NOTIFICATION_MAX_ATTEMPTS must be at least 1")
        if not self.base_seconds > 0:
            raise ValueError("ERP_NOTIFICATION_RETRY_BASE_SECONDS must be positive")

    def delay_after(self, attempt_no: int) -> float:
        """Wait after failed attempt n (1-based): base, 2x base, 4x base, ... capped."""
        return min(self.base_seconds * 2.0 ** (attempt_no - 1), MAX_RETRY_DELAY_SECONDS)


# ---------------------------------------------------------------- contacts


def contact(customer_id: str, name: str, email: str, webhook_url: str, version: int,
            occurred_at: dt.datetime, signing: Signing = Signing()) -> tuple[Contact, list[str]]:
    """The contact a CustomerUpdated describes, and the problems found in it. Events are
    not trusted: an address that cannot be used is dropped (that channel is off)."""
    problems = []
    email, webhook_url = email.strip(), webhook_url.strip()
    if email and not valid_email(email):
        problems.append(f"email {email[:80]!r} is not a usable address")
        email = ""
    if webhook_url and not valid_webhook_url(webhook_url):
        problems.append(f"webhook_url {webhook_url[:80]!r} is not an http(s) URL")
        webhook_url = ""
    for what, ref in (("current", signing.current), ("previous", signing.previous)):
        if ref is not None and (len(ref.secret_id) > MAX_ID or len(ref.key_id) > MAX_ID):
            problems.append(f"the {what} webhook secret's ids are longer than {MAX_ID} characters")
            webhook_url, signing = "", Signing()
    return Contact(customer_id, " ".join(name.split())[:MAX_NAME], email, webhook_url, version,
                   occurred_at, signing), problems


def newer(current: Contact | None, update: Contact) -> bool:
    """Whether an update replaces what is known (events may arrive out of order)."""
    return current is None or (update.version, update.occurred_at) > (current.version, current.occurred_at)


# ---------------------------------------------------------------- deliveries


def plan(contact_: Contact, cmd: Notify, rendered: Rendered, new_id: Callable[[], str],
         now: dt.datetime) -> list[Delivery]:
    """One delivery per channel the customer has, due at once."""
    channels = [(Channel.EMAIL, contact_.email), (Channel.WEBHOOK, contact_.webhook_url)]
    return [Delivery(delivery_id=new_id(), event_id=cmd.event_id, event_type=cmd.event_type,
                     customer_id=cmd.customer_id, channel=channel, recipient=recipient,
                     subject=rendered.subject, body=rendered.body, data=dict(cmd.fields),
                     created_at=now, next_attempt_at=now)
            for channel, recipient in channels if recipient]


def attempted(delivery: Delivery, now: dt.datetime, error: str, policy: RetryPolicy) -> tuple[Delivery, Attempt]:
    """The delivery after one attempt (error empty: it succeeded), and the attempt's record."""
    if delivery.status is not DeliveryStatus.PENDING:
        raise ValueError(f"delivery {delivery.delivery_id} is {delivery.status}, not pending")
    number = delivery.attempts + 1
    error = error[:MAX_ERROR]
    attempt = Attempt(delivery.delivery_id, number, now, error)
    if not error:
        status, next_at = DeliveryStatus.DELIVERED, delivery.next_attempt_at
    elif number >= policy.max_attempts:
        status, next_at = DeliveryStatus.FAILED, delivery.next_attempt_at
    else:
        status, next_at = DeliveryStatus.PENDING, now + dt.timedelta(seconds=policy.delay_after(number))
    return dataclasses.replace(delivery, status=status, attempts=number, last_error=error, last_attempt_at=now,
                               next_attempt_at=next_at), attempt


# ---------------------------------------------------------------- held for an unknown customer


class HoldStatus(enum.StrEnum):
    WAITING = "waiting"  # for the customer's CustomerUpdated
    RELEASED = "released"  # it came: the deliveries were queued
    NO_SUCH_CUSTOMER = "no_such_customer"  # it did not come in time: nothing is sent (final)


@dataclasses.dataclass(frozen=True)
class Held:
    """An event about a customer notification had no contact data for when it came.

    crm's CustomerUpdated and the order-to-cash events travel on different queues, so an
    event may overtake its customer: it waits, as a business outcome rather than a retry
    (retries would spend the consumer's attempts and dead-letter it), until the customer's
    contact data comes or the wait is over (an order crm rejected for an unknown customer)."""

    event_id: str
    event_type: str
    customer_id: str
    fields: dict[str, str]  # the template's fields from the event
    held_at: dt.datetime
    status: HoldStatus = HoldStatus.WAITING
    settled_at: dt.datetime | None = None  # released or given up

    @property
    def notify(self) -> Notify:
        return Notify(self.event_id, self.event_type, self.customer_id, dict(self.fields))


def hold(cmd: Notify, now: dt.datetime) -> Held:
    return Held(cmd.event_id, cmd.event_type, cmd.customer_id, dict(cmd.fields), now)


# ---------------------------------------------------------------- webhooks


def webhook_body(delivery: Delivery) -> bytes:
    """The JSON a webhook receives (keys sorted, compact: what is signed is what is sent)."""
    return json.dumps({
        "delivery_id": delivery.delivery_id, "event_id": delivery.event_id, "event_type": delivery.event_type,
        "customer_id": delivery.customer_id, "subject": delivery.subject, "text": delivery.body,
        "data": delivery.data,
    }, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """One signature: "sha256=" + hex HMAC-SHA256(secret, f"{timestamp}.{body}")."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signatures(secrets: str | Sequence[str], timestamp: str, body: bytes) -> str:
    """X-ERP-Signature: one signature per secret, comma-separated, the current secret's first
    (two during a rotation's overlap window). A receiver accepts the request when any entry
    equals its own signature of the request (see README, "Webhook signatures")."""
    if isinstance(secrets, str):
        secrets = [secrets]
    return ",".join(signature(secret, timestamp, body) for secret in secrets)


def verify(secret: str, header: str, timestamp: str, body: bytes) -> bool:
    """The receiver's check (without the timestamp's freshness): some entry is signed with `secret`."""
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(entry.strip(), expected) for entry in header.split(","))


def webhook_headers(delivery: Delivery, secret: str | Sequence[str], body: bytes,
                    now: dt.datetime) -> dict[str, str]:
    timestamp = str(int(now.timestamp()))
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "erp-notification/1",
        "X-ERP-Delivery-Id": delivery.delivery_id,
        "X-ERP-Event-Type": delivery.event_type,
        "X-ERP-Timestamp": timestamp,
        "X-ERP-Signature": signatures(secret, timestamp, body),
    }


# ---------------------------------------------------------------- listing


@dataclasses.dataclass(frozen=True)
class ListDeliveries:
    page_size: int
    page_token: str
    recipient: str = ""
    customer_id: str = ""
    event_id: str = ""

    @property
    def filters(self) -> dict[str, str]:
        return {"recipient": self.recipient, "customer_id": self.customer_id, "event_id": self.event_id}


@dataclasses.dataclass(frozen=True)
class ListHeld:
    page_size: int
    page_token: str
    customer_id: str = ""
    status: HoldStatus | None = None  # None: any

    @property
    def filters(self) -> dict[str, str]:
        return {"customer_id": self.customer_id, "status": str(self.status or "")}


def validate_list_held(query: ListHeld) -> None:
    v = Violations()
    v.check(query.page_size >= 0, "page.page_size", "must not be negative")
    v.check(len(query.customer_id) <= MAX_PARTY_ID, "customer_id", f"must be at most {MAX_PARTY_ID} characters")
    v.raise_if_any()


def validate_list(query: ListDeliveries) -> None:
    v = Violations()
    v.check(query.page_size >= 0, "page.page_size", "must not be negative")
    v.check(len(query.recipient) <= MAX_URL, "recipient", f"must be at most {MAX_URL} characters")
    v.check(len(query.customer_id) <= MAX_PARTY_ID, "customer_id", f"must be at most {MAX_PARTY_ID} characters")
    v.check(len(query.event_id) <= MAX_ID, "event_id", f"must be at most {MAX_ID} characters")
    v.raise_if_any()
