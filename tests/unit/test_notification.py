"""Notification's rules, templates, handlers and senders, run against in-memory fakes."""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import threading
from concurrent import futures

import pytest
from prometheus_client import REGISTRY

from erp.common.v1 import money_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import notification_events_pb2 as notification_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from mesh import paging
from mesh.errors import InvalidArgument
from mesh.events import envelope as envelopes
from mesh.settings import load
from services.notification import domain, events, handlers, templates
from services.notification.adapters import EmailSender, WebhookSender, parse_smtp_url
from services.notification.domain import (
    Channel,
    Contact,
    Delivery,
    DeliveryStatus,
    HoldStatus,
    ListDeliveries,
    ListHeld,
    Notify,
    RelayUnavailable,
    RetryPolicy,
    SendFailed,
)
from services.notification.service import DEFAULT_WEBHOOK_SECRET, Config, Dispatcher
from tests.unit.fakes_notification import FakeSenders, fake_uow

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
MAIL = "buyer@example.com"
HOOK = "https://hooks.example.com/erp"
POLICY = RetryPolicy(max_attempts=4, base_seconds=2.0)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def money(amount: str, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount=amount)


def person(customer_id="C1", email=MAIL, webhook=HOOK, version=1, name="Ada Buyer", when=T0) -> Contact:
    contact, problems = domain.contact(customer_id, name, email, webhook, version, when)
    assert problems == []
    return contact


def confirmed(order_id="O1", customer_id="C1") -> orders_ev.OrderConfirmed:
    return orders_ev.OrderConfirmed(order_id=order_id, customer_id=customer_id, total=money("708.6"), lines=[
        orders_ev.OrderLineItem(line_no=1, sku="CHAIR", quantity=4, unit_price=money("89.9")),
        orders_ev.OrderLineItem(line_no=2, sku="DESK", quantity=1, unit_price=money("349"))])


SAMPLES = {
    orders_ev.OrderConfirmed: confirmed(),
    orders_ev.OrderRejected: orders_ev.OrderRejected(order_id="O1", customer_id="C1", reason="credit limit exceeded"),
    fin_ev.InvoiceIssued: fin_ev.InvoiceIssued(invoice_id="I1", number="INV-2026-000007", order_id="O1",
                                               customer_id="C1", total=money("850.32"), due_date="2026-03-31",
                                               order_amount=money("708.6")),
    fin_ev.PaymentReceived: fin_ev.PaymentReceived(payment_id="P1", invoice_id="I1", order_id="O1", customer_id="C1",
                                                   amount=money("100"), amount_due=money("750.32"),
                                                   paid_in_full=False),
    orders_ev.OrderShipped: orders_ev.OrderShipped(order_id="O1", customer_id="C1", lines=confirmed().lines),
}


def notify_cmd(payload=None, event_id="E1") -> Notify:
    payload = payload or confirmed()
    return Notify(event_id, payload.DESCRIPTOR.full_name, payload.customer_id, events.fields_of(payload))


def ids():
    counter = iter(range(1, 10**6))
    return lambda: f"D{next(counter):04d}"


# ---------------------------------------------------------------- contacts (CustomerUpdated projection)


@pytest.mark.parametrize("email", ["no-at-sign", "two@@example.com", "a b@example.com", "x@nodot",
                                   "x@example.com\nBcc: evil@example.com", "x" * 250 + "@example.com"])
def test_an_unusable_email_address_is_dropped_and_reported(email):
    contact, problems = domain.contact("C1", "Ada", email, HOOK, 1, T0)
    assert contact.email == ""
    assert contact.webhook_url == HOOK
    assert len(problems) == 1 and problems[0].startswith("email")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/x", "https://", "example.com/hook",
                                 "http://exa mple.com/", "https://example.com/" + "x" * 2100, "javascript:alert(1)"])
def test_a_webhook_url_that_is_not_http_is_dropped_and_reported(url):
    contact, problems = domain.contact("C1", "Ada", MAIL, url, 1, T0)
    assert contact.webhook_url == "" and contact.email == MAIL
    assert len(problems) == 1 and problems[0].startswith("webhook_url")


def test_contact_values_are_trimmed_and_the_name_made_one_line():
    contact, problems = domain.contact("C1", "  Ada\n  Buyer ", f"  {MAIL} ", f" {HOOK}\t", 3, T0)
    assert problems == []
    assert (contact.name, contact.email, contact.webhook_url, contact.version) == ("Ada Buyer", MAIL, HOOK, 3)


def test_only_a_newer_customer_update_replaces_the_contact():
    uow = fake_uow()
    with uow:
        assert handlers.on_customer_updated(uow, person(version=2, email="v2@example.com"))
        # An older update arriving late changes nothing...
        assert not handlers.on_customer_updated(uow, person(version=1, email="v1@example.com"))
        # ...nor does a repeat of the same one.
        assert not handlers.on_customer_updated(uow, person(version=2, email="again@example.com"))
        # Same version, later change (a publisher that does not bump versions): the later one wins.
        assert handlers.on_customer_updated(uow, person(version=2, email="later@example.com", when=at(5)))
        assert handlers.on_customer_updated(uow, person(version=3, email="", webhook=""))
        uow.commit()
    stored = uow.contacts.get("C1")
    assert (stored.version, stored.email, stored.webhook_url) == (3, "", "")


