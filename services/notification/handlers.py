"""Notification's use cases. on_customer_updated and notify run inside the event
consumer's transaction (with the inbox row) and do not commit; dispatch_next and
list_deliveries own their transaction."""
from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence

from mesh import paging
from services.notification import domain, templates
from services.notification.domain import Contact, CustomerNotKnownYet, Delivery, Notify, RetryPolicy, SendFailed

log = logging.getLogger("services.notification")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def on_customer_updated(uow, update: Contact, problems: Sequence[str] = ()) -> bool:
    """Keeps the newest contact data of a customer; returns whether it changed anything."""
    for problem in problems:
        log.warning("customer %s: %s; that channel stays off", update.customer_id, problem)
    if not domain.newer(uow.contacts.get(update.customer_id), update):
        return False  # an older update arriving late
    return uow.contacts.put(update)


def notify(uow, cmd: Notify, wake: Callable[[], None] = lambda: None, now: dt.datetime | None = None,
           new_id: Callable[[], str] = _new_id) -> list[Delivery]:
    """Renders the event's template and queues one delivery per channel the customer has.
    A repeated event queues nothing. The dispatcher is woken once this commits."""
    contact = uow.contacts.get(cmd.customer_id)
    if contact is None:
        raise CustomerNotKnownYet(f"customer {cmd.customer_id} is not known (yet): no CustomerUpdated seen")
    return notify_contact(uow, contact, cmd, wake, now, new_id)


def notify_contact(uow, contact: Contact, cmd: Notify, wake: Callable[[], None] = lambda: None,
                   now: dt.datetime | None = None, new_id: Callable[[], str] = _new_id) -> list[Delivery]:
    """notify() for a party whose addresses the event itself carries (a supplier)."""
    fields = {**cmd.fields, "customer_id": contact.customer_id, "customer_name": contact.name or contact.customer_id}
    cmd = Notify(cmd.event_id, cmd.event_type, cmd.customer_id, fields)
    planned = domain.plan(contact, cmd, templates.render(cmd.event_type, fields), new_id, now or _now())
    queued = [d for d in planned if uow.deliveries.add(d)]
    if queued:
        uow.after_commit(wake)
    elif not planned:
        log.info("customer %s has no email or webhook; %s %s not sent", cmd.customer_id, cmd.event_type,
                 cmd.event_id)
    return queued


def dispatch_next(uow, senders, policy: RetryPolicy, now: dt.datetime | None = None) -> Delivery | None:
    """Claims the next due delivery, sends it, and records the attempt; None when nothing
    is due. The row stays locked while it is sent, so no other dispatcher sends it too."""
    now = now or _now()
    with uow:
        delivery = uow.deliveries.claim_due(now)
        if delivery is None:
            return None
        try:
            senders.send(delivery, now)
            error = ""
        except SendFailed as exc:
            error = str(exc) or "send failed"
        except Exception as exc:  # noqa: BLE001 - a sender bug must not stop every delivery
            log.exception("sending delivery %s failed unexpectedly", delivery.delivery_id)
            error = f"{exc.__class__.__name__}: {exc}"
        updated, attempt = domain.attempted(delivery, now, error, policy)
        uow.deliveries.record(updated, attempt)
        uow.commit()
    level = logging.WARNING if updated.status is domain.DeliveryStatus.FAILED else logging.INFO
    log.log(level, "delivery %s (%s to %s) attempt %d: %s", updated.delivery_id, updated.channel,
            updated.recipient, updated.attempts, error or "delivered")
    return updated


def seconds_until_due(uow, now: dt.datetime | None = None) -> float | None:
    """How long until the next pending delivery is due (0 when one is due now); None: none pending."""
    with uow:
        due = uow.deliveries.next_due_at()
    return None if due is None else max(0.0, (due - (now or _now())).total_seconds())


def list_deliveries(uow, query: domain.ListDeliveries) -> tuple[list[Delivery], str]:
    domain.validate_list(query)
    size = paging.page_size(query.page_size)
    after = _resume_key(paging.decode(query.page_token, query.filters, (paging.TIMESTAMP, str)))
    with uow:
        found = uow.deliveries.list(query, after, size + 1)
    token = paging.next_token(found, size, lambda d: [d.created_at.isoformat(), d.delivery_id], query.filters)
    return found[:size], token


def _resume_key(key: list | None) -> tuple[dt.datetime, str] | None:
    """(created_at, delivery_id) from a page token's key, checked by paging.decode."""
    return None if key is None else (dt.datetime.fromisoformat(key[0]), key[1])
