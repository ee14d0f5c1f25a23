"""The notification service in-process on every engine set, fed real events through a
probe service's outbox and relay (or its consumer directly), delivering to a real SMTP
server (aiosmtpd) and a real HTTP webhook receiver that checks the HMAC signature."""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from grpc_status import rpc_status
from prometheus_client import REGISTRY

from erp.common.v1 import money_pb2, paging_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.notification.v1 import notification_pb2 as pb
from erp.notification.v1 import notification_pb2_grpc
from mesh import db, service
from mesh.events import envelope as envelopes
from mesh.events.amqp import AmqpTransport
from mesh.events.consumer import Consumer
from mesh.events.pgbus import PgTransport
from mesh.events.relay import Relay
from mesh.events.transport import Ack, Delivery
from mesh.service import libpq_dsn
from mesh.uow import UnitOfWork
from services.devrun import free_ports
from services.notification import adapters, domain, handlers
from services.notification import events as notification_events
from services.notification.adapters import EmailSender, WebhookSender, delivery_attempts
from services.notification.service import spec as notification_spec
from tests import support
from tests.interleaving import PausePoint, interleave

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"
SECRET = "shared-test-secret"
RETRY_BASE = 0.05
EMAIL_DOMAIN = "notify.example.test"


def free_port() -> int:
    return free_ports(1)[0]


# ---------------------------------------------------------------- a real SMTP server


class Mailbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [msg for rcpt, msg in self.messages if address in rcpt]


@pytest.fixture(scope="module")
def smtp():
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield mailbox, f"smtp://127.0.0.1:{controller.port}"
    controller.stop()


# ---------------------------------------------------------------- a real webhook receiver


@dataclasses.dataclass
class Hit:
    path: str
    delivery_id: str
    event_type: str
    signature_ok: bool
    status: int
    body: dict


class Receiver:
    """An HTTP server that checks X-ERP-Signature against the shared secret (and that the
    timestamp is fresh), answers 401 when it does not match, and otherwise answers what
    its script says for the path (default 200). It records every request."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.hits: list[Hit] = []
        self.script: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.handle(self, body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def handle(self, request, body: bytes) -> None:
        timestamp = request.headers.get("X-ERP-Timestamp", "")
        expected = "sha256=" + hmac.new(self.secret.encode(), timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        fresh = timestamp.isdigit() and abs(time.time() - int(timestamp)) < 300
        ok = fresh and hmac.compare_digest(request.headers.get("X-ERP-Signature", ""), expected)
        with self.lock:
            script = self.script.get(request.path)
            status = (script.pop(0) if script else 200) if ok else 401
            self.hits.append(Hit(request.path, request.headers.get("X-ERP-Delivery-Id", ""),
                                 request.headers.get("X-ERP-Event-Type", ""), ok, status,
                                 json.loads(body) if ok else {}))
        request.send_response(status)
        if 300 <= status < 400:
            request.send_header("Location", self.url("/elsewhere"))
        request.send_header("Content-Length", "0")
        request.end_headers()

    def at(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver():
    r = Receiver(SECRET)
    yield r
    r.close()


# ---------------------------------------------------------------- the service and a probe publisher


class Probe:
    """Publishes events the way another service does: outbox row, then the relay."""

    def __init__(self, engines: support.Engines) -> None:
        self.engine = db.create_engine(engines.database_url, schema="probe", pool_size=2)
        db.migrate(self.engine, "probe", PROBE_MIGRATIONS)
        if engines.transport == "amqp":
            transport = AmqpTransport(engines.amqp_url, 20, 3, engines.namespace)
        else:
            transport = PgTransport(self.engine, libpq_dsn(engines.database_url))
        self.relay = Relay(self.engine, "probe", transport.publisher)
        self.versions: dict[str, int] = {}

    def publish(self, payload, aggregate_type: str, aggregate_id: str) -> str:
        version = self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1
        with UnitOfWork(self.engine, "probe") as uow:
            event_id = uow.emit(aggregate_type=aggregate_type, aggregate_id=aggregate_id, version=version,
                                payload=payload)
            uow.commit()
        self.flush()
        return event_id

    def republish(self, event_id: str) -> None:
        """The relay's crash between publish and mark-sent: the same event goes out again."""
        with self.engine.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET published_at = NULL WHERE event_id = :e"), {"e": event_id})
        self.flush()

    def flush(self) -> None:
        """Relays until every outbox row is published (until the service's consumer has
        bound its queue, events are unroutable and stay in the outbox)."""
        def all_sent() -> bool:
            self.relay.publish_pending()
            with self.engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar() == 0

        support.wait_for("the outbox to be published", all_sent)

    def customer(self, customer_id: str, email_: str = "", webhook: str = "", name: str = "") -> str:
        return self.publish(crm_ev.CustomerUpdated(customer_id=customer_id, name=name or f"Customer {customer_id}",
                                                   email=email_, webhook_url=webhook, payment_terms_days=30,
                                                   status="active"), "customer", customer_id)

    def close(self) -> None:
        self.relay._drop_publisher()
        self.engine.dispose()


