"""Notification's adapters: tables, repositories and its unit of work (SQLAlchemy Core),
and the two senders (SMTP through smtplib, signed webhooks through urllib.request).

One delivery row per (event, channel, recipient): the UNIQUE constraint makes a
repeated event create nothing. The dispatcher claims a due row with
FOR UPDATE SKIP LOCKED, sends it while holding that lock, and records the attempt in
the same transaction; other dispatchers skip the locked row, so no delivery is sent
twice while its row stays. (A crash after the send and before the commit sends it
again on the next claim: receivers drop the repeat by its delivery id.)
"""
from __future__ import annotations

import datetime as dt
import email.utils
import smtplib
import threading
import urllib.error
import urllib.request
from email.message import EmailMessage
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert

from mesh.uow import UnitOfWork
from services.notification import domain
from services.notification.domain import Attempt, Channel, Contact, Delivery, DeliveryStatus, SendFailed

metadata = sa.MetaData()

contacts = sa.Table(
    "contacts", metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

deliveries = sa.Table(
    "deliveries", metadata,
    sa.Column("delivery_id", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("data", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("event_id", "channel", "recipient", name="one_delivery_per_event_channel_recipient"),
)

delivery_attempts = sa.Table(
    "delivery_attempts", metadata,
    sa.Column("delivery_id", sa.Text, sa.ForeignKey("deliveries.delivery_id"), primary_key=True),
    sa.Column("attempt_no", sa.Integer, primary_key=True),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
)


# The statements run per notified event and per delivery, built once: SQLAlchemy reuses their
# compiled form instead of building and hashing a new statement per call.
_CONTACT = sa.select(contacts).where(contacts.c.customer_id == sa.bindparam("id"))
_DELIVERY_INSERT = (insert(deliveries).on_conflict_do_nothing(constraint="one_delivery_per_event_channel_recipient")
                    .returning(sa.literal(1)))
_CLAIM_DUE = (sa.select(deliveries)
              .where(deliveries.c.status == str(DeliveryStatus.PENDING),
                     deliveries.c.next_attempt_at <= sa.bindparam("now"))
              .order_by(deliveries.c.next_attempt_at, deliveries.c.delivery_id)
              .limit(1).with_for_update(skip_locked=True))
_RECORD = deliveries.update().where(deliveries.c.delivery_id == sa.bindparam("id"),
                                    deliveries.c.attempts == sa.bindparam("before"))
_ATTEMPT_INSERT = delivery_attempts.insert()


class ContactRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def get(self, customer_id: str) -> Contact | None:
        row = self.conn.execute(_CONTACT, {"id": customer_id}).first()
        if row is None:
            return None
        return Contact(row.customer_id, row.name, row.email, row.webhook_url, row.version, row.occurred_at)

    def put(self, contact: Contact) -> bool:
        """Stores the contact unless a newer version is there; returns whether it was stored."""
        values = {"customer_id": contact.customer_id, "name": contact.name, "email": contact.email,
                  "webhook_url": contact.webhook_url, "version": contact.version,
                  "occurred_at": contact.occurred_at}
        stmt = insert(contacts).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[contacts.c.customer_id],
            set_={**{k: stmt.excluded[k] for k in values if k != "customer_id"}, "updated_at": sa.func.now()},
            where=sa.tuple_(contacts.c.version, contacts.c.occurred_at)
            < sa.tuple_(stmt.excluded.version, stmt.excluded.occurred_at),
        ).returning(sa.literal(1))
        return self.conn.execute(stmt).first() is not None


def _delivery(row) -> Delivery:
    return Delivery(
        delivery_id=row.delivery_id, event_id=row.event_id, event_type=row.event_type, customer_id=row.customer_id,
        channel=Channel(row.channel), recipient=row.recipient, subject=row.subject, body=row.body,
        data=dict(row.data), created_at=row.created_at, next_attempt_at=row.next_attempt_at,
        status=DeliveryStatus(row.status), attempts=row.attempts, last_error=row.last_error,
        last_attempt_at=row.last_attempt_at)


class DeliveryRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, d: Delivery) -> bool:
        """Inserts the delivery; False (and nothing written) when the event already has one
        for that channel and recipient."""
        return self.conn.execute(_DELIVERY_INSERT, {
            "delivery_id": d.delivery_id, "event_id": d.event_id, "event_type": d.event_type,
            "customer_id": d.customer_id, "channel": str(d.channel), "recipient": d.recipient, "subject": d.subject,
            "body": d.body, "data": d.data, "status": str(d.status), "attempts": d.attempts,
            "last_error": d.last_error, "created_at": d.created_at, "last_attempt_at": d.last_attempt_at,
            "next_attempt_at": d.next_attempt_at}).first() is not None

    def claim_due(self, now: dt.datetime) -> Delivery | None:
        """The next pending delivery that is due, locked; rows other dispatchers hold are skipped."""
        row = self.conn.execute(_CLAIM_DUE, {"now": now}).first()
        return _delivery(row) if row else None

    def next_due_at(self) -> dt.datetime | None:
        """When the earliest pending delivery is due (None: nothing pending)."""
        return self.conn.execute(sa.select(sa.func.min(deliveries.c.next_attempt_at))
                                 .where(deliveries.c.status == str(DeliveryStatus.PENDING))).scalar()

    def record(self, d: Delivery, attempt: Attempt) -> None:
        """Writes the delivery's state after an attempt, and the attempt itself."""
        updated = self.conn.execute(_RECORD, {
            "id": d.delivery_id, "before": attempt.attempt_no - 1, "status": str(d.status), "attempts": d.attempts,
            "last_error": d.last_error, "last_attempt_at": d.last_attempt_at,
            "next_attempt_at": d.next_attempt_at}).rowcount
        if updated != 1:
            raise RuntimeError(f"delivery {d.delivery_id} changed concurrently")
        self.conn.execute(_ATTEMPT_INSERT, {
            "delivery_id": attempt.delivery_id, "attempt_no": attempt.attempt_no,
            "attempted_at": attempt.attempted_at, "ok": attempt.ok, "error": attempt.error})

    def list(self, query: domain.ListDeliveries, after: tuple[dt.datetime, str] | None, limit: int) -> list[Delivery]:
        """Newest first (created_at, then delivery_id, descending), after the given key."""
        stmt = sa.select(deliveries)
        if query.recipient:
            stmt = stmt.where(deliveries.c.recipient == query.recipient)
        if query.customer_id:
            stmt = stmt.where(deliveries.c.customer_id == query.customer_id)
        if query.event_id:
            stmt = stmt.where(deliveries.c.event_id == query.event_id)
        if after is not None:
            stmt = stmt.where(sa.tuple_(deliveries.c.created_at, deliveries.c.delivery_id) < sa.tuple_(*after))
        stmt = stmt.order_by(deliveries.c.created_at.desc(), deliveries.c.delivery_id.desc()).limit(limit)
        return [_delivery(r) for r in self.conn.execute(stmt)]


class NotificationUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.contacts = ContactRepository(self.connection)
        self.deliveries = DeliveryRepository(self.connection)


# ---------------------------------------------------------------- senders


SMTP_TIMEOUT_SECONDS = 10.0
WEBHOOK_TIMEOUT_SECONDS = 5.0


class EmailSender:
    """Plain SMTP to ERP_SMTP_URL (smtp://host:port); empty URL: every email fails.

    One SMTP session is kept open and reused for the next email (a new session per email
    was a third of the dispatcher's time: connect, banner, EHLO, QUIT). A session the
    server has dropped meanwhile is noticed when the next email starts, before the
    server accepts anything, so that email is sent again once on a new session."""

    def __init__(self, smtp_url: str, sender: str, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.host, self.port = parse_smtp_url(smtp_url) if smtp_url else ("", 0)
        self.sender = sender
        self.timeout = timeout
        self.domain = sender.rpartition("@")[2] or "localhost"
        self._session: smtplib.SMTP | None = None
        self._lock = threading.Lock()

    def message(self, d: Delivery, now: dt.datetime) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = email.utils.formataddr((d.data.get("customer_name", ""), d.recipient))
        msg["Subject"] = d.subject
        msg["Date"] = email.utils.format_datetime(now)
        msg["Message-ID"] = f"<{d.delivery_id}@{self.domain}>"  # a repeat has the same id
        msg["X-ERP-Delivery-Id"] = d.delivery_id
        msg["X-ERP-Event-Type"] = d.event_type
        msg.set_content(d.body)
        return msg

    def send(self, d: Delivery, now: dt.datetime) -> None:
        if not self.host:
            raise SendFailed("no SMTP server configured")
        try:
            msg = self.message(d, now)
        except (ValueError, TypeError) as exc:  # e.g. an address the email package refuses
            raise SendFailed(f"cannot build the email: {exc}") from exc
        try:
            with self._lock:
                self._send(msg, d.recipient)
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{code} {_text(err)}" for code, err in exc.recipients.values())
            raise SendFailed(f"SMTP refused the recipient: {refused}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"SMTP {exc.__class__.__name__}: {exc}") from exc


    def _send(self, msg: EmailMessage, recipient: str) -> None:
        reused = self._session is not None
        try:
            if self._session is None:
                self._session = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._session.send_message(msg, from_addr=self.sender, to_addrs=[recipient])
        except smtplib.SMTPServerDisconnected:
            self._drop()
            if not reused:
                raise
            self._session = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            self._session.send_message(msg, from_addr=self.sender, to_addrs=[recipient])
        except smtplib.SMTPRecipientsRefused:
            raise  # the session is fine: only this recipient was refused
        except (smtplib.SMTPException, OSError):
            self._drop()  # the session's state is unknown: start the next email on a new one
            raise

    def _drop(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except OSError:
                pass

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                try:
                    self._session.quit()
                except (smtplib.SMTPException, OSError):
                    pass
            self._drop()


def parse_smtp_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"ERP_SMTP_URL must look like smtp://host:port, got {url!r}")
    return parts.hostname, parts.port or 25


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not a delivery (and would turn the POST into a GET)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookSender:
    """POSTs the signed JSON body; any 2xx answer is a delivery."""

    def __init__(self, secret: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> None:
        self.secret = secret
        self.timeout = timeout
        self.opener = urllib.request.build_opener(_NoRedirects)

    def send(self, d: Delivery, now: dt.datetime) -> None:
        if not domain.valid_webhook_url(d.recipient):
            raise SendFailed("webhook URL is not an http(s) URL")
        body = domain.webhook_body(d)
        request = urllib.request.Request(d.recipient, data=body, method="POST",
                                         headers=domain.webhook_headers(d, self.secret, body, now))
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            raise SendFailed(f"webhook answered HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise SendFailed(f"webhook not reachable: {exc.reason}") from exc
        except TimeoutError as exc:
            raise SendFailed(f"webhook did not answer within {self.timeout:g} s") from exc
        except (OSError, ValueError) as exc:
            raise SendFailed(f"webhook {exc.__class__.__name__}: {exc}") from exc
        if not 200 <= status < 300:
            raise SendFailed(f"webhook answered HTTP {status}")


class Senders:
    """Sends a delivery by its channel."""

    def __init__(self, email_sender: EmailSender, webhook_sender: WebhookSender) -> None:
        self.by_channel = {Channel.EMAIL: email_sender, Channel.WEBHOOK: webhook_sender}

    def send(self, d: Delivery, now: dt.datetime) -> None:
        self.by_channel[d.channel].send(d, now)
