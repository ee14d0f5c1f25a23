"""Per-customer webhook secrets, the domain parts: the derivation both services share, crm's
rules for setting a URL and rotating its secret, and notification's choice of the secrets that
sign a delivery. No I/O (the real handlers against fakes)."""
from __future__ import annotations

import datetime as dt
import itertools
import types

import pytest

from erp.events.v1 import crm_events_pb2 as crm_ev
from mesh import webhook_keys
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound
from mesh.settings import Variables
from services.crm import domain as crm
from services.crm import handlers as crm_handlers
from services.notification import domain as notif
from services.notification import events as notif_events
from services.notification import handlers as notif_handlers
from services.notification.adapters import WebhookSender
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes_crm import FakeCredit, FakeCustomers, FakeExposure
from tests.unit.fakes_notification import FakeSenders, fake_uow

KEY = "k" * 40
OLD_KEY = "o" * 40
NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
URL = "https://acme.example/hook"


# ---------------------------------------------------------------- the derivation


def test_a_secret_depends_on_key_customer_and_secret_id():
    base = webhook_keys.derive(KEY, "C-1", "s1")
    assert base.startswith("whsec_") and len(base) > 40
    assert len({base, webhook_keys.derive(OLD_KEY, "C-1", "s1"), webhook_keys.derive(KEY, "C-2", "s1"),
                webhook_keys.derive(KEY, "C-1", "s2")}) == 4
    # The encoding keeps ("C-1", "x|y") and ("C-1|x", "y") apart, whatever the separator.
    assert webhook_keys.derive(KEY, "C-1", "x\x1fy") != webhook_keys.derive(KEY, "C-1\x1fx", "y")
    assert webhook_keys.derive(KEY, "C-1", 'x","y') != webhook_keys.derive(KEY, 'C-1","x', "y")


def test_keys_are_found_by_id_current_or_retired_and_short_keys_are_refused():
    keys = webhook_keys.SigningKeys(KEY, (OLD_KEY,))
    assert keys.by_id(webhook_keys.key_id(OLD_KEY)) == OLD_KEY and keys.by_id(keys.current_id) == KEY
    assert keys.secret("C-1", "s", "unknown") is None
    assert keys.secret("C-1", "s", webhook_keys.key_id(OLD_KEY)) == webhook_keys.derive(OLD_KEY, "C-1", "s")
    assert KEY not in keys.current_id

    def Settings(env):  # noqa: N802 - what SigningKeys reads of mesh's Settings
        return types.SimpleNamespace(variables=Variables(env))

    assert webhook_keys.SigningKeys.from_settings(Settings({})).is_dev_default
    loaded = webhook_keys.SigningKeys.from_settings(Settings({"ERP_WEBHOOK_SIGNING_KEY": KEY,
                                                          "ERP_WEBHOOK_SIGNING_KEYS_RETIRED": f" {OLD_KEY} ,"}))
    assert loaded == webhook_keys.SigningKeys(KEY, (OLD_KEY,))
    with pytest.raises(ValueError, match="at least 32"):
        webhook_keys.SigningKeys.from_settings(Settings({"ERP_WEBHOOK_SIGNING_KEY": "short"}))


# ---------------------------------------------------------------- crm: setting and rotating


def customer(url: str = URL, signing: crm.WebhookSigning | None = None) -> crm.Customer:
    signing = signing if signing is not None else (
        crm.WebhookSigning(crm.SecretRef("s1", "k1"), 1, NOW) if url else crm.WebhookSigning())
    return crm.Customer("C-1", "Acme", crm.CustomerStatus.ACTIVE, "EUR", 0, 30, webhook_url=url, version=3,
                        webhook_signing=signing)