def money(amount: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount=amount)


def confirmed(order_id: str, customer_id: str) -> orders_ev.OrderConfirmed:
    return orders_ev.OrderConfirmed(order_id=order_id, customer_id=customer_id, total=money("179.8"), lines=[
        orders_ev.OrderLineItem(line_no=1, sku="CHAIR", warehouse_code="MAIN", quantity=2, unit_price=money("89.9"))])


@dataclasses.dataclass
class Notification:
    running: service.RunningService
    stub: notification_pb2_grpc.NotificationServiceStub
    probe: Probe

    def deliveries(self, **filters) -> list[pb.Delivery]:
        return list(self.stub.ListDeliveries(pb.ListDeliveriesRequest(**filters), timeout=5).deliveries)

    def settled(self, count: int, **filters) -> list[pb.Delivery]:
        """Waits until `count` deliveries match and none is pending any more."""
        def done():
            found = self.deliveries(**filters)
            return found if len(found) == count and all(
                d.status != pb.DELIVERY_STATUS_PENDING for d in found) else None

        return support.wait_for(f"{count} settled deliveries for {filters}", done)

    def attempts(self, delivery_id: str) -> list:
        with self.running.runtime.engine.connect() as conn:
            return conn.execute(sa.select(delivery_attempts).where(delivery_attempts.c.delivery_id == delivery_id)
                                .order_by(delivery_attempts.c.attempt_no)).all()

    def contact_known(self, customer_id: str) -> None:
        def known():
            with self.running.runtime.engine.connect() as conn:
                return conn.execute(sa.text("SELECT 1 FROM contacts WHERE customer_id = :c"),
                                    {"c": customer_id}).first()

        support.wait_for(f"customer {customer_id} to be projected", known)


@pytest.fixture
def start(engines, tmp_path, smtp, receiver):
    """start(**env) runs the notification service with the test SMTP server and secret."""
    opened = []

    def run(**env) -> Notification:
        settings = support.settings_for("notification", engines, tmp_path, env={
            "ERP_SMTP_URL": smtp[1], "ERP_SMTP_FROM": f"erp@{EMAIL_DOMAIN}", "ERP_WEBHOOK_SECRET": SECRET,
            "ERP_NOTIFICATION_RETRY_BASE_SECONDS": str(RETRY_BASE), "ERP_NOTIFICATION_MAX_ATTEMPTS": "4",
            "ERP_NOTIFICATION_POLL_SECONDS": "0.2", **env})
        running = service.start(notification_spec(), settings)
        channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        probe = Probe(engines)
        opened.append((running, channel, probe))
        return Notification(running, notification_pb2_grpc.NotificationServiceStub(channel), probe)

    yield run
    for _, channel, probe in opened:  # the engines fixture removes the RabbitMQ queues
        channel.close()
        probe.close()
    support.stop_all(running for running, _, _ in opened)


def unique(prefix: str) -> str:
    return f"{prefix}-{time.monotonic_ns()}"


# ---------------------------------------------------------------- tests


