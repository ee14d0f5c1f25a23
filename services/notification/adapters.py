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
import email.header
import email.policy
import email.quoprimime
import email.utils
import logging
import smtplib
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from email.message import EmailMessage
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from mesh import bulk, metrics, sql
from mesh.addresses import valid_webhook_url
from mesh.errors import Aborted
from mesh.uow import UnitOfWork
from mesh.webhook_keys import SigningKeys
from services.notification import domain
from services.notification.domain import (
    Attempt,
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    Held,
    HoldStatus,
    RelayUnavailable,
    SecretRef,
    SendFailed,
    Signing,
)

log = logging.getLogger("services.notification")
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
    # The webhook's signing secrets by reference (migration 0004); "" secret id: the legacy secret.
    sa.Column("secret_id", sa.Text, nullable=False, server_default=""),
    sa.Column("key_id", sa.Text, nullable=False, server_default=""),
    sa.Column("previous_secret_id", sa.Text),
    sa.Column("previous_key_id", sa.Text),
    sa.Column("previous_expires_at", sa.DateTime(timezone=True)),  # NULL: no previous secret
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

held_notifications = sa.Table(
    "held_notifications", metadata,
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("fields", JSONB, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("settled_at", sa.DateTime(timezone=True)),
)


# The statements run per notified event and per delivery, built once: SQLAlchemy reuses their
# compiled form instead of building and hashing a new statement per call.
_CONTACT = sa.select(contacts).where(contacts.c.customer_id == sa.bindparam("id"))
_CONTACTS = sa.select(contacts).where(contacts.c.customer_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Text))))
# A transaction's deliveries in one statement at its commit, in the order queued; one the event
# already has for that channel and recipient is left out.
_DELIVERY_COLUMNS = [c.name for c in deliveries.c]
_DELIVERIES_INSERT = bulk.insert_many(deliveries, _DELIVERY_COLUMNS,
                                      "ON CONFLICT ON CONSTRAINT one_delivery_per_event_channel_recipient DO NOTHING")
# 'pending' is written into the SQL, not bound: PostgreSQL uses the partial index deliveries_due
# (WHERE status = 'pending') only for a predicate it can prove, and a prepared statement's generic
# plan cannot prove "status = $1" (measured: a sequential scan of all deliveries per dispatch).
_PENDING = deliveries.c.status == sa.literal_column(f"'{DeliveryStatus.PENDING}'")
_CHANNELS = deliveries.c.channel == sa.any_(sa.bindparam("channels", type_=ARRAY(sa.Text)))
_CLAIM_DUE = (sa.select(deliveries)
              .where(_PENDING, deliveries.c.next_attempt_at <= sa.bindparam("now"), _CHANNELS)
              .order_by(deliveries.c.next_attempt_at, deliveries.c.delivery_id)
              .limit(sa.bindparam("limit")).with_for_update(skip_locked=True))
_NEXT_DUE = sa.select(sa.func.min(deliveries.c.next_attempt_at)).where(_PENDING, _CHANNELS)
# A batch's deliveries after their attempts, in one statement, each at the attempt count it was claimed at.
_RECORD = bulk.update_many(deliveries, {"delivery_id": "id", "attempts": "before"},
                           ["status", "attempts", "last_error", "last_attempt_at", "next_attempt_at"])
_ATTEMPT_INSERT = bulk.insert_many(delivery_attempts, ["delivery_id", "attempt_no", "attempted_at", "ok", "error"])


class ContactRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._read: dict[str, Contact | None] = {}  # read in this transaction (None: no contact data)

    def read_all(self, customer_ids: list[str]) -> None:
        """Reads these customers' contacts in one statement; get() then answers from it."""
        wanted = sorted(set(customer_ids) - self._read.keys())
        if wanted:
            self._read.update(dict.fromkeys(wanted))
            for row in sql.run(self.conn, _CONTACTS, {"ids": wanted}):
                self._read[row.customer_id] = _contact(row)

    def get(self, customer_id: str) -> Contact | None:
        if customer_id in self._read:
            return self._read[customer_id]
        row = self.conn.execute(_CONTACT, {"id": customer_id}).first()
        return None if row is None else _contact(row)

    def put(self, contact: Contact) -> bool:
        """Stores the contact unless a newer version is there; returns whether it was stored."""
        s = contact.signing
        previous = s.previous if s.previous_expires_at is not None else None
        values = {"customer_id": contact.customer_id, "name": contact.name, "email": contact.email,
                  "webhook_url": contact.webhook_url, "version": contact.version,
                  "occurred_at": contact.occurred_at, "secret_id": s.current.secret_id, "key_id": s.current.key_id,
                  "previous_secret_id": previous.secret_id if previous else None,
                  "previous_key_id": previous.key_id if previous else None,
                  "previous_expires_at": s.previous_expires_at if previous else None}
        insert_contact = insert(contacts).values(**values)
        stmt = insert_contact.on_conflict_do_update(
            index_elements=[contacts.c.customer_id],
            set_={**{k: insert_contact.excluded[k] for k in values if k != "customer_id"}, "updated_at": sa.func.now()},
            where=sa.tuple_(contacts.c.version, contacts.c.occurred_at)
            < sa.tuple_(insert_contact.excluded.version, insert_contact.excluded.occurred_at),
        ).returning(sa.literal(1))
        stored = self.conn.execute(stmt).first() is not None
        if stored:
            self._read[contact.customer_id] = contact
        return stored


def _contact(row) -> Contact:
    previous = None
    if row.previous_expires_at is not None:
        previous = SecretRef(row.previous_secret_id or "", row.previous_key_id or "")
    signing = Signing(SecretRef(row.secret_id, row.key_id), previous, row.previous_expires_at)
    return Contact(row.customer_id, row.name, row.email, row.webhook_url, row.version, row.occurred_at, signing)


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
        self._queued: list[dict] = []

    def add(self, d: Delivery) -> None:
        """Queues the delivery for the commit (flush), where one the event already has for that
        channel and recipient is left out (a repeated event, or one released twice)."""
        self._queued.append({
            "delivery_id": d.delivery_id, "event_id": d.event_id, "event_type": d.event_type,
            "customer_id": d.customer_id, "channel": str(d.channel), "recipient": d.recipient, "subject": d.subject,
            "body": d.body, "data": d.data, "status": str(d.status), "attempts": d.attempts,
            "last_error": d.last_error, "created_at": d.created_at, "last_attempt_at": d.last_attempt_at,
            "next_attempt_at": d.next_attempt_at})

    def flush(self) -> None:
        """Writes the queued deliveries: one statement for the transaction (a consumer's batch)."""
        if self._queued:
            queued, self._queued = self._queued, []
            sql.run(self.conn, _DELIVERIES_INSERT, bulk.rows(queued))

    def claim_due(self, now: dt.datetime, limit: int = 1, channels: Sequence[Channel] = tuple(Channel)) -> list[Delivery]:
        """Up to `limit` pending deliveries of these channels that are due, oldest first, locked;
        rows other dispatchers hold are skipped."""
        params = {"now": now, "limit": limit, "channels": [str(c) for c in channels]}
        return [_delivery(row) for row in sql.run(self.conn, _CLAIM_DUE, params)]

    def next_due_at(self, channels: Sequence[Channel] = tuple(Channel)) -> dt.datetime | None:
        """When the earliest pending delivery of these channels is due (None: nothing pending)."""
        return self.conn.execute(_NEXT_DUE, {"channels": [str(c) for c in channels]}).scalar()

    def record(self, attempted: list[tuple[Delivery, Attempt]]) -> None:
        """Writes each delivery's state after an attempt, and the attempts themselves."""
        if not attempted:
            return
        updated = sql.run(self.conn, _RECORD, bulk.rows([{
            "id": d.delivery_id, "before": attempt.attempt_no - 1, "status": str(d.status), "attempts": d.attempts,
            "last_error": d.last_error, "last_attempt_at": d.last_attempt_at,
            "next_attempt_at": d.next_attempt_at} for d, attempt in attempted])).rowcount
        if updated != len(attempted):
            raise Aborted(f"deliveries {', '.join(d.delivery_id for d, _ in attempted)} were changed by another "
                          "dispatcher at the same time; read them again and retry")
        sql.run(self.conn, _ATTEMPT_INSERT, bulk.rows([{
            "delivery_id": attempt.delivery_id, "attempt_no": attempt.attempt_no,
            "attempted_at": attempt.attempted_at, "ok": attempt.ok, "error": attempt.error}
            for _, attempt in attempted]))

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


