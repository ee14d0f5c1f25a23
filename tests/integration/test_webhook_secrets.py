"""Per-customer webhook secrets end to end, on every engine set: crm makes each customer's
secret and returns it once, notification learns which secret signs from CustomerUpdated (ids
only) and signs every delivery with it. Each customer's receiver is a real HTTP server that
knows only its own secret and checks X-ERP-Signature the way the README tells receivers to."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import duration_pb2

from erp.common.v1 import money_pb2
from erp.crm.v1 import crm_pb2 as pb
from erp.crm.v1 import crm_pb2_grpc
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import service
from mesh.events import envelope as envelopes
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery
from mesh.webhook_keys import SigningKeys
from services.crm.adapters import CustomerRepository
from services.crm.service import spec as crm_spec
from services.notification import events as notification_events
from services.notification.service import spec as notification_spec
from tests import support
from tests.integration.test_notification import Probe
from tests.interleaving import PausePoint, interleave

MASTER_KEY = "test-master-key-for-webhook-secrets-0123456789"
LEGACY_SECRET = "legacy-shared-secret"


# ---------------------------------------------------------------- a receiver that knows one secret


@dataclasses.dataclass
class Hit:
    event_id: str
    timestamp: str
    signature: str
    body: bytes


def receiver_accepts(secret: str, timestamp: str, signature_header: str, body: bytes) -> bool:
    """The receiver's check from the README: HMAC-SHA256 of "{timestamp}.{body}" under its own
    secret, compared in constant time with every comma-separated entry of X-ERP-Signature."""
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(entry.strip(), expected) for entry in signature_header.split(","))


class Receiver:
    """One customer's webhook endpoint: answers 200 when the request is signed with its secret
    (401 otherwise), and keeps every request it gets."""

    def __init__(self) -> None:
        self.secret = ""
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's hook name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                timestamp = self.headers.get("X-ERP-Timestamp", "")
                signature = self.headers.get("X-ERP-Signature", "")
                ok = bool(receiver.secret) and receiver_accepts(receiver.secret, timestamp, signature, body)
                event_id = json.loads(body).get("event_id", "")
                with receiver.lock:
                    receiver.hits.append(Hit(event_id, timestamp, signature, body))
                self.send_response(200 if ok else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def hit_for(self, event_id: str) -> Hit:
        def found():
            with self.lock:
                return next((h for h in self.hits if h.event_id == event_id), None)

        return support.wait_for(f"the webhook of event {event_id}", found)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def accepts(secret: str, hit: Hit) -> bool:
    return receiver_accepts(secret, hit.timestamp, hit.signature, hit.body)


# ---------------------------------------------------------------- crm and notification together


@dataclasses.dataclass
class Mesh:
    crm: crm_pb2_grpc.CustomerServiceStub
    crm_running: service.RunningService
    notification: service.RunningService
    probe: Probe

    def create(self, customer_id: str, webhook_url: str) -> pb.CreateCustomerResponse:
        customer = pb.Customer(customer_id=customer_id, name=f"Customer {customer_id}", payment_terms_days=30,
                               credit_limit=money_pb2.Money(currency_code="EUR", amount="1000"),
                               webhook_url=webhook_url)
        return self.crm.CreateCustomer(pb.CreateCustomerRequest(customer=customer), timeout=10)

    def rotate(self, customer_id: str, overlap_seconds: int | None = None) -> pb.RotateWebhookSecretResponse:
        request = pb.RotateWebhookSecretRequest(customer_id=customer_id)
        if overlap_seconds is not None:
            request.overlap.CopyFrom(duration_pb2.Duration(seconds=overlap_seconds))
        return self.crm.RotateWebhookSecret(request, timeout=10)

    def contact(self, customer_id: str):
        with self.notification.runtime.engine.connect() as conn:
            return conn.execute(sa.text("SELECT * FROM contacts WHERE customer_id = :c"), {"c": customer_id}).first()

    def projected(self, customer_id: str, version: int):
        """Waits until notification has the customer's CustomerUpdated of this version."""
        return support.wait_for(f"customer {customer_id} v{version} in notification", lambda: (
            (row := self.contact(customer_id)) is not None and row.version >= version and row))

    def order_confirmed(self, customer_id: str) -> str:
        order_id = f"O-{uuid.uuid4().hex[:8]}"
        total = money_pb2.Money(currency_code="EUR", amount="10")
        return self.probe.publish(orders_ev.OrderConfirmed(order_id=order_id, customer_id=customer_id, total=total),
                                  "order", order_id)

    def crm_updates(self, customer_id: str) -> list:
        with self.crm_running.runtime.engine.connect() as conn:
            bodies = conn.execute(sa.text("SELECT envelope FROM outbox ORDER BY id")).scalars().all()
        decoded = [envelopes.decode(bytes(b)) for b in bodies]
        return [e for e in decoded if isinstance(e.payload, crm_ev.CustomerUpdated)
                and e.payload.customer_id == customer_id]