def test_customer_updated_event_is_projected_with_its_envelope_version():
    consumes = events.build()
    uow = fake_uow()
    payload = crm_ev.CustomerUpdated(customer_id="C9", name="Bo", email=MAIL, webhook_url="not a url",
                                     payment_terms_days=30, status="active")
    env = envelopes.build(source="crm", aggregate_type="customer", aggregate_id="C9", aggregate_version=4,
                          payload=payload)
    with uow:
        consumes.handlers[env.event_type](uow, payload, env)
        uow.commit()
    stored = uow.contacts.get("C9")
    assert (stored.name, stored.email, stored.webhook_url, stored.version) == ("Bo", MAIL, "", 4)
    assert stored.occurred_at == env.occurred_at.ToDatetime(dt.UTC)


# ---------------------------------------------------------------- templates


def test_every_notified_event_has_a_template_and_every_template_an_event():
    assert set(templates.TEMPLATES) == {t.DESCRIPTOR.full_name for t in events.NOTIFIED + events.SUPPLIER_NOTIFIED}
    assert set(SAMPLES) == set(events.NOTIFIED)


@pytest.mark.parametrize("payload_type", list(SAMPLES), ids=lambda t: t.__name__)
def test_every_template_renders_from_its_event(payload_type):
    payload = SAMPLES[payload_type]
    fields = {**events.fields_of(payload), "customer_name": "Ada Buyer", "customer_id": "C1"}
    rendered = templates.render(payload_type.DESCRIPTOR.full_name, fields)
    assert "\n" not in rendered.subject and rendered.subject
    assert "Dear Ada Buyer," in rendered.body
    assert "order O1" in rendered.body
    # Every placeholder was filled: nothing like ${name} or $name is left.
    assert re.search(r"\$\{?[A-Za-z_]", rendered.subject + rendered.body) is None


def test_a_template_field_the_event_lacks_fails_loudly():
    with pytest.raises(KeyError):
        templates.render(orders_ev.OrderConfirmed.DESCRIPTOR.full_name, {"order_id": "O1"})
    with pytest.raises(KeyError):
        templates.render("erp.events.v1.NoSuchEvent", {})


def test_order_confirmed_fields_show_exact_money_and_every_line():
    fields = events.fields_of(confirmed())
    assert fields["total"] == "708.60 EUR"
    assert fields["lines"] == "  4 x CHAIR at 89.90 EUR\n  1 x DESK at 349.00 EUR"


def test_a_long_order_lists_the_first_lines_and_counts_the_rest():
    lines = [orders_ev.OrderLineItem(line_no=i, sku=f"S{i}", quantity=1) for i in range(1, 61)]
    text = events.fields_of(orders_ev.OrderShipped(order_id="O1", customer_id="C1", lines=lines))["lines"]
    assert text.count("\n") == events.MAX_LINES_SHOWN
    assert text.endswith("... and 10 more lines")


def test_payment_text_says_whether_the_invoice_is_settled():
    partial = events.fields_of(SAMPLES[fin_ev.PaymentReceived])
    assert partial["balance"] == "Still due on this invoice: 750.32 EUR."
    full = events.fields_of(fin_ev.PaymentReceived(order_id="O1", customer_id="C1", amount=money("750.32"),
                                                   amount_due=money("0"), paid_in_full=True))
    assert full["balance"] == "Your invoice is now paid in full."


def test_a_line_break_in_an_event_never_reaches_the_subject_header():
    fields = {**events.fields_of(confirmed(order_id="O1\r\nBcc: evil@example.com")),
              "customer_name": "x", "customer_id": "C1"}
    subject = templates.render(orders_ev.OrderConfirmed.DESCRIPTOR.full_name, fields).subject
    assert "\n" not in subject and "\r" not in subject


# ---------------------------------------------------------------- notify (in the consumer's transaction)


def test_an_event_queues_one_delivery_per_channel_and_wakes_the_dispatcher_after_commit():
    uow, woken = fake_uow(), []
    uow.contacts.rows["C1"] = person()
    with uow:
        queued = handlers.notify(uow, notify_cmd(), wake=lambda: woken.append(1), now=T0, new_id=ids())
        assert woken == []  # not before the commit
        uow.commit()
    assert woken == [1]
    assert uow.commits == 1
    assert sorted((d.channel, d.recipient) for d in queued) == [(Channel.EMAIL, MAIL), (Channel.WEBHOOK, HOOK)]
    for d in uow.deliveries.rows.values():
        assert d.status is DeliveryStatus.PENDING and d.attempts == 0 and d.next_attempt_at == T0
        assert d.subject == "Order O1 confirmed"
        assert "Dear Ada Buyer," in d.body and "708.60 EUR" in d.body
        assert d.data["order_id"] == "O1" and d.data["customer_name"] == "Ada Buyer"


def test_the_same_event_twice_queues_nothing_more():
    uow, woken = fake_uow(), []
    uow.contacts.rows["C1"] = person()
    new_id = ids()
    for _ in range(2):
        with uow:
            handlers.notify(uow, notify_cmd(event_id="E1"), wake=lambda: woken.append(1), now=T0, new_id=new_id)
            uow.commit()
    assert len(uow.deliveries.rows) == 2
    assert woken == [1, 1]  # the repeat's are left out at the commit; a woken dispatcher finds nothing new
    with uow:
        handlers.notify(uow, notify_cmd(event_id="E2"), now=T0, new_id=new_id)
        uow.commit()
    assert len(uow.deliveries.rows) == 4  # another event is another notification