def test_a_new_url_gets_a_new_secret_and_ends_the_old_one_at_once():
    rotated_before = customer(signing=crm.WebhookSigning(crm.SecretRef("s1", "k1"), 2, NOW,
                                                         crm.SecretRef("s0", "k1"), NOW + dt.timedelta(days=1)))
    changed = crm.with_webhook_url(rotated_before, crm.SetWebhookUrl("C-1", " https://new.example/h "),
                                   crm.SecretRef("s2", "k1"), NOW)
    assert changed.webhook_url == "https://new.example/h" and changed.version == 4
    assert changed.webhook_signing == crm.WebhookSigning(crm.SecretRef("s2", "k1"), 3, NOW)
    assert crm.with_webhook_url(changed, crm.SetWebhookUrl("C-1", "https://new.example/h"),
                                crm.SecretRef("s3", "k1"), NOW) is None  # the same URL: nothing changes
    removed = crm.with_webhook_url(changed, crm.SetWebhookUrl("C-1", ""), crm.SecretRef("s3", "k1"), NOW)
    assert removed.webhook_url == "" and removed.webhook_signing.current is None
    assert removed.webhook_signing.version == 3  # the count goes on


def test_a_rotation_keeps_the_old_secret_for_the_overlap_only():
    rotated = crm.rotated(customer(), dt.timedelta(hours=2), crm.SecretRef("s2", "k2"), NOW)
    s = rotated.webhook_signing
    assert (s.current, s.version, s.previous, s.previous_expires_at) == (
        crm.SecretRef("s2", "k2"), 2, crm.SecretRef("s1", "k1"), NOW + dt.timedelta(hours=2))
    assert s.previous_at(NOW + dt.timedelta(hours=1)) == crm.SecretRef("s1", "k1")
    assert s.previous_at(NOW + dt.timedelta(hours=2)) is None
    # Again within the window: the oldest secret stops now, the one just replaced overlaps.
    again = crm.rotated(rotated, dt.timedelta(hours=1), crm.SecretRef("s3", "k2"), NOW)
    assert (again.webhook_signing.previous, again.webhook_signing.version) == (crm.SecretRef("s2", "k2"), 3)
    # No overlap (a leaked secret): only the new one signs.
    revoked = crm.rotated(customer(), dt.timedelta(0), crm.SecretRef("s2", "k2"), NOW).webhook_signing
    assert (revoked.previous, revoked.previous_expires_at) == (None, None)
    # A webhook set before per-customer secrets moves off the legacy secret, which overlaps.
    legacy = crm.rotated(customer(signing=crm.WebhookSigning(crm.LEGACY)), dt.timedelta(hours=1),
                         crm.SecretRef("s1", "k1"), NOW).webhook_signing
    assert (legacy.current, legacy.previous) == (crm.SecretRef("s1", "k1"), crm.LEGACY)


def test_rotating_without_a_url_and_bad_overlaps_are_refused_in_words():
    with pytest.raises(FailedPrecondition, match="has no webhook URL.*SetWebhookUrl"):
        crm.rotated(customer(url=""), dt.timedelta(hours=1), crm.SecretRef("s", "k"), NOW)
    assert crm.validate_rotation(crm.RotateWebhookSecret("C-1", None)) == crm.DEFAULT_WEBHOOK_OVERLAP
    assert crm.validate_rotation(crm.RotateWebhookSecret("C-1", dt.timedelta(0))) == dt.timedelta(0)
    for overlap in (dt.timedelta(seconds=-1), dt.timedelta(days=7, seconds=1)):
        with pytest.raises(InvalidArgument) as exc:
            crm.validate_rotation(crm.RotateWebhookSecret("C-1", overlap))
        assert [v.field for v in exc.value.violations] == ["overlap"]
    with pytest.raises(InvalidArgument) as exc:
        crm.validate_webhook_url(crm.SetWebhookUrl("bad id", "javascript:alert(1)"))
    assert {v.field for v in exc.value.violations} == {"customer_id", "webhook_url"}