@pytest.fixture
def mesh(engines, tmp_path):
    keys = {"ERP_WEBHOOK_SIGNING_KEY": MASTER_KEY}
    crm = service.start(crm_spec(), support.settings_for("crm", engines, tmp_path / "crm", env=keys))
    notification = service.start(notification_spec(), support.settings_for(
        "notification", engines, tmp_path / "notification",
        env={**keys, "ERP_WEBHOOK_SECRET": LEGACY_SECRET, "ERP_NOTIFICATION_POLL_SECONDS": "0.2",
             "ERP_NOTIFICATION_RETRY_BASE_SECONDS": "0.05", "ERP_NOTIFICATION_MAX_ATTEMPTS": "2"}))
    channel = grpc.insecure_channel(f"127.0.0.1:{crm.port}")
    probe = Probe(engines)
    try:
        yield Mesh(crm_pb2_grpc.CustomerServiceStub(channel), crm, notification, probe)
    finally:
        channel.close()
        probe.close()
        support.stop_all([notification, crm])


@pytest.fixture
def receivers():
    made: list[Receiver] = []

    def make() -> Receiver:
        made.append(Receiver())
        return made[-1]

    yield make
    for r in made:
        r.close()


def test_each_customer_verifies_its_own_webhooks_and_a_rotation_overlaps_then_ends(mesh, receivers):
    suffix = uuid.uuid4().hex[:8]
    a_id, b_id = f"WH-A-{suffix}", f"WH-B-{suffix}"
    a, b = receivers(), receivers()

    # The secret is returned once, by the create that set the URL.
    made_a, made_b = mesh.create(a_id, a.url), mesh.create(b_id, b.url)
    a.secret, b.secret = made_a.webhook_secret, made_b.webhook_secret
    assert a.secret.startswith("whsec_") and b.secret.startswith("whsec_") and a.secret != b.secret
    assert made_a.customer.webhook_signing.secret_version == 1
    again = mesh.create(a_id, a.url)  # a repeat of the create: the customer, not the secret
    assert again.webhook_secret == "" and again.customer == made_a.customer
    got = mesh.crm.GetCustomer(pb.GetCustomerRequest(customer_id=a_id), timeout=10)
    assert a.secret.encode() not in got.SerializeToString() and a.secret not in str(got)
    # Neither crm's database nor its events hold the secret: ids only.
    with mesh.crm_running.runtime.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM customers WHERE customer_id = :c"), {"c": a_id}).one()
    assert a.secret not in repr(tuple(row))
    assert all(a.secret.encode() not in e.payload.SerializeToString() for e in mesh.crm_updates(a_id))

    # One event for each customer: each receiver verifies its own, and neither verifies with the other's secret.
    mesh.projected(a_id, 1)
    mesh.projected(b_id, 1)
    for_a, for_b = mesh.order_confirmed(a_id), mesh.order_confirmed(b_id)
    hit_a, hit_b = a.hit_for(for_a), b.hit_for(for_b)
    assert accepts(a.secret, hit_a) and accepts(b.secret, hit_b)
    assert not accepts(b.secret, hit_a) and not accepts(a.secret, hit_b)
    assert not accepts(LEGACY_SECRET, hit_a)
    assert len(hit_a.signature.split(",")) == 1

    # Rotation: while the window is open both secrets verify, after it only the new one.
    old = a.secret
    rotated = mesh.rotate(a_id, overlap_seconds=6)
    new = rotated.webhook_secret
    expires = rotated.customer.webhook_signing.previous_secret_expires_at.ToDatetime(dt.UTC)
    assert new.startswith("whsec_") and new not in (old, b.secret)
    assert rotated.customer.webhook_signing.secret_version == 2
    mesh.projected(a_id, rotated.customer.version)
    a.secret = new  # the receiver moves to the new secret at once; a slower one would still hold the old
    during = a.hit_for(mesh.order_confirmed(a_id))
    assert int(during.timestamp) < expires.timestamp(), "the delivery came after the overlap window"
    assert accepts(new, during) and accepts(old, during) and not accepts(b.secret, during)
    assert len(during.signature.split(",")) == 2

    time.sleep(max(0.0, expires.timestamp() - time.time()) + 1.1)
    after = a.hit_for(mesh.order_confirmed(a_id))
    assert accepts(new, after) and not accepts(old, after)

    # Replays of CustomerUpdated change nothing: the same event again (the inbox drops it), and
    # the pre-rotation update again under a new event id (older than what notification has).
    projected = mesh.contact(a_id)
    first_update = mesh.crm_updates(a_id)[0]
    replica = Consumer(notification_events.build(), mesh.notification.runtime.uow, 5, 20)
    same = first_update.envelope.SerializeToString()
    renamed = envelopes.build(source="crm", aggregate_type="customer", aggregate_id=a_id, aggregate_version=1,
                              payload=first_update.payload)
    renamed.occurred_at.CopyFrom(first_update.envelope.occurred_at)
    assert replica.handle(Delivery(same, 0, None)) == Ack()
    assert replica.handle(Delivery(renamed.SerializeToString(), 0, None)) == Ack()
    assert mesh.contact(a_id) == projected
    replayed = a.hit_for(mesh.order_confirmed(a_id))
    assert accepts(new, replayed) and not accepts(old, replayed)