def test_an_event_for_a_customer_not_known_yet_is_held_and_its_customer_update_queues_it_once():
    uow, woken = fake_uow(), []
    for _ in range(2):  # the repeat holds nothing more
        with uow:
            assert handlers.notify(uow, notify_cmd(), wake=lambda: woken.append(1), now=T0) == []
            uow.commit()
    assert uow.deliveries.rows == {} and woken == []
    [held] = uow.held.rows.values()
    assert (held.event_id, held.customer_id, held.status, held.held_at) == ("E1", "C1", HoldStatus.WAITING, T0)
    with uow:
        handlers.on_customer_updated(uow, person(), wake=lambda: woken.append(1), now=at(5), new_id=ids())
        uow.commit()
    assert sorted(d.channel for d in uow.deliveries.rows.values()) == [Channel.EMAIL, Channel.WEBHOOK]
    assert all(d.subject == "Order O1 confirmed" and "Dear Ada Buyer," in d.body for d in uow.deliveries.rows.values())
    assert woken == [1]
    assert (uow.held.rows["E1"].status, uow.held.rows["E1"].settled_at) == (HoldStatus.RELEASED, at(5))
    for version in (2, 3):  # later updates of the customer queue nothing again
        with uow:
            handlers.on_customer_updated(uow, person(version=version), now=at(9), new_id=ids())
            uow.commit()
    assert len(uow.deliveries.rows) == 2
    with uow:  # nor does the event itself, repeated once the customer is known
        handlers.notify(uow, notify_cmd(), now=at(10))
        uow.commit()
    assert len(uow.deliveries.rows) == 2


def test_a_held_notification_is_given_up_after_the_wait_and_stays_given_up():
    uow = fake_uow()
    wait = dt.timedelta(hours=1)
    with uow:
        handlers.notify(uow, notify_cmd(event_id="E1"), now=T0)
        handlers.notify(uow, notify_cmd(event_id="E2"), now=at(1800))
        uow.commit()
    assert handlers.give_up_waiting(uow, wait, now=at(3599)) == []
    [given_up] = handlers.give_up_waiting(uow, wait, now=at(3600))
    assert (given_up.event_id, given_up.status, given_up.settled_at) == ("E1", HoldStatus.NO_SUCH_CUSTOMER, at(3600))
    assert REGISTRY.get_sample_value("erp_held_notifications_waiting") == 1  # E2
    with uow:  # the customer comes after all: only what still waits is sent
        handlers.on_customer_updated(uow, person(), now=at(3700), new_id=ids())
        uow.commit()
    assert {d.event_id for d in uow.deliveries.rows.values()} == {"E2"}
    assert uow.held.rows["E1"].status is HoldStatus.NO_SUCH_CUSTOMER
    assert uow.held.rows["E2"].status is HoldStatus.RELEASED


def test_held_notifications_are_listed_newest_first_by_customer_and_status():
    uow = fake_uow()
    with uow:
        for i, customer in enumerate(["C1", "C2", "C1"]):
            handlers.notify(uow, notify_cmd(confirmed(f"O{i}", customer), event_id=f"E{i}"), now=at(i))
        uow.commit()
    handlers.give_up_waiting(uow, dt.timedelta(seconds=10), now=at(10.5))  # E0 only
    everything, token = handlers.list_held(uow, ListHeld(0, ""))
    assert [h.event_id for h in everything] == ["E2", "E1", "E0"] and token == ""
    page, token = handlers.list_held(uow, ListHeld(1, "", customer_id="C1"))
    assert [h.event_id for h in page] == ["E2"]
    assert [h.event_id for h in handlers.list_held(uow, ListHeld(1, token, customer_id="C1"))[0]] == ["E0"]
    given_up, _ = handlers.list_held(uow, ListHeld(0, "", status=HoldStatus.NO_SUCH_CUSTOMER))
    assert [h.event_id for h in given_up] == ["E0"]
    with pytest.raises(InvalidArgument):
        handlers.list_held(uow, ListHeld(1, token, customer_id="C2"))  # a token is bound to its filters


def test_a_rolled_back_consumer_transaction_leaves_no_delivery_and_wakes_nobody():
    uow, woken = fake_uow(), []
    uow.contacts.rows["C1"] = person()
    with uow:
        handlers.notify(uow, notify_cmd(), wake=lambda: woken.append(1), now=T0)
    assert uow.deliveries.rows == {} and woken == []


@pytest.mark.parametrize(("email", "webhook", "channels"), [
    (MAIL, "", [Channel.EMAIL]), ("", HOOK, [Channel.WEBHOOK]), ("", "", [])])
def test_deliveries_follow_the_channels_the_customer_has(email, webhook, channels):
    uow = fake_uow()
    uow.contacts.rows["C1"] = person(email=email, webhook=webhook)
    with uow:
        handlers.notify(uow, notify_cmd(), now=T0)
        uow.commit()
    assert sorted(d.channel for d in uow.deliveries.rows.values()) == channels