class CrmWorld:
    def __init__(self) -> None:
        calls: list[str] = []
        self.uow = FakeUnitOfWork(customers=FakeCustomers(calls), credit=FakeCredit(calls),
                                  exposure=FakeExposure(calls))
        ids = (f"id{i}" for i in itertools.count(1))
        self.secrets = crm_handlers.WebhookSecrets(webhook_keys.SigningKeys(KEY), new_id=lambda: next(ids),
                                                   now=lambda: NOW)

    def create(self, url: str = URL):
        cmd = crm.CreateCustomer("C-1", "Acme", "", "100", "EUR", 30, webhook_url=url)
        return crm_handlers.create_customer_with_secret(self.uow, cmd, self.secrets)


def test_the_secret_is_returned_once_and_events_carry_only_its_ids():
    world = CrmWorld()
    made, secret = world.create()
    assert secret == webhook_keys.derive(KEY, "C-1", "id1")
    again, repeat_secret = world.create()
    assert (again, repeat_secret) == (made, "")  # a repeat of the create: no secret
    [event] = world.uow.events
    assert event.payload.webhook_secrets == crm_ev.WebhookSecrets(
        current=crm_ev.WebhookSecretRef(secret_id="id1", key_id=webhook_keys.key_id(KEY)))
    assert secret.encode() not in event.payload.SerializeToString()

    rotated, new_secret = crm_handlers.rotate_webhook_secret(
        world.uow, crm.RotateWebhookSecret("C-1", dt.timedelta(hours=1)), world.secrets)
    assert new_secret not in ("", secret) and rotated.version == 2
    update = world.uow.events[-1].payload.webhook_secrets
    assert (update.current.secret_id, update.previous.secret_id) == (rotated.webhook_signing.current.secret_id, "id1")
    assert update.previous_expires_at.ToDatetime(dt.UTC) == NOW + dt.timedelta(hours=1)

    unchanged, none = crm_handlers.set_webhook_url(world.uow, crm.SetWebhookUrl("C-1", URL), world.secrets)
    assert (unchanged.version, none, len(world.uow.events)) == (2, "", 2)
    with pytest.raises(NotFound):
        crm_handlers.rotate_webhook_secret(world.uow, crm.RotateWebhookSecret("C-2", None), world.secrets)
    with pytest.raises(NotFound):
        crm_handlers.set_webhook_url(world.uow, crm.SetWebhookUrl("C-2", URL), world.secrets)


def test_a_customer_without_a_webhook_gets_no_secret_and_a_legacy_one_no_ids_in_its_events():
    world = CrmWorld()
    made, secret = world.create(url="")
    assert (secret, made.webhook_signing.current) == ("", None)
    assert not world.uow.events[0].payload.HasField("webhook_secrets")
    assert crm_handlers.webhook_secrets_event(crm.WebhookSigning(crm.LEGACY)) is None


# ---------------------------------------------------------------- notification: which secrets sign


def contact(signing: notif.Signing, customer_id: str = "C-1") -> notif.Contact:
    return notif.Contact(customer_id, "Acme", "", URL, 2, NOW, signing)


def hook(customer_id: str = "C-1") -> notif.Delivery:
    return notif.Delivery("D-1", "E-1", "erp.events.v1.OrderShipped", customer_id, notif.Channel.WEBHOOK, URL,
                          "s", "b", {}, created_at=NOW, next_attempt_at=NOW)


