"""Notification's use cases. on_customer_updated and notify run inside the event
consumer's transaction (with the inbox row) and do not commit; dispatch_due,
give_up_waiting and the listings own their transaction."""
from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent import futures
from concurrent.futures import Executor
from typing import TypedDict

from erp.events.v1 import notification_events_pb2 as ev
from mesh import metrics, paging
from services.notification import domain, templates
from services.notification.adapters import NotificationUnitOfWork
from services.notification.domain import (
    Contact,
    Delivery,
    Held,
    HoldStatus,
    Notify,
    RelayUnavailable,
    RetryPolicy,
    SendFailed,
)

log = logging.getLogger("services.notification")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def _count(status: HoldStatus, n: int = 1) -> Callable[[], None]:
    return lambda: metrics.labelled(metrics.HELD_NOTIFICATIONS, str(status)).inc(n)


def on_customer_updated(uow: NotificationUnitOfWork, update: Contact, problems: Sequence[str] = (),
                        wake: Callable[[], None] = lambda: None,
                        now: dt.datetime | None = None, new_id: Callable[[], str] = _new_id) -> bool:
    """Keeps the newest contact data of a customer and queues the deliveries of the events
    held for it; returns whether it changed the contact. Runs under the customer's lock,
    as notify() does, so no event is held after its customer's update has looked."""
    for problem in problems:
        log.warning("customer %s: %s; that channel stays off", update.customer_id, problem)
    current = uow.contacts.get(update.customer_id)
    changed = domain.newer(current, update) and uow.contacts.put(update)  # else an older update, late
    contact = update if changed else current
    if contact is not None:
        release_held(uow, contact, wake, now, new_id)
    return changed


def notify(uow: NotificationUnitOfWork, cmd: Notify, wake: Callable[[], None] = lambda: None,
           now: dt.datetime | None = None,
           new_id: Callable[[], str] = _new_id) -> list[Delivery]:
    """Renders the event's template and queues one delivery per channel the customer has; returns
    them. They are written when the transaction commits, where a repeated event's are left out
    (the deliveries table keeps one per event, channel and recipient). The dispatcher is woken once
    this commits. An event whose customer is not known yet is held for it (nothing queued yet)."""
    contact = uow.contacts.get(cmd.customer_id)
    if contact is None:
        hold(uow, cmd, now)
        return []
    return notify_contact(uow, contact, cmd, wake, now, new_id)


def hold(uow: NotificationUnitOfWork, cmd: Notify, now: dt.datetime | None = None) -> bool:
    """Keeps an event until its customer's CustomerUpdated comes (domain.Held); returns
    whether it was held now (False: a repeat of an event held before)."""
    if not uow.held.add(domain.hold(cmd, now or _now())):
        return False
    log.info("customer %s is not known yet: %s %s waits for its contact data", cmd.customer_id, cmd.event_type,
             cmd.event_id)
    uow.after_commit(_count(HoldStatus.WAITING))
    return True


def release_held(uow: NotificationUnitOfWork, contact: Contact, wake: Callable[[], None] = lambda: None,
                 now: dt.datetime | None = None,
                 new_id: Callable[[], str] = _new_id) -> list[Delivery]:
    """Queues the deliveries of the events held for this customer, in the order they came."""
    held = uow.held.waiting_for(contact.customer_id)
    if not held:
        return []
    now = now or _now()
    queued = [d for h in held for d in notify_contact(uow, contact, h.notify, wake, now, new_id)]
    released = uow.held.settle([h.event_id for h in held], HoldStatus.RELEASED, now)
    log.info("customer %s is known now: %d held notification(s) released", contact.customer_id, released)
    uow.after_commit(_count(HoldStatus.RELEASED, released))
    return queued


def notify_contact(uow: NotificationUnitOfWork, contact: Contact, cmd: Notify, wake: Callable[[], None] = lambda: None,
                   now: dt.datetime | None = None, new_id: Callable[[], str] = _new_id) -> list[Delivery]:
    """notify() for a party whose addresses the event itself carries (a supplier)."""
    fields = {**cmd.fields, "customer_id": contact.customer_id, "customer_name": contact.name or contact.customer_id}
    cmd = Notify(cmd.event_id, cmd.event_type, cmd.customer_id, fields)
    planned = domain.plan(contact, cmd, templates.render(cmd.event_type, fields), new_id, now or _now())
    for d in planned:
        uow.deliveries.add(d)
    if planned:
        uow.after_commit(wake)
    else:
        log.info("customer %s has no email or webhook; %s %s not sent", cmd.customer_id, cmd.event_type,
                 cmd.event_id)
    return planned