def test_the_consumer_handlers_cover_every_notified_event_and_use_the_envelope_event_id():
    consumes = events.build()
    assert set(consumes.event_types) == {crm_ev.CustomerUpdated.DESCRIPTOR.full_name} | {
        t.DESCRIPTOR.full_name for t in events.NOTIFIED + events.SUPPLIER_NOTIFIED}
    uow = fake_uow()
    uow.contacts.rows["C1"] = person()
    for payload in SAMPLES.values():
        env = envelopes.build(source="test", aggregate_type="order", aggregate_id="O1", aggregate_version=1,
                              payload=payload)
        with uow:
            consumes.handlers[env.event_type](uow, payload, env)
            uow.commit()
    rows = list(uow.deliveries.rows.values())
    assert len(rows) == 2 * len(SAMPLES)
    assert {d.event_type for d in rows} == {t.DESCRIPTOR.full_name for t in events.NOTIFIED}
    assert len({d.event_id for d in rows}) == len(SAMPLES)


# ---------------------------------------------------------------- retry policy and attempts


def test_backoff_doubles_from_the_base_and_is_capped():
    policy = RetryPolicy(max_attempts=30, base_seconds=1.5)
    assert [policy.delay_after(n) for n in (1, 2, 3, 4)] == [1.5, 3.0, 6.0, 12.0]
    assert policy.delay_after(29) == domain.MAX_RETRY_DELAY_SECONDS


@pytest.mark.parametrize(("attempts", "base"), [(0, 1.0), (3, 0.0), (3, -1.0)])
def test_a_retry_policy_that_cannot_work_is_refused(attempts, base):
    with pytest.raises(ValueError):
        RetryPolicy(attempts, base)


def pending(**changes) -> Delivery:
    base = Delivery("D1", "E1", "erp.events.v1.OrderConfirmed", "C1", Channel.WEBHOOK, HOOK, "s", "b", {},
                    created_at=T0, next_attempt_at=T0)
    return dataclasses.replace(base, **changes)


def test_an_attempt_moves_a_delivery_by_the_policy():
    failed_once, attempt = domain.attempted(pending(), T0, "HTTP 500", POLICY)
    assert (failed_once.status, failed_once.attempts, failed_once.last_error) == (DeliveryStatus.PENDING, 1, "HTTP 500")
    assert failed_once.next_attempt_at == at(2) and failed_once.last_attempt_at == T0
    assert (attempt.attempt_no, attempt.ok, attempt.error) == (1, False, "HTTP 500")
    failed_twice, _ = domain.attempted(failed_once, at(2), "HTTP 500", POLICY)
    assert failed_twice.next_attempt_at == at(2 + 4)
    delivered, attempt = domain.attempted(failed_twice, at(6), "", POLICY)
    assert (delivered.status, delivered.attempts, delivered.last_error) == (DeliveryStatus.DELIVERED, 3, "")
    assert attempt.ok
    with pytest.raises(ValueError):
        domain.attempted(delivered, at(7), "", POLICY)  # a settled delivery is never attempted again


def test_the_last_allowed_failure_ends_failed():
    d = pending(attempts=POLICY.max_attempts - 1)
    failed, attempt = domain.attempted(d, T0, "x" * 1000, POLICY)
    assert failed.status is DeliveryStatus.FAILED and failed.attempts == POLICY.max_attempts
    assert len(failed.last_error) == domain.MAX_ERROR and attempt.error == failed.last_error


# ---------------------------------------------------------------- dispatcher


def queued(uow, **contact) -> list[Delivery]:
    uow.contacts.rows["C1"] = person(**contact)
    with uow:
        found = handlers.notify(uow, notify_cmd(), now=T0, new_id=ids())
        uow.commit()
    return found


def drain(uow, senders, now) -> list[Delivery]:
    done = []
    while batch := handlers.dispatch_due(uow, senders, POLICY, now):
        done.extend(batch)
    return done


def test_due_deliveries_are_sent_once_and_marked_delivered():
    uow, senders = fake_uow(), FakeSenders()
    queued(uow)
    assert len(drain(uow, senders, at(0))) == 2
    assert sorted(s.recipient for s in senders.sent) == [MAIL, HOOK]
    assert all(d.status is DeliveryStatus.DELIVERED and d.attempts == 1 for d in uow.deliveries.rows.values())
    assert drain(uow, senders, at(3600)) == []  # never sent again
    assert len(senders.sent) == 2
    assert [len(uow.deliveries.attempts(d)) for d in uow.deliveries.rows] == [1, 1]


def test_a_dispatch_with_a_pool_sends_its_deliveries_at_the_same_time():
    uow = fake_uow()
    queued(uow)  # an email and a webhook, both due
    both_in_flight = threading.Barrier(2, timeout=5)

    class Meeting(FakeSenders):
        def send(self, d, now, contact=None):
            both_in_flight.wait()  # one after another, the first would wait here alone, and fail
            super().send(d, now, contact)

    senders = Meeting()
    with futures.ThreadPoolExecutor(2) as pool:
        done = handlers.dispatch_due(uow, senders, POLICY, at(0), pool=pool)
    assert [d.status for d in done] == [DeliveryStatus.DELIVERED] * 2
    hook = senders.sent.index(senders.to(HOOK)[0])
    assert senders.contacts[hook] == uow.contacts.get("C1")  # read on the dispatcher's thread, signed with it


def test_a_dispatch_with_a_pool_leaves_the_sends_not_started_when_its_budget_is_spent():
    uow = fake_uow()
    queued(uow)
    release = threading.Event()

    class Slow(FakeSenders):
        def send(self, d, now, contact=None):
            release.wait(5)
            super().send(d, now, contact)

    senders = Slow()
    timer = threading.Timer(0.2, release.set)
    timer.start()
    with futures.ThreadPoolExecutor(1) as pool:  # the second send queues behind the first
        done = handlers.dispatch_due(uow, senders, POLICY, at(0), budget_seconds=0, pool=pool)
    timer.join()
    assert len(done) == 1 and len(senders.sent) == 1  # the first always goes; the second never started
    pending = [d for d in uow.deliveries.rows.values() if d.status is DeliveryStatus.PENDING]
    assert len(pending) == 1 and pending[0].attempts == 0