def test_webhook_rpcs_say_what_is_wrong(mesh, receivers):
    suffix = uuid.uuid4().hex[:8]
    plain = f"WH-N-{suffix}"
    made = mesh.create(plain, "")
    assert made.webhook_secret == "" and made.customer.webhook_signing.secret_version == 0

    def fails(call, request, code) -> str:
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=10)
        assert info.value.code() == code, info.value.details()
        return info.value.details()

    assert "has no webhook URL" in fails(mesh.crm.RotateWebhookSecret, pb.RotateWebhookSecretRequest(
        customer_id=plain), grpc.StatusCode.FAILED_PRECONDITION)
    fails(mesh.crm.RotateWebhookSecret, pb.RotateWebhookSecretRequest(customer_id="NOPE-" + suffix),
          grpc.StatusCode.NOT_FOUND)
    fails(mesh.crm.RotateWebhookSecret, pb.RotateWebhookSecretRequest(
        customer_id=plain, overlap=duration_pb2.Duration(seconds=8 * 86400)), grpc.StatusCode.INVALID_ARGUMENT)
    fails(mesh.crm.SetWebhookUrl, pb.SetWebhookUrlRequest(customer_id=plain, webhook_url="ftp://x"),
          grpc.StatusCode.INVALID_ARGUMENT)
    fails(mesh.crm.SetWebhookUrl, pb.SetWebhookUrlRequest(customer_id="NOPE-" + suffix, webhook_url=""),
          grpc.StatusCode.NOT_FOUND)

    # Setting a URL makes a secret (returned once), setting it again changes nothing, removing it ends it.
    hook = receivers()
    set_ = mesh.crm.SetWebhookUrl(pb.SetWebhookUrlRequest(customer_id=plain, webhook_url=hook.url), timeout=10)
    assert set_.webhook_secret.startswith("whsec_") and set_.customer.webhook_signing.secret_version == 1
    same = mesh.crm.SetWebhookUrl(pb.SetWebhookUrlRequest(customer_id=plain, webhook_url=hook.url), timeout=10)
    assert same.webhook_secret == "" and same.customer.version == set_.customer.version
    hook.secret = set_.webhook_secret
    mesh.projected(plain, set_.customer.version)
    assert accepts(hook.secret, hook.hit_for(mesh.order_confirmed(plain)))
    removed = mesh.crm.SetWebhookUrl(pb.SetWebhookUrlRequest(customer_id=plain, webhook_url=""), timeout=10)
    assert removed.webhook_secret == "" and removed.customer.webhook_url == ""
    assert not removed.customer.webhook_signing.HasField("secret_created_at")
    fails(mesh.crm.RotateWebhookSecret, pb.RotateWebhookSecretRequest(customer_id=plain),
          grpc.StatusCode.FAILED_PRECONDITION)