def test_email_and_webhook_are_delivered_once_for_an_event_delivered_twice(start, smtp, receiver):
    mailbox, _ = smtp
    svc = start()
    customer, path = unique("C"), f"/{unique('hook')}"
    address = f"{customer.lower()}@example.test"
    svc.probe.customer(customer, address, receiver.url(path), name="Ada Buyer")
    event_id = svc.probe.publish(confirmed("O-1", customer), "order", "O-1")
    svc.probe.republish(event_id)  # the same event, on the wire twice
    # A later event for the same customer: once it is delivered, the duplicate has been consumed.
    svc.probe.publish(orders_ev.OrderShipped(order_id="O-1", customer_id=customer), "order", "O-1")
    everything = svc.settled(4, customer_id=customer)
    assert all(d.status == pb.DELIVERY_STATUS_DELIVERED and d.delivered and d.attempts == 1 for d in everything)

    mine = {d.channel: d for d in svc.deliveries(event_id=event_id)}
    assert set(mine) == {pb.CHANNEL_EMAIL, pb.CHANNEL_WEBHOOK}
    assert mine[pb.CHANNEL_EMAIL].recipient == address and mine[pb.CHANNEL_EMAIL].subject == "Order O-1 confirmed"
    assert mine[pb.CHANNEL_EMAIL].last_attempt_at.seconds > 0

    [mail] = [m for m in mailbox.to(address) if m["Subject"] == "Order O-1 confirmed"]
    assert mail["Message-ID"] == f"<{mine[pb.CHANNEL_EMAIL].delivery_id}@{EMAIL_DOMAIN}>"
    assert mail["From"] == f"erp@{EMAIL_DOMAIN}" and mail["To"] == f"Ada Buyer <{address}>"
    assert "Dear Ada Buyer," in mail.get_content() and "179.80 EUR" in mail.get_content()

    [hit] = [h for h in receiver.at(path) if h.event_type == orders_ev.OrderConfirmed.DESCRIPTOR.full_name]
    assert hit.signature_ok and hit.status == 200
    assert hit.delivery_id == hit.body["delivery_id"] == mine[pb.CHANNEL_WEBHOOK].delivery_id
    assert hit.body["event_id"] == event_id and hit.body["data"]["order_id"] == "O-1"
    assert hit.body["data"]["total"] == "179.80 EUR" and hit.body["subject"] == "Order O-1 confirmed"
    assert len(receiver.at(path)) == 2 and len(mailbox.to(address)) == 2  # confirmed + shipped, nothing more


