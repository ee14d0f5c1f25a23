"""The events notification consumes: CustomerUpdated (its projection of contacts), the
order-to-cash events a customer is told about, and approved purchase orders a supplier
is sent; each turned into template fields."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from google.protobuf import message

from erp.common.v1 import money_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1 import procurement_events_pb2 as procurement_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks, protoconv
from mesh.events.consumer import EventHandlers
from mesh.events.envelope import Event
from services.notification import domain, handlers
from services.notification.adapters import NotificationUnitOfWork

log = logging.getLogger("services.notification")
MAX_LINES_SHOWN = 50


def _money(m: money_pb2.Money) -> str:
    """A notification still goes out when an amount is malformed: it shows what was sent."""
    try:
        return protoconv.money_text(m)
    except ValueError:
        return f"{m.amount[:32]} {m.currency_code[:3]}".strip()


def _lines(lines: Iterable[orders_ev.OrderLineItem], with_prices: bool) -> str:
    lines = list(lines)
    shown = []
    for line in lines[:MAX_LINES_SHOWN]:
        text = f"  {line.quantity} x {line.sku}"
        if with_prices and line.HasField("unit_price"):
            text += f" at {_money(line.unit_price)}"
        shown.append(text)
    if len(lines) > MAX_LINES_SHOWN:
        shown.append(f"  ... and {len(lines) - MAX_LINES_SHOWN} more lines")
    return "\n".join(shown)


def _po_lines(lines: Iterable[procurement_ev.PurchaseOrderLineItem]) -> str:
    lines = list(lines)
    shown = [f"  {line.quantity} x {line.sku} at {_money(line.unit_price)}"
             + (f", expected {line.expected_date}" if line.expected_date else "") for line in lines[:MAX_LINES_SHOWN]]
    if len(lines) > MAX_LINES_SHOWN:
        shown.append(f"  ... and {len(lines) - MAX_LINES_SHOWN} more lines")
    return "\n".join(shown)


def signing_of(event: crm_ev.CustomerUpdated) -> domain.Signing:
    """Which secrets sign the customer's webhook; no webhook_secrets: the legacy secret (an event
    from before per-customer secrets, or a webhook set before them and not rotated since)."""
    if not event.HasField("webhook_secrets"):
        return domain.Signing()
    secrets = event.webhook_secrets
    current = domain.SecretRef(secrets.current.secret_id, secrets.current.key_id)
    if not (secrets.HasField("previous") and secrets.HasField("previous_expires_at")):
        return domain.Signing(current)
    return domain.Signing(current, domain.SecretRef(secrets.previous.secret_id, secrets.previous.key_id),
                          protoconv.moment_of(secrets.previous_expires_at))


def supplier_party(supplier_id: str) -> str:
    """Deliveries to a supplier are recorded under this party id (customers use their own id)."""
    return f"supplier:{supplier_id}"


def fields_of(payload: message.Message) -> dict[str, str]:
    """The template fields an event provides (see templates.py)."""
    match payload:
        case orders_ev.OrderConfirmed():
            return {"order_id": payload.order_id, "total": _money(payload.total),
                    "lines": _lines(payload.lines, with_prices=True)}
        case orders_ev.OrderRejected():
            return {"order_id": payload.order_id, "reason": payload.reason or "not given"}
        case fin_ev.InvoiceIssued():
            return {"invoice_id": payload.invoice_id, "invoice_number": payload.number or payload.invoice_id,
                    "order_id": payload.order_id, "total": _money(payload.total), "due_date": payload.due_date}
        case fin_ev.PaymentReceived():
            balance = ("Your invoice is now paid in full." if payload.paid_in_full
                       else f"Still due on this invoice: {_money(payload.amount_due)}.")
            return {"payment_id": payload.payment_id, "invoice_id": payload.invoice_id,
                    "order_id": payload.order_id, "amount": _money(payload.amount),
                    "amount_due": _money(payload.amount_due), "balance": balance}
        case orders_ev.OrderShipped():
            return {"order_id": payload.order_id, "lines": _lines(payload.lines, with_prices=False)}
        case procurement_ev.PurchaseOrderApproved():
            return {"purchase_order_id": payload.purchase_order_id,
                    "purchase_order_number": payload.number or payload.purchase_order_id,
                    "warehouse_code": payload.warehouse_code, "total": _money(payload.total),
                    "lines": _po_lines(payload.lines)}
    raise TypeError(f"no template fields for {type(payload).__name__}")


NOTIFIED = (orders_ev.OrderConfirmed, orders_ev.OrderRejected, fin_ev.InvoiceIssued, fin_ev.PaymentReceived,
            orders_ev.OrderShipped)
# Events a supplier is sent, to the addresses the event carries.
SUPPLIER_NOTIFIED = (procurement_ev.PurchaseOrderApproved,)


# A customer's contact data and the deliveries rendered from it.
CUSTOMER = locks.by("customer", "customer_id")


def _read_contacts(uow: NotificationUnitOfWork, events: list[Event]) -> None:
    """A batch's customers' contact data, read in one statement before its handlers run."""
    uow.contacts.read_all([event.payload.customer_id for event in events
                           if isinstance(event.payload, (*NOTIFIED, crm_ev.CustomerUpdated))])


def build(wake: Callable[[], None] = lambda: None) -> EventHandlers:
    """wake: called after a transaction that queued deliveries commits (wakes the dispatcher)."""
    consumes = EventHandlers(consumer="notification", read_first=_read_contacts)

    @consumes.on(crm_ev.CustomerUpdated, lock=CUSTOMER)
    def on_customer_updated(uow: NotificationUnitOfWork, event: crm_ev.CustomerUpdated,
                            envelope: EventEnvelope) -> None:
        env = envelope
        contact, problems = domain.contact(event.customer_id, event.name, event.email, event.webhook_url,
                                           env.aggregate_version, protoconv.moment_of(env.occurred_at),
                                           signing_of(event))
        handlers.on_customer_updated(uow, contact, problems, wake=wake)

    def on_notified_event(uow: NotificationUnitOfWork, event: message.Message, envelope: EventEnvelope) -> None:
        env = envelope
        if not isinstance(event, NOTIFIED):  # registered for NOTIFIED's types only
            raise TypeError(f"no customer notification for {env.event_type}")
        handlers.notify(uow, domain.Notify(env.event_id, env.event_type, event.customer_id, fields_of(event)),
                        wake=wake)

    @consumes.on(procurement_ev.PurchaseOrderApproved, lock=locks.by("supplier", "supplier_id"))
    def on_purchase_order_approved(uow: NotificationUnitOfWork, event: procurement_ev.PurchaseOrderApproved,
                                   envelope: EventEnvelope) -> None:
        # The event carries the supplier's addresses as they were at approval: that is who gets this order.
        env = envelope
        party = supplier_party(event.supplier_id)
        contact, problems = domain.contact(party, event.supplier_name, event.supplier_email,
                                           event.supplier_webhook_url, env.aggregate_version,
                                           protoconv.moment_of(env.occurred_at))
        for problem in problems:
            log.warning("supplier %s: %s; that channel stays off", event.supplier_id, problem)
        handlers.notify_contact(uow, contact, domain.Notify(env.event_id, env.event_type, party, fields_of(event)),
                                wake=wake)

    for payload_type in NOTIFIED:
        consumes.on(payload_type, lock=CUSTOMER)(on_notified_event)
    return consumes