def test_a_dispatch_sends_at_most_its_limit_and_stops_claiming_sends_when_its_budget_is_spent():
    uow, senders = fake_uow(), FakeSenders()
    queued(uow)  # an email and a webhook, both due
    assert len(handlers.dispatch_due(uow, senders, POLICY, at(0), limit=1)) == 1
    assert len(handlers.dispatch_due(uow, senders, POLICY, at(0), limit=5)) == 1  # the other one
    assert len(senders.sent) == 2
    uow, senders = fake_uow(), FakeSenders()
    queued(uow)
    # a budget already spent: the first claimed delivery goes, the second waits for the next round
    assert len(handlers.dispatch_due(uow, senders, POLICY, at(0), budget_seconds=-1)) == 1
    pending = [d for d in uow.deliveries.rows.values() if d.status is DeliveryStatus.PENDING]
    assert len(pending) == 1 and pending[0].attempts == 0 and len(senders.sent) == 1
    assert len(handlers.dispatch_due(uow, senders, POLICY, at(0))) == 1


def test_a_failing_webhook_is_retried_with_backoff_and_every_attempt_recorded():
    uow = fake_uow()
    senders = FakeSenders({HOOK: ["HTTP 503", "webhook not reachable: refused"]})
    [hook] = queued(uow, email="")
    drain(uow, senders, at(0))
    assert uow.deliveries.get(hook.delivery_id).next_attempt_at == at(2)
    assert drain(uow, senders, at(1.9)) == []  # not due yet
    drain(uow, senders, at(2))
    assert uow.deliveries.get(hook.delivery_id).next_attempt_at == at(2 + 4)
    assert drain(uow, senders, at(5.9)) == []
    drain(uow, senders, at(6))
    final = uow.deliveries.get(hook.delivery_id)
    assert (final.status, final.attempts, final.last_error) == (DeliveryStatus.DELIVERED, 3, "")
    assert [s.at for s in senders.sent] == [at(0), at(2), at(6)]
    assert [(a.attempt_no, a.attempted_at, a.error) for a in uow.deliveries.attempts(hook.delivery_id)] == [
        (1, at(0), "HTTP 503"), (2, at(2), "webhook not reachable: refused"), (3, at(6), "")]


def test_a_delivery_that_always_fails_ends_failed_after_the_max_attempts():
    uow = fake_uow()
    senders = FakeSenders({MAIL: ["no SMTP server configured"] * 10})
    [mail] = queued(uow, webhook="")
    for t in range(0, 100):
        drain(uow, senders, at(t))
    final = uow.deliveries.get(mail.delivery_id)
    assert (final.status, final.attempts) == (DeliveryStatus.FAILED, POLICY.max_attempts)
    assert final.last_error == "no SMTP server configured"
    assert len(senders.sent) == POLICY.max_attempts
    assert [a.ok for a in uow.deliveries.attempts(mail.delivery_id)] == [False] * POLICY.max_attempts
    assert handlers.seconds_until_due(uow, senders, at(100)) is None  # nothing left to do


def test_a_delivery_that_ends_is_announced_once_with_its_order_for_the_timeline():
    uow = fake_uow()
    senders = FakeSenders({HOOK: ["HTTP 503"] * 10})
    mail, hook = sorted(queued(uow), key=lambda d: d.channel)
    for t in range(0, 100):
        drain(uow, senders, at(t))
    assert [(e.aggregate_type, e.version) for e in uow.events] == [("dispatch_round", 1)] * 2
    first, last = (e.payload for e in uow.events)  # a failed attempt that is retried announces nothing
    assert list(first.sent) == [notification_ev.NotificationSent(
        delivery_id=mail.delivery_id, event_id="E1", event_type="erp.events.v1.OrderConfirmed", customer_id="C1",
        order_id=confirmed().order_id, channel="email", attempts=1)] and not first.failed
    assert [(f.delivery_id, f.order_id, f.attempts, f.error) for f in last.failed] == [
        (hook.delivery_id, confirmed().order_id, POLICY.max_attempts, "HTTP 503")] and not last.sent


def test_the_deliveries_a_round_settles_are_announced_in_one_event():
    uow = fake_uow()
    senders = FakeSenders({HOOK: ["HTTP 503"] * 2})
    queued(uow)
    with uow:  # a second order's email, sent in the same round
        handlers.notify(uow, notify_cmd(confirmed(order_id="O2"), event_id="E2"), now=T0, new_id=iter(["D-O2-mail", "D-O2-hook"]).__next__)
        uow.commit()
    drain(uow, senders, at(0))
    [round_] = uow.payloads(notification_ev.DeliveriesSettled)  # the webhooks' 503s are retried: not in it
    assert sorted((sent.event_id, sent.order_id, sent.channel) for sent in round_.sent) == [
        ("E1", "O1", "email"), ("E2", "O2", "email")] and not round_.failed
    assert len(uow.events) == 1