@pytest.fixture
def crm_only(engines, tmp_path):
    running = service.start(crm_spec(), support.settings_for("crm", engines, tmp_path,
                                                             env={"ERP_WEBHOOK_SIGNING_KEY": MASTER_KEY}))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield crm_pb2_grpc.CustomerServiceStub(channel), running
    finally:
        channel.close()
        running.stop(grace=1)


def test_two_rotations_at_once_serialize_and_the_later_one_overlaps_the_earlier_ones_secret(crm_only, monkeypatch):
    """Replica A's rotation is stopped inside its transaction right after it read the customer;
    replica B rotates the same customer. B must wait for A (the row lock), then rotate from A's
    secret: both succeed, versions 2 and 3, and the secret B keeps in its window is A's."""
    stub, running = crm_only
    customer_id = f"WH-R-{uuid.uuid4().hex[:8]}"
    stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        customer_id=customer_id, name="Racer", credit_limit=money_pb2.Money(currency_code="EUR", amount="1"),
        webhook_url="https://racer.example/hook")), timeout=10)

    def rotate():
        return stub.RotateWebhookSecret(pb.RotateWebhookSecretRequest(customer_id=customer_id), timeout=30)

    pause = PausePoint(monkeypatch, CustomerRepository, "get")
    run = interleave(running.runtime.engine, pause, rotate, rotate)
    assert isinstance(run.first, pb.RotateWebhookSecretResponse), run.first
    assert isinstance(run.second, pb.RotateWebhookSecretResponse), run.second
    assert run.second_waited, "the second rotation committed inside the first one's transaction"
    assert (run.first.customer.webhook_signing.secret_version, run.second.customer.webhook_signing.secret_version) \
        == (2, 3)
    with running.runtime.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT * FROM customers WHERE customer_id = :c"), {"c": customer_id}).one()
    keys = SigningKeys(MASTER_KEY)
    assert keys.secret(customer_id, row.webhook_secret_id, row.webhook_key_id) == run.second.webhook_secret
    assert keys.secret(customer_id, row.webhook_previous_secret_id, row.webhook_previous_key_id) == \
        run.first.webhook_secret


def test_the_python_client_hands_the_secret_back(mesh, receivers):
    from erp_client import ErpClient

    customer_id = f"WH-C-{uuid.uuid4().hex[:8]}"
    with ErpClient(crm_target=f"127.0.0.1:{mesh.crm_running.port}") as client:
        client.create_customer(customer_id, "Client-made", "100.00")
        made = client.set_webhook_url(customer_id, receivers().url)
        assert made.webhook_secret.startswith("whsec_")
        rotated = client.rotate_webhook_secret(customer_id, overlap_seconds=0)
        assert rotated.webhook_secret.startswith("whsec_") and rotated.webhook_secret != made.webhook_secret
        assert not rotated.customer.webhook_signing.HasField("previous_secret_expires_at") or \
            rotated.customer.webhook_signing.previous_secret_expires_at.seconds <= int(time.time())