# Deliveries claimed and recorded per transaction, and how long one batch may spend sending:
# once spent, the rest of the claim is left as it was (its locks end with the commit) for the next.
# Delivery stays at least once: a batch whose record does not commit (database lost) is sent again,
# all of it, as a single delivery was before.
DISPATCH_BATCH = 16
DISPATCH_BUDGET_SECONDS = 2.0


def dispatch_due(uow: NotificationUnitOfWork, senders, policy: RetryPolicy, now: dt.datetime | None = None,
                 limit: int = DISPATCH_BATCH, budget_seconds: float = DISPATCH_BUDGET_SECONDS,
                 pool: Executor | None = None) -> list[Delivery]:
    """Claims up to `limit` due deliveries, sends them, and records their attempts in one
    transaction; returns them as recorded (empty: nothing was due). The rows stay locked while
    they are sent, so no other dispatcher sends them too. pool: sends them at the same time
    (a slow mail server or webhook then holds up one send, not the batch); without one, they
    go one after another."""
    now = now or _now()
    deadline = time.monotonic() + budget_seconds
    channels = _unpaused(senders)
    if not channels:
        return []
    with uow:
        claimed = uow.deliveries.claim_due(now, limit, channels)
        errors = _send_all(uow, senders, claimed, now, deadline, pool)
        attempted = [domain.attempted(delivery, now, error, policy)
                     for delivery, error in zip(claimed, errors, strict=True) if error is not None]
        uow.deliveries.record(attempted)
        settled = _settled([updated for updated, _ in attempted])
        if settled.sent or settled.failed:  # with the attempts' record, through the outbox (orders' timeline)
            uow.emit(aggregate_type="dispatch_round", aggregate_id=_new_id(), version=1, payload=settled)
        uow.commit()
    for updated, _ in attempted:
        level = logging.WARNING if updated.status is domain.DeliveryStatus.FAILED else logging.INFO
        log.log(level, "delivery %s (%s to %s) attempt %d: %s", updated.delivery_id, updated.channel,
                updated.recipient, updated.attempts, updated.last_error or "delivered")
    return [updated for updated, _ in attempted]


def _send_all(uow: NotificationUnitOfWork, senders, claimed: list[Delivery], now: dt.datetime, deadline: float,
              pool: Executor | None) -> list[str | None]:
    """Each claimed delivery's error ("" when it went out), or None when it was not attempted:
    the budget ran out before it started (the first one always starts), or its relay was down."""
    hooked = [d.customer_id for d in claimed if d.channel is domain.Channel.WEBHOOK]
    if hooked:  # read here: the sends run on other threads, without the transaction's connection
        uow.contacts.read_all(hooked)
    contacts = {customer_id: uow.contacts.get(customer_id) for customer_id in hooked}

    def send(delivery: Delivery) -> str | None:
        return _send(senders, delivery, now, contacts.get(delivery.customer_id))

    if pool is None:
        errors: list[str | None] = []
        for delivery in claimed:
            errors.append(None if errors and time.monotonic() > deadline else send(delivery))
        return errors
    started = [pool.submit(send, delivery) for delivery in claimed]
    futures.wait(started, timeout=max(0.0, deadline - time.monotonic()))
    for waiting in started[1:]:
        waiting.cancel()  # not started yet: left for the next round (a running send cannot be)
    return [None if sent.cancelled() else sent.result() for sent in started]


def _send(senders, delivery: Delivery, now: dt.datetime, contact: Contact | None) -> str | None:
    """Sends one delivery; the error, "" when it went out, None when its relay was down."""
    try:
        if delivery.channel is domain.Channel.WEBHOOK:  # signed with the customer's secrets as they are now
            senders.send(delivery, now, contact)
        else:
            senders.send(delivery, now)
        return ""
    except RelayUnavailable:
        return None  # not attempted: it stays due, and its channel waits (senders.paused())
    except SendFailed as exc:
        return str(exc) or "send failed"
    except Exception as exc:  # noqa: BLE001 - a sender bug must not stop every delivery
        log.exception("sending delivery %s failed unexpectedly", delivery.delivery_id)
        return f"{exc.__class__.__name__}: {exc}"