def test_a_delivery_is_signed_with_the_current_secret_and_the_previous_one_during_its_window():
    keys = webhook_keys.SigningKeys(KEY, (OLD_KEY,))
    sender = WebhookSender("legacy", keys=keys)
    current = notif.SecretRef("s2", webhook_keys.key_id(KEY))
    previous = notif.SecretRef("s1", webhook_keys.key_id(OLD_KEY))
    rotating = contact(notif.Signing(current, previous, NOW + dt.timedelta(minutes=5)))
    assert sender.secrets(hook(), rotating, NOW) == [webhook_keys.derive(KEY, "C-1", "s2"),
                                                     webhook_keys.derive(OLD_KEY, "C-1", "s1")]
    assert sender.secrets(hook(), rotating, NOW + dt.timedelta(minutes=5)) == [webhook_keys.derive(KEY, "C-1", "s2")]
    # No contact (a supplier), or a webhook from before per-customer secrets: the legacy secret.
    assert sender.secrets(hook("supplier:S-1"), None, NOW) == ["legacy"]
    assert sender.secrets(hook(), contact(notif.Signing()), NOW) == ["legacy"]
    # The current secret's master key is not configured: the delivery fails and says why.
    unknown = contact(notif.Signing(notif.SecretRef("s2", "nokey")))
    with pytest.raises(notif.SendFailed, match="no webhook master key has id 'nokey'"):
        sender.secrets(hook(), unknown, NOW)
    # The previous secret's key is gone: signed with the current one only.
    gone = contact(notif.Signing(current, notif.SecretRef("s1", "nokey"), NOW + dt.timedelta(minutes=5)))
    assert sender.secrets(hook(), gone, NOW) == [webhook_keys.derive(KEY, "C-1", "s2")]


def test_the_signature_header_carries_one_entry_per_secret_and_either_verifies():
    body, ts = b'{"x":1}', "1767225600"
    header = notif.signatures(["new", "old"], ts, body)
    assert header == f"{notif.signature('new', ts, body)},{notif.signature('old', ts, body)}"
    assert notif.verify("new", header, ts, body) and notif.verify("old", header, ts, body)
    assert not notif.verify("other", header, ts, body)
    assert not notif.verify("new", header, "1767225601", body)
    assert notif.signatures("one", ts, body) == notif.signature("one", ts, body)


def updated(version: int, signing: crm_ev.WebhookSecrets | None, at: dt.datetime = NOW):
    return notif.contact("C-1", "Acme", "", URL, version, at, notif_events.signing_of(
        crm_ev.CustomerUpdated(customer_id="C-1", webhook_url=URL, webhook_secrets=signing)))[0]


def test_notification_keeps_the_newest_secrets_and_a_replayed_older_update_changes_nothing():
    first = crm_ev.WebhookSecrets(current=crm_ev.WebhookSecretRef(secret_id="s1", key_id="k"))
    second = crm_ev.WebhookSecrets(current=crm_ev.WebhookSecretRef(secret_id="s2", key_id="k"),
                                   previous=crm_ev.WebhookSecretRef(secret_id="s1", key_id="k"))
    second.previous_expires_at.FromDatetime(NOW + dt.timedelta(hours=1))
    assert notif_events.signing_of(crm_ev.CustomerUpdated()) == notif.Signing()  # no field: legacy
    assert updated(2, second).signing == notif.Signing(notif.SecretRef("s2", "k"), notif.SecretRef("s1", "k"),
                                                       NOW + dt.timedelta(hours=1))
    uow = fake_uow()
    with uow:
        assert notif_handlers.on_customer_updated(uow, updated(1, first))
        assert notif_handlers.on_customer_updated(uow, updated(2, second, NOW + dt.timedelta(seconds=1)))
        assert not notif_handlers.on_customer_updated(uow, updated(1, first, NOW + dt.timedelta(seconds=5)))
        assert uow.contacts.get("C-1").signing.current == notif.SecretRef("s2", "k")


def test_the_dispatcher_gives_the_webhook_sender_the_customers_contact():
    uow, senders = fake_uow(), FakeSenders()
    signing = notif.Signing(notif.SecretRef("s1", "k"))
    with uow:
        notif_handlers.on_customer_updated(uow, contact(signing))
        notif_handlers.notify(uow, notif.Notify("E-1", "erp.events.v1.OrderShipped", "C-1",
                                                {"order_id": "O-1", "lines": ""}), now=NOW)
        uow.commit()
    notif_handlers.dispatch_due(uow, senders, notif.RetryPolicy(), NOW)
    assert [c.signing for c in senders.contacts] == [signing]