def _held(row) -> Held:
    return Held(event_id=row.event_id, event_type=row.event_type, customer_id=row.customer_id,
                fields=dict(row.fields), held_at=row.held_at, status=HoldStatus(row.status),
                settled_at=row.settled_at)


# Literal, not bound, for the partial indexes' sake (see _PENDING).
_WAITING = held_notifications.c.status == sa.literal_column(f"'{HoldStatus.WAITING}'")
_HOLD = (insert(held_notifications).on_conflict_do_nothing(index_elements=[held_notifications.c.event_id])
         .returning(sa.literal(1)))
_WAITING_FOR = (sa.select(held_notifications)
                .where(_WAITING, held_notifications.c.customer_id == sa.bindparam("customer_id"))
                .order_by(held_notifications.c.held_at, held_notifications.c.event_id)
                .with_for_update())
_SETTLE = (held_notifications.update()
           .where(held_notifications.c.event_id.in_(sa.bindparam("event_ids", expanding=True)), _WAITING)
           .values(status=sa.bindparam("new_status"), settled_at=sa.bindparam("at")))
_OVERDUE = (sa.select(held_notifications.c.event_id)
            .where(_WAITING, held_notifications.c.held_at <= sa.bindparam("cutoff"))
            .order_by(held_notifications.c.held_at).limit(sa.bindparam("limit"))
            .with_for_update(skip_locked=True))
_GIVE_UP = (held_notifications.update()
            .where(held_notifications.c.event_id.in_(_OVERDUE), _WAITING)
            .values(status=str(HoldStatus.NO_SUCH_CUSTOMER), settled_at=sa.bindparam("at"))
            .returning(*held_notifications.c))
_COUNT_WAITING = sa.select(sa.func.count()).select_from(held_notifications).where(_WAITING)


class HeldRepository:
    """Notifications waiting for their customer's contact data. A waiting row is settled by
    one transaction only: release locks it (FOR UPDATE) under the customer's advisory lock,
    give_up skips rows locked so (SKIP LOCKED), and both change only rows still waiting."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, h: Held) -> bool:
        """Holds the event; False (nothing written) when it is held (or was settled) already."""
        return self.conn.execute(_HOLD, {
            "event_id": h.event_id, "event_type": h.event_type, "customer_id": h.customer_id, "fields": h.fields,
            "status": str(h.status), "held_at": h.held_at, "settled_at": h.settled_at}).first() is not None

    def waiting_for(self, customer_id: str) -> list[Held]:
        """The customer's waiting rows, oldest first, locked until the transaction ends."""
        return [_held(r) for r in self.conn.execute(_WAITING_FOR, {"customer_id": customer_id})]

    def settle(self, event_ids: list[str], status: HoldStatus, at: dt.datetime) -> int:
        """Moves those of the rows that are still waiting to `status`; returns how many moved."""
        if not event_ids:
            return 0
        return self.conn.execute(_SETTLE, {"event_ids": event_ids, "new_status": str(status), "at": at}).rowcount

    def give_up(self, cutoff: dt.datetime, at: dt.datetime, limit: int) -> list[Held]:
        """Marks up to `limit` rows waiting since `cutoff` or before as NO_SUCH_CUSTOMER, oldest
        first, and returns them; rows a release holds are left to it."""
        return [_held(r) for r in self.conn.execute(_GIVE_UP, {"cutoff": cutoff, "at": at, "limit": limit})]

    def count_waiting(self) -> int:
        return self.conn.execute(_COUNT_WAITING).scalar_one()

    def list(self, query: domain.ListHeld, after: tuple[dt.datetime, str] | None, limit: int) -> list[Held]:
        """Newest first (held_at, then event_id, descending), after the given key."""
        t = held_notifications
        stmt = sa.select(t)
        if query.customer_id:
            stmt = stmt.where(t.c.customer_id == query.customer_id)
        if query.status is not None:
            stmt = stmt.where(t.c.status == str(query.status))
        if after is not None:
            stmt = stmt.where(sa.tuple_(t.c.held_at, t.c.event_id) < sa.tuple_(*after))
        stmt = stmt.order_by(t.c.held_at.desc(), t.c.event_id.desc()).limit(limit)
        return [_held(r) for r in self.conn.execute(stmt)]


class NotificationUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.contacts = ContactRepository(self.connection)
        self.deliveries = DeliveryRepository(self.connection)
        self.held = HeldRepository(self.connection)

    def flush(self) -> None:
        self.deliveries.flush()


# ---------------------------------------------------------------- senders


SMTP_TIMEOUT_SECONDS = 10.0
WEBHOOK_TIMEOUT_SECONDS = 5.0
# How long emails wait after the relay could not be reached, doubling while it stays down.
RELAY_PAUSE_SECONDS = 1.0
MAX_RELAY_PAUSE_SECONDS = 60.0


class EmailSender:
    """Plain SMTP to ERP_SMTP_URL (smtp://host:port); empty URL: every email fails.

    Sessions are kept open and reused for the next email (a new session per email was a third
    of the dispatcher's time: connect, banner, EHLO, QUIT). Emails sent at the same time (the
    dispatcher's concurrent sends) each take a session of their own: an idle one, or a new one,
    kept afterwards, so there are as many as sends ever ran at once. A session the server has
    dropped meanwhile is noticed when the next email starts, before the server accepts
    anything, so that email is sent again once on a new session.

    A relay that cannot be reached (no connection, no greeting, no EHLO) fails the email with
    RelayUnavailable: no attempt of the email's, since every email goes through that one relay.
    Emails then wait (paused_for) 1 s, 2 s, ... up to 60 s while it stays unreachable."""

    def __init__(self, smtp_url: str, sender: str, timeout: float = SMTP_TIMEOUT_SECONDS) -> None:
        self.host, self.port = parse_smtp_url(smtp_url) if smtp_url else ("", 0)
        self.sender = sender
        self.timeout = timeout
        self.domain = sender.rpartition("@")[2] or "localhost"
        self._idle: list[smtplib.SMTP] = []  # open sessions no send is using
        self._lock = threading.Lock()
        self._closed = False
        self._paused_until = 0.0  # time.monotonic() before which no session is tried
        self._pause = RELAY_PAUSE_SECONDS  # the next pause, if the relay is found down again
        self._down = ""  # why the relay was last found unreachable; "" while it answers

    def render(self, d: Delivery, now: dt.datetime) -> bytes:
        """The email as it goes on the wire (CRLF lines, RFC 5322 with a MIME text part).

        Built from strings with the email package's encoders (formataddr, Header,
        quoted-printable) instead of an EmailMessage, whose header registry parses and
        re-folds every header: ~0.75 ms an email, 40% of this service's CPU under load
        (py-spy), against ~20 us here. A non-ASCII name or subject is RFC 2047-encoded, a
        non-ASCII body goes quoted-printable; a line break in a header value, or a
        non-ASCII address, is refused (ValueError), so no header can be injected."""
        name = d.data.get("customer_name", "")
        for value in (name, d.recipient, d.subject, d.event_type, d.delivery_id):
            if "\r" in value or "\n" in value:
                raise ValueError("a header value holds a line break")
        if not d.recipient.isascii():
            raise ValueError(f"the address {d.recipient!r} is not ASCII")
        charset = "us-ascii" if d.subject.isascii() else "utf-8"
        headers = [
            ("From", self.sender),
            ("To", email.utils.formataddr((name, d.recipient), charset="utf-8")),
            ("Subject", email.header.Header(d.subject, charset, maxlinelen=78, header_name="Subject")
             .encode(linesep="\r\n")),
            ("Date", email.utils.format_datetime(now)),
            ("Message-ID", f"<{d.delivery_id}@{self.domain}>"),  # a repeat has the same id
            ("X-ERP-Delivery-Id", d.delivery_id),
            ("X-ERP-Event-Type", d.event_type),
            ("MIME-Version", "1.0"),
            ("Content-Type", 'text/plain; charset="utf-8"'),
        ]
        text = d.body.replace("\r\n", "\n").replace("\r", "\n")
        if not text.endswith("\n"):
            text += "\n"
        if text.isascii() and all(len(line) <= 998 for line in text.split("\n")):
            headers.append(("Content-Transfer-Encoding", "7bit"))
            payload = text.replace("\n", "\r\n")
        else:
            headers.append(("Content-Transfer-Encoding", "quoted-printable"))
            # quoprimime encodes a str of byte values (as email.charset does): the UTF-8 bytes, as latin-1
            payload = email.quoprimime.body_encode(text.encode("utf-8").decode("latin-1"), eol="\r\n")
        return ("".join(f"{key}: {value}\r\n" for key, value in headers) + "\r\n" + payload).encode("ascii")

    def message(self, d: Delivery, now: dt.datetime) -> EmailMessage:
        """The email as a mail reader sees it (parsed from what render() sends)."""
        return email.message_from_bytes(self.render(d, now), policy=email.policy.default)

    def send(self, d: Delivery, now: dt.datetime) -> None:
        if not self.host:
            raise SendFailed("no SMTP server configured")
        try:
            raw = self.render(d, now)
        except (ValueError, TypeError) as exc:  # e.g. a line break in the subject
            raise SendFailed(f"cannot build the email: {exc}") from exc
        try:
            self._send(raw, d.recipient)
        except smtplib.SMTPResponseException as exc:
            raise SendFailed(f"SMTP {exc.smtp_code}: {_text(exc.smtp_error)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            refused = "; ".join(f"{code} {_text(err)}" for code, err in exc.recipients.values())
            raise SendFailed(f"SMTP refused the recipient: {refused}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"SMTP {exc.__class__.__name__}: {exc}") from exc


    def _send(self, raw: bytes, recipient: str) -> None:
        with self._lock:
            session = self._idle.pop() if self._idle else None
        if session is not None:
            try:
                self._send_on(session, raw, recipient)
                return
            except smtplib.SMTPServerDisconnected:
                pass  # dropped while it was idle: this email once more, on a new session
        self._send_on(self._open(), raw, recipient)

    def paused_for(self) -> float:
        """Seconds until emails are tried again after the relay could not be reached (0: now)."""
        with self._lock:
            return max(0.0, self._paused_until - time.monotonic())

    def _open(self) -> smtplib.SMTP:
        """A new session, greeted; RelayUnavailable while paused or when the relay cannot be reached."""
        if wait := self.paused_for():
            raise RelayUnavailable(f"SMTP relay {self.host}:{self.port} unavailable ({self._down}); "
                                   f"emails wait {wait:.1f} s more")
        session = smtplib.SMTP(timeout=self.timeout)
        try:
            session.connect(self.host, self.port)
            session.ehlo_or_helo_if_needed()
        except (smtplib.SMTPException, OSError) as exc:
            _close(session)
            raise RelayUnavailable(self._found_down(exc)) from exc
        self._found_up()
        return session

    def _found_down(self, exc: Exception) -> str:
        """Pauses the emails (unless another send just did) and drops the idle sessions, which went with the relay."""
        reason = f"{exc.__class__.__name__}: {exc}"[:200]
        with self._lock:
            now = time.monotonic()
            first, pause = not self._down, self._pause
            if now >= self._paused_until:
                self._paused_until, self._pause = now + pause, min(pause * 2, MAX_RELAY_PAUSE_SECONDS)
                metrics.RELAY_UNAVAILABLE.inc()
            self._down, idle, self._idle = reason, self._idle, []
        for session in idle:
            _close(session)
        log.log(logging.WARNING if first else logging.DEBUG, "SMTP relay %s:%s unavailable (%s): emails wait %g s, "
                "no attempt counted", self.host, self.port, reason, pause)
        return f"SMTP relay {self.host}:{self.port} unavailable ({reason})"

    def _found_up(self) -> None:
        with self._lock:
            was_down, self._down, self._pause = self._down, "", RELAY_PAUSE_SECONDS
        if was_down:
            log.info("SMTP relay %s:%s reachable again: emails go out", self.host, self.port)

    def _send_on(self, session: smtplib.SMTP, raw: bytes, recipient: str) -> None:
        try:
            session.sendmail(self.sender, [recipient], raw)
        except smtplib.SMTPRecipientsRefused:
            self._keep(session)  # the session is fine: only this recipient was refused
            raise
        except BaseException:
            _close(session)  # the session's state is unknown: the next email starts on another
            raise
        self._keep(session)

    def _keep(self, session: smtplib.SMTP) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(session)
                return
        _quit(session)

    def close(self) -> None:
        with self._lock:
            self._closed, idle, self._idle = True, self._idle, []
        for session in idle:
            _quit(session)


def _quit(session: smtplib.SMTP) -> None:
    try:
        session.quit()
    except (smtplib.SMTPException, OSError):
        pass
    _close(session)


def _close(session: smtplib.SMTP) -> None:
    try:
        session.close()
    except OSError:
        pass


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
    """POSTs the signed JSON body; any 2xx answer is a delivery.

    Signed with the customer's own secrets (derived from the master keys, see mesh.webhook_keys);
    a party with no secret of its own (a supplier, a customer whose webhook predates
    per-customer secrets) with the service-wide legacy secret."""

    def __init__(self, secret: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS, keys: SigningKeys | None = None) -> None:
        self.secret = secret
        self.timeout = timeout
        self.keys = keys
        self.opener = urllib.request.build_opener(_NoRedirects)

    def secrets(self, d: Delivery, contact: Contact | None, now: dt.datetime) -> list[str]:
        """The secrets that sign this delivery at `now`, the current one first."""
        if contact is None or contact.customer_id != d.customer_id:
            return [self.secret]
        found = []
        for position, ref in enumerate(contact.signing.refs_at(now)):
            secret = self.secret if ref == domain.LEGACY else (
                self.keys.secret(d.customer_id, ref.secret_id, ref.key_id) if self.keys else None)
            if secret is not None:
                found.append(secret)
            elif position == 0:
                raise SendFailed(f"no webhook master key has id {ref.key_id!r}, the key of this customer's "
                                 "secret: add it to ERP_WEBHOOK_SIGNING_KEYS_RETIRED")
            else:  # the previous secret's key is gone: sign with the current one only
                log.warning("customer %s: no webhook master key has id %r (its previous secret's); "
                            "signed with the current secret only", d.customer_id, ref.key_id)
        return found

    def send(self, d: Delivery, now: dt.datetime, contact: Contact | None = None) -> None:
        if not valid_webhook_url(d.recipient):
            raise SendFailed("webhook URL is not an http(s) URL")
        body = domain.webhook_body(d)
        request = urllib.request.Request(d.recipient, data=body, method="POST",
                                         headers=domain.webhook_headers(d, self.secrets(d, contact, now), body, now))
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
        self.email_sender, self.webhook_sender = email_sender, webhook_sender

    def paused(self) -> dict[Channel, float]:
        """The channels whose relay could not be reached, with the seconds until they are tried again."""
        wait = self.email_sender.paused_for()
        return {Channel.EMAIL: wait} if wait else {}

    def send(self, d: Delivery, now: dt.datetime, contact: Contact | None = None) -> None:
        """contact: the customer's, for a webhook's signing secrets."""
        if d.channel is Channel.WEBHOOK:
            self.webhook_sender.send(d, now, contact)
        elif d.channel is Channel.EMAIL:
            self.email_sender.send(d, now)
        else:
            raise KeyError(d.channel)