def test_a_notification_about_no_sales_order_is_announced_without_one():
    uow, senders = fake_uow(), FakeSenders()
    uow.contacts.rows["C1"] = person(webhook="")
    approved = procurement_ev.PurchaseOrderApproved(purchase_order_id="PO-1", supplier_id="S1")
    with uow:
        handlers.notify(uow, Notify("E9", approved.DESCRIPTOR.full_name, "C1", events.fields_of(approved)),
                        now=T0, new_id=ids())
        uow.commit()
    drain(uow, senders, at(0))
    [announced] = uow.payloads(notification_ev.DeliveriesSettled)[0].sent
    assert announced.order_id == "" and announced.event_type == "erp.events.v1.PurchaseOrderApproved"


def test_a_sender_that_crashes_counts_as_a_failed_attempt_and_the_dispatcher_goes_on():
    uow = fake_uow()
    senders = FakeSenders(crash={HOOK: ZeroDivisionError("bug")})
    queued(uow)
    assert len(drain(uow, senders, at(0))) == 2
    by_channel = {d.channel: d for d in uow.deliveries.rows.values()}
    assert by_channel[Channel.WEBHOOK].last_error == "ZeroDivisionError: bug"
    assert by_channel[Channel.WEBHOOK].status is DeliveryStatus.PENDING
    assert by_channel[Channel.EMAIL].status is DeliveryStatus.DELIVERED


def test_a_row_another_dispatcher_holds_is_skipped():
    uow, senders = fake_uow(), FakeSenders()
    mail, hook = sorted(queued(uow), key=lambda d: d.channel)
    uow.deliveries.locked_elsewhere.add(hook.delivery_id)
    drain(uow, senders, at(0))
    assert [s.recipient for s in senders.sent] == [MAIL]
    assert uow.deliveries.get(hook.delivery_id).attempts == 0


def test_seconds_until_due_tells_the_dispatcher_how_long_to_sleep():
    uow, senders = fake_uow(), FakeSenders()
    assert handlers.seconds_until_due(uow, senders, T0) is None
    queued(uow, email="")
    assert handlers.seconds_until_due(uow, senders, at(-3)) == 3.0
    assert handlers.seconds_until_due(uow, senders, at(10)) == 0.0
    senders.paused_channels = {Channel.WEBHOOK: 5.0}
    assert handlers.seconds_until_due(uow, senders, at(10)) is None  # the dispatcher waits for the pause


def test_an_email_whose_relay_is_down_is_not_attempted_and_waits_while_webhooks_go_out():
    uow = fake_uow()
    senders = FakeSenders(crash={MAIL: RelayUnavailable("SMTP relay mail:25 unavailable (ConnectionRefusedError)")})
    mail, hook = sorted(queued(uow), key=lambda d: d.channel)
    assert [d.delivery_id for d in drain(uow, senders, at(0))] == [hook.delivery_id]
    waiting = uow.deliveries.get(mail.delivery_id)
    assert (waiting.status, waiting.attempts, waiting.last_error) == (DeliveryStatus.PENDING, 0, "")
    assert uow.deliveries.attempts(mail.delivery_id) == [] and not [f for settled in uow.payloads(notification_ev.DeliveriesSettled) for f in settled.failed]

    # While the relay's pause lasts, the email is not even claimed; the next webhook still goes out.
    senders.paused_channels, senders.crash, claimed = {Channel.EMAIL: 2.0}, {}, len(uow.deliveries.claimed)
    other = dataclasses.replace(hook, delivery_id="D-hook-2", event_id="E2")
    uow.deliveries.add(other)
    assert [d.delivery_id for d in drain(uow, senders, at(1))] == ["D-hook-2"]
    assert uow.deliveries.claimed[claimed:] == ["D-hook-2"]
    # Every channel paused: nothing is claimed at all.
    senders.paused_channels = {Channel.EMAIL: 2.0, Channel.WEBHOOK: 1.0}
    assert drain(uow, senders, at(1)) == [] and uow.deliveries.claimed[claimed:] == ["D-hook-2"]

    # The pause over and the relay back: the email's first attempt is its first real one.
    senders.paused_channels = {}
    assert [d.delivery_id for d in drain(uow, senders, at(3))] == [mail.delivery_id]
    sent = uow.deliveries.get(mail.delivery_id)
    assert (sent.status, sent.attempts) == (DeliveryStatus.DELIVERED, 1)


# ---------------------------------------------------------------- webhook signature and senders