class _SettledFields(TypedDict):
    """What NotificationSent and NotificationFailed both say."""

    delivery_id: str
    event_id: str
    event_type: str
    customer_id: str
    order_id: str
    channel: str
    attempts: int


def _settled(recorded: list[Delivery]) -> ev.DeliveriesSettled:
    """The deliveries of a round that have ended (delivered, or failed for good), in one event:
    one message per round, not per delivery. Those still retried are left out."""
    settled = ev.DeliveriesSettled()
    for delivery in recorded:
        if delivery.status is domain.DeliveryStatus.PENDING:
            continue
        ids: _SettledFields = {"delivery_id": delivery.delivery_id, "event_id": delivery.event_id,
                               "event_type": delivery.event_type, "customer_id": delivery.customer_id,
                               "order_id": delivery.data.get("order_id", ""), "channel": str(delivery.channel),
                               "attempts": delivery.attempts}
        if delivery.status is domain.DeliveryStatus.DELIVERED:
            settled.sent.append(ev.NotificationSent(**ids))
        else:
            settled.failed.append(ev.NotificationFailed(**ids, error=delivery.last_error))
    return settled


def _unpaused(senders) -> list[domain.Channel]:
    """The channels whose relay is not paused after an outage."""
    paused = senders.paused()
    return [channel for channel in domain.Channel if channel not in paused]


def seconds_until_due(uow: NotificationUnitOfWork, senders, now: dt.datetime | None = None) -> float | None:
    """How long until the next pending delivery of a channel that is not paused is due (0 when
    one is due now); None: none pending."""
    with uow:
        due = uow.deliveries.next_due_at(_unpaused(senders))
    return None if due is None else max(0.0, (due - (now or _now())).total_seconds())


def give_up_waiting(uow: NotificationUnitOfWork, wait: dt.timedelta, now: dt.datetime | None = None,
                    limit: int = 500) -> list[Held]:
    """Gives up (NO_SUCH_CUSTOMER, nothing sent) the held notifications that have waited
    `wait` for their customer, up to `limit` of them, oldest first; returns them."""
    now = now or _now()
    with uow:
        given_up = uow.held.give_up(now - wait, now, limit)
        waiting = uow.held.count_waiting()
        uow.commit()
    metrics.HELD_WAITING.set(waiting)
    if given_up:
        metrics.labelled(metrics.HELD_NOTIFICATIONS, str(HoldStatus.NO_SUCH_CUSTOMER)).inc(len(given_up))
    for h in given_up:
        log.warning("no contact data for customer %s came within %s: %s %s is not sent (no such customer)",
                    h.customer_id, wait, h.event_type, h.event_id)
    return given_up


def list_held(uow: NotificationUnitOfWork, query: domain.ListHeld) -> tuple[list[Held], str]:
    domain.validate_list_held(query)
    size = paging.page_size(query.page_size)
    after = _resume_key(paging.decode(query.page_token, query.filters, (paging.TIMESTAMP, str)))
    with uow:
        found = uow.held.list(query, after, size + 1)
    token = paging.next_token(found, size, lambda h: [h.held_at.isoformat(), h.event_id], query.filters)
    return found[:size], token


def list_deliveries(uow: NotificationUnitOfWork, query: domain.ListDeliveries) -> tuple[list[Delivery], str]:
    domain.validate_list(query)
    size = paging.page_size(query.page_size)
    after = _resume_key(paging.decode(query.page_token, query.filters, (paging.TIMESTAMP, str)))
    with uow:
        found = uow.deliveries.list(query, after, size + 1)
    token = paging.next_token(found, size, lambda d: [d.created_at.isoformat(), d.delivery_id], query.filters)
    return found[:size], token


def _resume_key(key: list | None) -> tuple[dt.datetime, str] | None:
    """(time, id) from a page token's key, checked by paging.decode: (created_at, delivery_id)
    of a delivery, (held_at, event_id) of a held notification."""
    return None if key is None else (dt.datetime.fromisoformat(key[0]), key[1])