def test_a_webhook_failing_twice_then_succeeding_is_retried_with_backoff_and_every_attempt_recorded(start, receiver):
    svc = start()
    customer, path = unique("C"), f"/{unique('flaky')}"
    receiver.script[path] = [500, 503]
    svc.probe.customer(customer, webhook=receiver.url(path))
    svc.contact_known(customer)
    event_id = svc.probe.publish(fin_ev.InvoiceIssued(invoice_id="I-1", number="INV-2026-000001", order_id="O-2",
                                                      customer_id=customer, total=money("215.76"),
                                                      due_date="2026-04-30"), "invoice", "O-2")
    [delivery] = svc.settled(1, event_id=event_id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == (pb.DELIVERY_STATUS_DELIVERED, 3, "")
    assert delivery.subject == "Invoice INV-2026-000001 for order O-2"

    attempts = svc.attempts(delivery.delivery_id)
    assert [(a.attempt_no, a.ok) for a in attempts] == [(1, False), (2, False), (3, True)]
    assert "HTTP 500" in attempts[0].error and "HTTP 503" in attempts[1].error and attempts[2].error == ""
    # Backoff: an attempt is never made before base * 2^(n-1) has passed since the one before.
    gaps = [(b.attempted_at - a.attempted_at).total_seconds() for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps[0] >= RETRY_BASE and gaps[1] >= 2 * RETRY_BASE

    hits = receiver.at(path)
    assert [h.status for h in hits] == [500, 503, 200]
    assert all(h.signature_ok and h.delivery_id == delivery.delivery_id for h in hits)


def test_a_webhook_that_always_fails_ends_failed_after_the_max_attempts(start, receiver):
    svc = start(ERP_NOTIFICATION_MAX_ATTEMPTS="3")
    customer, path = unique("C"), f"/{unique('down')}"
    receiver.script[path] = [500] * 50
    svc.probe.customer(customer, webhook=receiver.url(path))
    svc.contact_known(customer)
    event_id = svc.probe.publish(orders_ev.OrderRejected(order_id="O-3", customer_id=customer,
                                                         reason="credit limit exceeded"), "order", "O-3")
    [delivery] = svc.settled(1, event_id=event_id)
    assert (delivery.status, delivery.delivered, delivery.attempts) == (pb.DELIVERY_STATUS_FAILED, False, 3)
    assert "HTTP 500" in delivery.last_error
    assert [a.ok for a in svc.attempts(delivery.delivery_id)] == [False, False, False]
    assert len(receiver.at(path)) == 3  # and nothing after the last attempt


def test_a_wrong_secret_is_detected_by_the_receiver(start, receiver):
    svc = start(ERP_WEBHOOK_SECRET="not-the-shared-secret", ERP_NOTIFICATION_MAX_ATTEMPTS="2")
    customer, path = unique("C"), f"/{unique('guarded')}"
    svc.probe.customer(customer, webhook=receiver.url(path))
    svc.contact_known(customer)
    event_id = svc.probe.publish(confirmed("O-4", customer), "order", "O-4")
    [delivery] = svc.settled(1, event_id=event_id)
    hits = receiver.at(path)
    assert len(hits) == 2 and all(not h.signature_ok and h.status == 401 for h in hits)
    assert delivery.status == pb.DELIVERY_STATUS_FAILED and "HTTP 401" in delivery.last_error


def test_list_deliveries_per_recipient_with_paging(start, receiver):
    svc = start()
    first, second = unique("C"), unique("C")
    first_mail, second_mail = f"{first.lower()}@example.test", f"{second.lower()}@example.test"
    hook = receiver.url(f"/{unique('list')}")
    svc.probe.customer(first, first_mail, hook)
    svc.probe.customer(second, second_mail)
    svc.contact_known(first)
    svc.contact_known(second)
    for i in range(3):
        svc.probe.publish(confirmed(f"O-{first}-{i}", first), "order", f"O-{first}-{i}")
    for i in range(2):
        svc.probe.publish(orders_ev.OrderShipped(order_id=f"O-{second}-{i}", customer_id=second), "order",
                          f"O-{second}-{i}")
    svc.settled(6, customer_id=first)
    svc.settled(2, customer_id=second)

    to_first = svc.deliveries(recipient=first_mail)
    assert len(to_first) == 3 and {d.recipient for d in to_first} == {first_mail}
    assert {d.channel for d in to_first} == {pb.CHANNEL_EMAIL}
    created = [d.created_at.ToDatetime() for d in to_first]
    assert created == sorted(created, reverse=True)  # newest first
    assert {d.recipient for d in svc.deliveries(recipient=second_mail)} == {second_mail}
    assert len(svc.deliveries(recipient=hook)) == 3

    pages, token = [], ""
    while True:
        response = svc.stub.ListDeliveries(pb.ListDeliveriesRequest(
            recipient=first_mail, page=paging_pb2.PageRequest(page_size=2, page_token=token)), timeout=5)
        pages.append([d.delivery_id for d in response.deliveries])
        token = response.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [2, 1]
    assert sorted(sum(pages, [])) == sorted(d.delivery_id for d in to_first)

    first_page_token = svc.stub.ListDeliveries(pb.ListDeliveriesRequest(
        recipient=first_mail, page=paging_pb2.PageRequest(page_size=2)), timeout=5).next_page_token
    with pytest.raises(grpc.RpcError) as exc:  # a token only works with the filters it was issued for
        svc.stub.ListDeliveries(pb.ListDeliveriesRequest(
            recipient=second_mail, page=paging_pb2.PageRequest(page_size=2, page_token=first_page_token)), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page.page_token" in str(rpc_status.from_call(exc.value))
    with pytest.raises(grpc.RpcError) as exc:
        svc.stub.ListDeliveries(pb.ListDeliveriesRequest(page=paging_pb2.PageRequest(page_size=-1)), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def by_hand(svc: Notification) -> Consumer:
    """A consumer of the service's handlers fed deliveries by the test, as a replica's transport would."""
    return Consumer(notification_events.build(), svc.running.runtime.uow, 5, 20)


def envelope_of(payload, aggregate_id: str, version: int = 1) -> Delivery:
    env = envelopes.build(source="test", aggregate_type="test", aggregate_id=aggregate_id,
                          aggregate_version=version, payload=payload)
    return Delivery(env.SerializeToString(), 0, None)


def held(svc: Notification, **filters) -> list[pb.HeldNotification]:
    return list(svc.stub.ListHeldNotifications(pb.ListHeldNotificationsRequest(**filters),
                                               timeout=5).held_notifications)


def held_count(status: str) -> float:
    return REGISTRY.get_sample_value("erp_held_notifications_total", {"status": status}) or 0.0


def test_an_event_before_its_customer_is_held_then_queued_once_when_the_customer_arrives(start, smtp):
    mailbox, _ = smtp
    svc = start()
    consumer = by_hand(svc)
    customer = unique("C")
    address = f"{customer.lower()}@example.test"
    waiting_before, released_before = held_count("waiting"), held_count("released")

    order = envelope_of(orders_ev.OrderRejected(order_id="O-5", customer_id=customer, reason="out of stock"), "O-5")
    assert consumer.handle(order) == Ack()  # a business outcome, not an error to retry into the DLQ
    assert consumer.handle(dataclasses.replace(order, attempts=1)) == Ack()  # redelivered: nothing more
    [waiting] = held(svc, customer_id=customer)
    assert (waiting.status, waiting.event_type) == (pb.HOLD_STATUS_WAITING, "erp.events.v1.OrderRejected")
    assert not waiting.HasField("settled_at") and svc.deliveries(customer_id=customer) == []

    for version in (1, 2):  # the customer, then a later change of it: queued once
        assert consumer.handle(envelope_of(crm_ev.CustomerUpdated(customer_id=customer, email=address),
                                           customer, version)) == Ack()
    assert consumer.handle(order) == Ack()  # the order event once more: nothing new
    [sent] = svc.settled(1, customer_id=customer)
    assert sent.status == pb.DELIVERY_STATUS_DELIVERED and sent.event_id == waiting.event_id
    [mail] = mailbox.to(address)
    assert mail["Subject"] == "Order O-5 could not be accepted" and "out of stock" in mail.get_content()
    [released] = held(svc, customer_id=customer, status=pb.HOLD_STATUS_RELEASED)
    assert released.settled_at.seconds > 0 and held(svc, status=pb.HOLD_STATUS_WAITING) == []
    assert (held_count("waiting") - waiting_before, held_count("released") - released_before) == (1, 1)


def test_a_customer_that_never_comes_ends_as_no_such_customer_and_nothing_is_sent(start):
    svc = start(ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS="0.3")
    consumer = by_hand(svc)
    customer = unique("C")
    given_up_before = held_count("no_such_customer")
    order = envelope_of(orders_ev.OrderRejected(order_id="O-6", customer_id=customer, reason="unknown customer"),
                        "O-6")
    assert consumer.handle(order) == Ack()

    [given_up] = support.wait_for("the held notification to be given up", lambda: held(
        svc, customer_id=customer, status=pb.HOLD_STATUS_NO_SUCH_CUSTOMER))
    assert given_up.settled_at.ToDatetime() >= given_up.held_at.ToDatetime()
    assert held_count("no_such_customer") - given_up_before == 1
    # Final: the customer coming after all, or the event delivered again, sends nothing.
    assert consumer.handle(envelope_of(crm_ev.CustomerUpdated(customer_id=customer, email="late@example.test"),
                                       customer)) == Ack()
    assert consumer.handle(dataclasses.replace(order, attempts=1)) == Ack()
    assert svc.deliveries(customer_id=customer) == []
    assert [h.status for h in held(svc, customer_id=customer)] == [pb.HOLD_STATUS_NO_SUCH_CUSTOMER]


def test_give_up_leaves_what_has_not_waited_long_enough(start):
    svc = start()
    consumer = by_hand(svc)
    customer = unique("C")
    assert consumer.handle(envelope_of(orders_ev.OrderShipped(order_id="O-7", customer_id=customer), "O-7")) == Ack()
    [waiting] = held(svc, customer_id=customer)
    wait = dt.timedelta(hours=1)
    since = waiting.held_at.ToDatetime(dt.UTC)
    uow = svc.running.runtime.uow
    assert handlers.give_up_waiting(uow(), wait, now=since + wait - dt.timedelta(seconds=1)) == []
    [given_up] = handlers.give_up_waiting(uow(), wait, now=since + wait)
    assert (given_up.event_id, given_up.status) == (waiting.event_id, domain.HoldStatus.NO_SUCH_CUSTOMER)
    assert handlers.give_up_waiting(uow(), wait, now=since + 2 * wait) == []  # given up once


@pytest.mark.parametrize("first_event", ["order event", "customer update"])
def test_two_replicas_handling_the_order_event_and_the_customer_update_at_once_queue_it_exactly_once(
        start, monkeypatch, first_event):
    """Replica A is stopped inside its transaction right after the read its decision rests on
    (the order event: "no contact yet"; the customer update: "nothing held"), and replica B
    handles the other event. Without the customer's lock B commits inside A's window and the
    notification waits for a customer that has already come."""
    svc = start()
    replica_a, replica_b = by_hand(svc), by_hand(svc)
    customer = unique("C")
    order = envelope_of(orders_ev.OrderRejected(order_id="O-8", customer_id=customer, reason="no credit"), "O-8")
    update = envelope_of(crm_ev.CustomerUpdated(customer_id=customer, email=f"{customer.lower()}@example.test",
                                                webhook_url="https://hooks.example.test/erp"), customer)
    if first_event == "order event":
        pause = PausePoint(monkeypatch, adapters.ContactRepository, "get")
        run = interleave(svc.running.runtime.engine, pause, lambda: replica_a.handle(order),
                         lambda: replica_b.handle(update))
    else:
        pause = PausePoint(monkeypatch, adapters.HeldRepository, "waiting_for")
        run = interleave(svc.running.runtime.engine, pause, lambda: replica_a.handle(update),
                         lambda: replica_b.handle(order))
    assert (run.first, run.second) == (Ack(), Ack())
    queued = svc.deliveries(customer_id=customer)
    assert sorted(d.channel for d in queued) == [pb.CHANNEL_EMAIL, pb.CHANNEL_WEBHOOK]
    assert held(svc, customer_id=customer, status=pb.HOLD_STATUS_WAITING) == []
    assert run.second_waited, "the second replica committed inside the first one's transaction"


def test_the_senders_report_why_a_recipient_did_not_take_a_notification(receiver):
    """The real senders against a redirecting webhook, a closed port and a closed SMTP port."""
    now = dt.datetime.now(dt.UTC)
    path = f"/{unique('moved')}"
    receiver.script[path] = [302]
    hook = domain.Delivery("D-1", "E-1", "erp.events.v1.OrderShipped", "C-1", domain.Channel.WEBHOOK,
                           receiver.url(path), "s", "b", {}, created_at=now, next_attempt_at=now)
    with pytest.raises(domain.SendFailed, match="HTTP 302"):  # a redirect is not a delivery
        WebhookSender(SECRET).send(hook, now)
    assert [h.path for h in receiver.hits if h.delivery_id == "D-1"] == [path]  # not followed
    closed = free_port()
    with pytest.raises(domain.SendFailed, match="not reachable"):
        WebhookSender(SECRET).send(dataclasses.replace(hook, recipient=f"http://127.0.0.1:{closed}/"), now)
    mail = dataclasses.replace(hook, channel=domain.Channel.EMAIL, recipient="x@example.test")
    with pytest.raises(domain.SendFailed, match="SMTP"):
        EmailSender(f"smtp://127.0.0.1:{closed}", "erp@example.test").send(mail, now)


class CountingMailbox(Mailbox):
    """Also counts SMTP sessions (one EHLO each)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd's hook
        self.sessions += 1
        session.host_name = hostname
        return responses


def _email(now: dt.datetime) -> domain.Delivery:
    return domain.Delivery("D-1", "E-1", "erp.events.v1.OrderShipped", "C-1", domain.Channel.EMAIL,
                           "x@example.test", "s", "b", {}, created_at=now, next_attempt_at=now)


@contextlib.contextmanager
def _mail_server(mailbox: Mailbox, port: int) -> Iterator[None]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield
    finally:
        controller.stop()


@contextlib.contextmanager
def _sender_to(port: int) -> Iterator[EmailSender]:
    sender = EmailSender(f"smtp://127.0.0.1:{port}", "erp@example.test")
    try:
        yield sender
    finally:
        sender.close()


def test_emails_share_one_smtp_session_and_survive_the_server_dropping_it():
    now = dt.datetime.now(dt.UTC)
    mailbox, port, mail = CountingMailbox(), free_port(), _email(now)
    with _sender_to(port) as sender:
        with _mail_server(mailbox, port):
            for i in range(3):
                sender.send(dataclasses.replace(mail, delivery_id=f"D-{i}"), now)
            assert (len(mailbox.messages), mailbox.sessions) == (3, 1)
        with _mail_server(mailbox, port):  # the server went away and came back: the kept session is dead
            sender.send(dataclasses.replace(mail, delivery_id="D-after"), now)
            assert (len(mailbox.messages), mailbox.sessions) == (4, 2)
            assert mailbox.messages[-1][1]["Message-ID"].startswith("<D-after@")


class SlowCountingMailbox(CountingMailbox):
    """Takes a while over each message, as a remote mail server does: sends overlap."""

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        await asyncio.sleep(0.05)
        return await super().handle_DATA(server, session, envelope)


def test_emails_sent_at_the_same_time_each_take_a_session_of_their_own_and_keep_it():
    now = dt.datetime.now(dt.UTC)
    mailbox, port, mail = SlowCountingMailbox(), free_port(), _email(now)
    with _sender_to(port) as sender, _mail_server(mailbox, port), futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: sender.send(dataclasses.replace(mail, delivery_id=f"D-{i}"), now), range(12)))
        at_once = mailbox.sessions
        assert len(mailbox.messages) == 12 and 2 <= at_once <= 4  # one per send in flight, no more
        for i in range(3):
            sender.send(dataclasses.replace(mail, delivery_id=f"D-later-{i}"), now)
        assert (len(mailbox.messages), mailbox.sessions) == (15, at_once)  # the kept sessions serve the rest
        assert sorted(msg["Message-ID"] for _, msg in mailbox.messages) == sorted(
            f"<D-{i}@example.test>" for i in [*range(12), *(f"later-{j}" for j in range(3))])


def _relay_found_down() -> float:
    return REGISTRY.get_sample_value("erp_notification_relay_unavailable_total") or 0.0


def test_a_relay_that_cannot_be_reached_pauses_the_emails_instead_of_failing_them(monkeypatch):
    monkeypatch.setattr(adapters, "RELAY_PAUSE_SECONDS", 0.2)
    now = dt.datetime.now(dt.UTC)
    mailbox, port, mail = CountingMailbox(), free_port(), _email(now)
    with _sender_to(port) as sender:
        with _mail_server(mailbox, port):
            sender.send(mail, now)  # leaves a kept session, which dies with the server
        found_down = _relay_found_down()
        with pytest.raises(domain.RelayUnavailable, match="ConnectionRefusedError"):
            sender.send(dataclasses.replace(mail, delivery_id="D-2"), now)
        assert sender.paused_for() > 0 and _relay_found_down() == found_down + 1
        with pytest.raises(domain.RelayUnavailable, match="emails wait"):  # paused: not even a connection
            sender.send(dataclasses.replace(mail, delivery_id="D-2"), now)
        assert _relay_found_down() == found_down + 1
        support.wait_for("the pause to end", lambda: sender.paused_for() == 0)
        with _mail_server(mailbox, port):
            sender.send(dataclasses.replace(mail, delivery_id="D-2"), now)
            assert sender.paused_for() == 0 and len(mailbox.messages) == 2
            assert mailbox.messages[-1][1]["Message-ID"].startswith("<D-2@")


def test_an_email_waits_out_a_relay_outage_without_spending_its_attempts(start):
    port = free_port()  # no mail server there yet
    svc = start(ERP_SMTP_URL=f"smtp://127.0.0.1:{port}")
    customer = unique("C")
    address = f"{customer.lower()}@example.test"
    svc.probe.customer(customer, address)
    found_down = _relay_found_down()
    svc.probe.publish(confirmed(unique("O"), customer), "order", unique("O"))
    # Found down twice: a second pause began, over a second after the first (the old dispatcher
    # spent all 4 of this service's attempts in 0.35 s and failed the email).
    support.wait_for("the relay to be found down twice", lambda: _relay_found_down() >= found_down + 2)
    [waiting] = svc.deliveries(customer_id=customer)
    assert (waiting.status, waiting.attempts) == (pb.DELIVERY_STATUS_PENDING, 0)
    mailbox = Mailbox()
    with _mail_server(mailbox, port):
        [sent] = svc.settled(1, customer_id=customer)
        assert (sent.status, sent.attempts) == (pb.DELIVERY_STATUS_DELIVERED, 1)
        assert len(mailbox.to(address)) == 1