def test_the_webhook_signature_is_hmac_sha256_over_timestamp_dot_body():
    d = pending(data={"order_id": "O1"})
    body = domain.webhook_body(d)
    headers = domain.webhook_headers(d, "s3cret", body, T0)
    timestamp = str(int(T0.timestamp()))
    expected = hmac.new(b"s3cret", f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-ERP-Signature"] == "sha256=" + expected
    assert headers["X-ERP-Timestamp"] == timestamp
    assert headers["X-ERP-Delivery-Id"] == "D1"
    assert headers["X-ERP-Event-Type"] == "erp.events.v1.OrderConfirmed"
    assert json.loads(body) == {"delivery_id": "D1", "event_id": "E1", "event_type": "erp.events.v1.OrderConfirmed",
                                "customer_id": "C1", "subject": "s", "text": "b", "data": {"order_id": "O1"}}
    assert domain.signature("other", timestamp, body) != headers["X-ERP-Signature"]
    assert domain.signature("s3cret", str(int(T0.timestamp()) + 1), body) != headers["X-ERP-Signature"]


def test_without_an_smtp_server_email_fails_with_a_clear_reason():
    with pytest.raises(SendFailed, match="no SMTP server configured"):
        EmailSender("", "erp@localhost").send(pending(channel=Channel.EMAIL, recipient=MAIL), T0)


def test_the_email_message_id_is_derived_from_the_delivery_id():
    d = pending(channel=Channel.EMAIL, recipient=MAIL, subject="Order O1 confirmed", body="Hello",
                data={"customer_name": "Ada Buyer"})
    msg = EmailSender("smtp://mail.example.com:2525", "erp@shop.example").message(d, T0)
    assert msg["Message-ID"] == "<D1@shop.example>"
    assert msg["To"] == f"Ada Buyer <{MAIL}>" and msg["From"] == "erp@shop.example"
    assert msg["Subject"] == "Order O1 confirmed" and msg["X-ERP-Delivery-Id"] == "D1"
    assert msg.get_content().strip() == "Hello"


def test_an_email_with_non_ascii_name_subject_and_body_reads_back_as_written():
    body = "Chère Zoë,\nvotre commande est confirmée.\n.\n" + "é" * 300
    d = pending(channel=Channel.EMAIL, recipient=MAIL, subject="Commande O1 confirmée — 李雷 " + "x" * 100,
                body=body, data={"customer_name": 'Zoë Ünal, "QA"'})
    sender = EmailSender("smtp://mail.example.com:2525", "erp@shop.example")
    raw = sender.render(d, T0)
    assert raw.isascii() and max(len(line) for line in raw.split(b"\r\n")) <= 78
    assert b"\n" not in raw.replace(b"\r\n", b"")  # CRLF only, as SMTP wants
    msg = sender.message(d, T0)
    assert msg["To"].addresses[0].display_name == 'Zoë Ünal, "QA"' and msg["To"].addresses[0].addr_spec == MAIL
    assert msg["Subject"] == d.subject
    assert msg.get_content().replace("\r\n", "\n") == body + "\n"


@pytest.mark.parametrize("field", ["subject", "customer_name"])
def test_a_line_break_in_a_header_value_is_refused_not_sent(field):
    d = pending(channel=Channel.EMAIL, recipient=MAIL, subject="Order O1\r\nBcc: victim@example.com",
                data={"customer_name": "Ada"})
    if field == "customer_name":
        d = pending(channel=Channel.EMAIL, recipient=MAIL, subject="Order O1",
                    data={"customer_name": "Ada\nBcc: victim@example.com"})
    with pytest.raises(SendFailed, match="cannot build the email: a header value holds a line break"):
        EmailSender("smtp://127.0.0.1:9", "erp@shop.example").send(d, T0)


def test_a_webhook_url_that_is_not_http_is_never_opened():
    with pytest.raises(SendFailed, match="not an http"):
        WebhookSender("s").send(pending(recipient="file:///etc/passwd"), T0)


@pytest.mark.parametrize("url", ["mail.example.com:25", "smtps://mail.example.com", "smtp://", "http://x:25"])
def test_a_malformed_smtp_url_is_refused(url):
    with pytest.raises(ValueError, match="ERP_SMTP_URL"):
        parse_smtp_url(url)
    assert parse_smtp_url("smtp://mail.example.com") == ("mail.example.com", 25)
    assert parse_smtp_url("smtp://127.0.0.1:2525") == ("127.0.0.1", 2525)


# ---------------------------------------------------------------- settings


def settings(**env):
    return dataclasses.replace(load("notification"), env=env)


def test_settings_defaults_and_the_default_secret_warning(caplog):
    config = Config.from_settings(settings())
    assert config.policy == RetryPolicy(6, 1.0)
    assert config.customer_wait == dt.timedelta(days=1) and config.give_up_every == 60.0
    assert (config.smtp_url, config.smtp_from, config.webhook_secret) == ("", "erp@localhost", DEFAULT_WEBHOOK_SECRET)
    assert config.send_concurrency == 8
    assert Config.from_settings(settings(ERP_NOTIFICATION_SEND_CONCURRENCY="1")).send_concurrency == 1
    with caplog.at_level(logging.WARNING):
        Dispatcher().configure(settings())
    assert "ERP_WEBHOOK_SECRET" in caplog.text and "ERP_WEBHOOK_SIGNING_KEY" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        Dispatcher().configure(settings(ERP_WEBHOOK_SECRET="k", ERP_SMTP_URL="smtp://127.0.0.1:25",
                                        ERP_WEBHOOK_SIGNING_KEY="k" * 32))
    assert caplog.text == ""


@pytest.mark.parametrize("env", [{"ERP_NOTIFICATION_MAX_ATTEMPTS": "many"}, {"ERP_NOTIFICATION_MAX_ATTEMPTS": "0"},
                                 {"ERP_NOTIFICATION_RETRY_BASE_SECONDS": "-1"}, {"ERP_SMTP_URL": "localhost:25"},
                                 {"ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS": "0"},
                                 {"ERP_NOTIFICATION_SEND_CONCURRENCY": "0"},
                                 {"ERP_NOTIFICATION_SEND_CONCURRENCY": "65"},
                                 {"ERP_WEBHOOK_SIGNING_KEY": "too-short"},
                                 {"ERP_WEBHOOK_SIGNING_KEYS_RETIRED": "k" * 32 + ",short"}])
def test_bad_settings_stop_the_start_up(env):
    with pytest.raises(ValueError):
        Config.from_settings(settings(**env))


# ---------------------------------------------------------------- ListDeliveries


def listing(uow, page_size=0, token="", **filters) -> tuple[list[Delivery], str]:
    return handlers.list_deliveries(uow, ListDeliveries(page_size, token, **filters))


def seeded() -> object:
    uow = fake_uow()
    uow.contacts.rows["C1"] = person()
    uow.contacts.rows["C2"] = person("C2", email="other@example.com", webhook="")
    new_id = ids()
    for i in range(5):
        for customer in ("C1", "C2"):
            with uow:
                handlers.notify(uow, notify_cmd(confirmed(f"O{i}", customer), event_id=f"E{i}{customer}"),
                                now=at(i), new_id=new_id)
                uow.commit()
    return uow


def test_deliveries_are_listed_newest_first_and_filtered():
    uow = seeded()
    everything, token = listing(uow)
    assert len(everything) == 15 and token == ""
    assert [d.created_at for d in everything] == sorted((d.created_at for d in everything), reverse=True)
    mine, _ = listing(uow, recipient="other@example.com")
    assert len(mine) == 5 and {d.customer_id for d in mine} == {"C2"}
    c1, _ = listing(uow, customer_id="C1")
    assert len(c1) == 10 and {d.recipient for d in c1} == {MAIL, HOOK}
    one_event, _ = listing(uow, event_id="E3C1")
    assert {(d.event_id, d.channel) for d in one_event} == {("E3C1", Channel.EMAIL), ("E3C1", Channel.WEBHOOK)}
    assert listing(uow, recipient="nobody@example.com") == ([], "")


def test_paging_walks_every_delivery_exactly_once():
    uow = seeded()
    seen, token, pages = [], "", 0
    while True:
        page, token = listing(uow, page_size=4, token=token, customer_id="C1")
        seen += [d.delivery_id for d in page]
        pages += 1
        if not token:
            break
    assert pages == 3 and len(seen) == 10 and len(set(seen)) == 10
    _, token = listing(uow, page_size=4, customer_id="C1")
    with pytest.raises(InvalidArgument) as exc:
        listing(uow, page_size=4, token=token, customer_id="C2")  # a token is bound to its filters
    assert [v.field for v in exc.value.violations] == ["page.page_token"]


def test_a_bad_listing_request_reports_every_field():
    uow = fake_uow()
    with pytest.raises(InvalidArgument) as exc:
        listing(uow, page_size=-1, recipient="x" * 3000, customer_id="c" * 81, event_id="e" * 65)
    assert [v.field for v in exc.value.violations] == ["page.page_size", "recipient", "customer_id", "event_id"]
    no_filters = ListDeliveries(0, "").filters
    for token in ("garbage!", paging.encode([1, 2], no_filters), paging.encode(["2026-03-01T12:00:00", "D1"],
                                                                               no_filters)):
        with pytest.raises(InvalidArgument):
            listing(uow, token=token)


# ---------------------------------------------------------------- suppliers


def approved_po(email=MAIL, webhook_url=HOOK) -> procurement_ev.PurchaseOrderApproved:
    return procurement_ev.PurchaseOrderApproved(
        purchase_order_id="PO1", number="PO-2026-000001", supplier_id="S1", supplier_name="Acme Supply",
        supplier_email=email, supplier_webhook_url=webhook_url, warehouse_code="MAIN", total=money("120"),
        approved_by="bo", lines=[procurement_ev.PurchaseOrderLineItem(line_no=1, sku="BOLT", quantity=100,
                                                                      unit_price=money("1.2"),
                                                                      expected_date="2026-12-24")])


def test_an_approved_purchase_order_is_sent_to_the_supplier_once_on_each_channel_it_names():
    consumes = events.build()
    handler = consumes.handlers[procurement_ev.PurchaseOrderApproved.DESCRIPTOR.full_name]
    uow = fake_uow()  # no customer contact is needed: the event carries the supplier's addresses
    payload = approved_po()
    env = envelopes.build(source="procurement", aggregate_type="purchase_order", aggregate_id="PO1",
                          aggregate_version=4, payload=payload)
    for _ in range(2):  # a redelivery queues nothing more
        with uow:
            handler(uow, payload, env)
            uow.commit()
    rows = list(uow.deliveries.rows.values())
    assert sorted((d.channel, d.recipient) for d in rows) == sorted([(domain.Channel.EMAIL, MAIL),
                                                                     (domain.Channel.WEBHOOK, HOOK)])
    assert {d.customer_id for d in rows} == {events.supplier_party("S1")}
    email = next(d for d in rows if d.channel is domain.Channel.EMAIL)
    assert email.subject == "Purchase order PO-2026-000001"
    assert "Dear Acme Supply," in email.body and "100 x BOLT at 1.20 EUR, expected 2026-12-24" in email.body


def test_a_supplier_address_that_cannot_be_used_turns_that_channel_off():
    consumes = events.build()
    handler = consumes.handlers[procurement_ev.PurchaseOrderApproved.DESCRIPTOR.full_name]
    uow = fake_uow()
    payload = approved_po(email="not an address")
    env = envelopes.build(source="procurement", aggregate_type="purchase_order", aggregate_id="PO1",
                          aggregate_version=4, payload=payload)
    with uow:
        handler(uow, payload, env)
        uow.commit()
    assert [d.channel for d in uow.deliveries.rows.values()] == [domain.Channel.WEBHOOK]
