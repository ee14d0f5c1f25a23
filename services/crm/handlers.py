"""CRM's use cases. Command handlers own their transaction; the reactions to events
(check_credit, order_closed, invoice_issued, payment_received, credit_note_issued) run
inside the event consumer's transaction, with its inbox row, and do not commit.

Every reaction that reads or changes a customer's exposure first locks the customer's
row, so a credit check always sees every exposure change committed before it, and two
checks for one customer never both count on the same credit."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import secrets
from collections.abc import Callable

from erp.events.v1 import crm_events_pb2 as ev
from mesh import paging, protoconv
from mesh.errors import Aborted, AlreadyExists, NotFound, Violations
from mesh.webhook_keys import DEV_SIGNING_KEY, SigningKeys, derive
from services.crm import domain
from services.crm.adapters import CrmUnitOfWork
from services.crm.domain import ClosedBy, Customer, Exposure, InvoiceBalance, SecretRef

log = logging.getLogger("services.crm")


# ---------------------------------------------------------------- commands (gRPC)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclasses.dataclass(frozen=True)
class WebhookSecrets:
    """Makes customers' webhook secrets: a random id, and the secret derived from it under
    the current master key (returned to the caller once, never stored).

    The RPCs that return a secret take no request_id on purpose: the mesh keeps the response of
    every call with one (mesh/idempotency.py), and that response would hold the secret in clear."""

    keys: SigningKeys
    new_id: Callable[[], str] = lambda: secrets.token_hex(16)
    now: Callable[[], dt.datetime] = _utcnow

    def make(self, customer_id: str) -> tuple[SecretRef, str]:
        ref = SecretRef(self.new_id(), self.keys.current_id)
        return ref, derive(self.keys.current, customer_id, ref.secret_id)


# For callers that give none (tests): secrets under the public development key.
DEV_WEBHOOK_SECRETS = WebhookSecrets(SigningKeys(DEV_SIGNING_KEY))


def create_customer(uow: CrmUnitOfWork, cmd: domain.CreateCustomer,
                    webhook_secrets: WebhookSecrets | None = None) -> Customer:
    return create_customer_with_secret(uow, cmd, webhook_secrets)[0]


def create_customer_with_secret(uow: CrmUnitOfWork, cmd: domain.CreateCustomer,
                                webhook_secrets: WebhookSecrets | None = None) -> tuple[Customer, str]:
    """The customer, and its webhook secret when this create made it with a webhook URL ("" on a
    repeat of the create: the secret was returned once, by the create that made it)."""
    customer = domain.new_customer(cmd)
    secret = ""
    if customer.webhook_url:
        maker = webhook_secrets or DEV_WEBHOOK_SECRETS
        ref, secret = maker.make(customer.customer_id)
        customer = dataclasses.replace(customer, webhook_signing=domain.new_webhook_secret(
            customer.webhook_signing, ref, maker.now()))
    with uow:
        existing = uow.customers.get(customer.customer_id)
        if existing is None:
            if uow.customers.add(customer):
                _customer_updated(uow, customer)
                uow.commit()
                return customer, secret
            existing = uow.customers.get(customer.customer_id)  # a concurrent create committed first
            if existing is None:  # not seen: ON CONFLICT waits for the other create's commit
                raise Aborted(f"customer {customer.customer_id} was being created by another request; retry")
        if existing.created_as != customer.created_as:
            raise AlreadyExists(f"customer {customer.customer_id} already exists with other attributes")
        return existing, ""  # a repeat of the create that made it: the customer as it is now


def set_webhook_url(uow: CrmUnitOfWork, cmd: domain.SetWebhookUrl, webhook_secrets: WebhookSecrets) -> tuple[Customer,
                    str]:
    """The customer with its new webhook URL, and the new URL's secret ("" when the URL was
    removed, or was the URL already)."""
    domain.validate_webhook_url(cmd)
    ref, secret = webhook_secrets.make(cmd.customer_id)
    with uow:
        customer = _customer(uow, cmd.customer_id)
        changed = domain.with_webhook_url(customer, cmd, ref, webhook_secrets.now())
        if changed is None:
            return customer, ""
        uow.customers.save(changed)
        _customer_updated(uow, changed)
        uow.commit()
    return changed, secret if changed.webhook_url else ""


def rotate_webhook_secret(uow: CrmUnitOfWork, cmd: domain.RotateWebhookSecret,
                          webhook_secrets: WebhookSecrets) -> tuple[Customer, str]:
    """The customer with a new webhook secret, and that secret."""
    overlap = domain.validate_rotation(cmd)
    ref, secret = webhook_secrets.make(cmd.customer_id)
    with uow:
        customer = _customer(uow, cmd.customer_id)
        changed = domain.rotated(customer, overlap, ref, webhook_secrets.now())
        uow.customers.save(changed)
        _customer_updated(uow, changed)
        uow.commit()
    log.info("customer %s: webhook secret rotated to version %d; the old one signs for %s more",
             changed.customer_id, changed.webhook_signing.version, overlap)
    return changed, secret


def get_customer(uow: CrmUnitOfWork, customer_id: str) -> tuple[Customer, Exposure]:
    v = Violations()
    domain.check_customer_id(v, "customer_id", customer_id)
    v.raise_if_any()
    with uow:
        customer = uow.customers.get(customer_id)
        if customer is None:
            raise NotFound(f"no customer {customer_id}")
        return customer, uow.exposure.totals(customer_id, customer.currency_code)


def list_customers(uow: CrmUnitOfWork, page_size: int, page_token: str, status: str) -> tuple[list[Customer], str]:
    """Customers by id, after the page token's key, optionally in one status."""
    v = Violations()
    wanted = domain.parse_status(v, "status", status) if status else None
    v.raise_if_any()
    size = paging.page_size(page_size)
    filters = {"status": str(wanted or "")}
    after: str | None = None
    match paging.decode(page_token, filters, (str,)):
        case [str(key)]:
            after = key
    with uow:
        found = uow.customers.list(after, wanted, size + 1)
    return found[:size], paging.next_token(found, size, lambda c: [c.customer_id], filters)


def update_customer_status(uow: CrmUnitOfWork, cmd: domain.UpdateCustomerStatus) -> Customer:
    status = domain.validate_status_change(cmd)
    with uow:
        customer = _customer(uow, cmd.customer_id)
        changed = domain.with_status(customer, status, cmd.reason)
        if changed is None:  # already in that status: nothing changes, nothing is published
            return customer
        uow.customers.save(changed)
        uow.customers.record_status_change(customer, changed)
        _customer_updated(uow, changed)
        uow.commit()
    return changed


def set_credit_limit(uow: CrmUnitOfWork, cmd: domain.SetCreditLimit) -> Customer:
    limit = domain.validate_credit_limit(cmd)
    with uow:
        customer = _customer(uow, cmd.customer_id)
        changed = domain.with_credit_limit(customer, limit, cmd.currency_code)
        if changed is None:
            return customer
        uow.customers.save(changed)
        _customer_updated(uow, changed)
        uow.commit()
    return changed


def _customer(uow: CrmUnitOfWork, customer_id: str) -> Customer:
    """The customer, locked for the change; NOT_FOUND when there is none."""
    customer = uow.customers.get(customer_id, for_update=True)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer


def _customer_updated(uow: CrmUnitOfWork, customer: Customer) -> None:
    uow.emit(aggregate_type="customer", aggregate_id=customer.customer_id, version=customer.version,
             payload=ev.CustomerUpdated(
                 customer_id=customer.customer_id, name=customer.name, email=customer.email,
                 webhook_url=customer.webhook_url, payment_terms_days=customer.payment_terms_days,
                 status=str(customer.status), webhook_secrets=webhook_secrets_event(customer.webhook_signing)))


def webhook_secrets_event(signing: domain.WebhookSigning) -> ev.WebhookSecrets | None:
    """Which secrets sign (ids only); None for no webhook or a legacy one (the event's field unset)."""
    if signing.current is None or signing.current == domain.LEGACY:
        return None  # a rotation is what replaces a legacy secret, so there is no previous one yet
    out = ev.WebhookSecrets()
    out.current.CopyFrom(ev.WebhookSecretRef(secret_id=signing.current.secret_id, key_id=signing.current.key_id))
    if signing.previous is not None and signing.previous_expires_at is not None:
        out.previous.CopyFrom(ev.WebhookSecretRef(secret_id=signing.previous.secret_id,
                                                  key_id=signing.previous.key_id))
        out.previous_expires_at.CopyFrom(protoconv.timestamp(signing.previous_expires_at))
    return out


# ---------------------------------------------------------------- reactions (events)


def _lock_customer(uow: CrmUnitOfWork, customer_id: str) -> Customer | None:
    """Serializes everything that reads or changes this customer's exposure."""
    return uow.customers.lock_for_exposure(customer_id)


def check_credit(uow: CrmUnitOfWork, cmd: domain.CheckCredit) -> domain.CreditDecision:
    """Answers an OrderPlaced with CreditApproved or CreditRejected, deciding once per order:
    an OrderPlaced published again under a new event id (orders drives a saga whose answer was
    lost) gets the first decision's answer again, and counts the order no second time."""
    customer = _lock_customer(uow, cmd.customer_id)
    before = uow.exposure.before_deciding(cmd.order_id, cmd.customer_id, customer.currency_code if customer else "")
    earlier = uow.credit.decision(cmd.order_id) if before.decided else None
    if earlier is not None:
        uow.emit(aggregate_type="credit", aggregate_id=cmd.order_id, version=1, payload=_answer(earlier))
        return earlier
    decision = domain.decide(cmd, customer, before.exposure if customer else Exposure(), before.closed_by)
    uow.credit.add(decision)  # an approval opens the order in the exposure with it
    if not decision.approved:
        log.info("credit rejected for order %s: %s", cmd.order_id, decision.reason)
    uow.emit(aggregate_type="credit", aggregate_id=cmd.order_id, version=1, payload=_answer(decision))
    return decision


def _answer(decision: domain.CreditDecision) -> ev.CreditApproved | ev.CreditRejected:
    """The event that tells orders a decision (the same one however often it is asked)."""
    if decision.approved:
        if decision.exposure_after is None or decision.credit_limit is None:  # domain.decide sets both
            raise ValueError(f"order {decision.order_id}'s approval has no exposure or credit limit")
        return ev.CreditApproved(order_id=decision.order_id, customer_id=decision.customer_id,
                                 exposure=protoconv.money(decision.currency_code, decision.exposure_after),
                                 credit_limit=protoconv.money(decision.currency_code, decision.credit_limit))
    return ev.CreditRejected(order_id=decision.order_id, customer_id=decision.customer_id, reason=decision.reason)


def _invoice_balance(uow: CrmUnitOfWork, invoice_id: str, customer_id: str, order_id: str,
                     currency_code: str) -> InvoiceBalance:
    """The invoice's balance, after locking its customer."""
    customer = _lock_customer(uow, customer_id)
    if customer is not None and currency_code != customer.currency_code:
        # Orders in another currency are never approved, so this is a fault elsewhere;
        # the exposure (in the customer's currency) leaves such an invoice out.
        log.warning("invoice %s of customer %s is in %s, not the customer's %s; not counted in the exposure",
                    invoice_id, customer_id, currency_code, customer.currency_code)
    return uow.exposure.invoice(invoice_id, customer_id, order_id, currency_code)


def order_closed(uow: CrmUnitOfWork, order_id: str, customer_id: str, closed_by: ClosedBy) -> None:
    """OrderRejected or OrderCancelled: the order stops counting (or will never count)."""
    _lock_customer(uow, customer_id)
    uow.exposure.close_order(order_id, customer_id, closed_by)


def invoice_issued(uow: CrmUnitOfWork, *, invoice_id: str, order_id: str, customer_id: str, total: str,
                   currency_code: str) -> None:
    """The invoice replaces its order in the exposure: the order closes, the invoice's
    total becomes due."""
    amount = domain.event_amount(total, "invoice total")
    balance = _invoice_balance(uow, invoice_id, customer_id, order_id, currency_code)
    uow.exposure.invoice_replaces_order(balance.issued(amount))


def payment_received(uow: CrmUnitOfWork, *, invoice_id: str, order_id: str, customer_id: str, amount_due: str,
                     currency_code: str) -> None:
    """What is due on the invoice falls to the amount due after the payment."""
    due = domain.event_amount(amount_due, "amount due")
    balance = _invoice_balance(uow, invoice_id, customer_id, order_id, currency_code)
    uow.exposure.save_invoice(balance.paid(due))


def credit_note_issued(uow: CrmUnitOfWork, *, credit_note_id: str, invoice_id: str, order_id: str, customer_id: str,
                       unpaid_amount: str, currency_code: str) -> None:
    """The part of the invoice that was still unpaid leaves the exposure."""
    unpaid = domain.event_amount(unpaid_amount, "credit note unpaid amount")
    balance = _invoice_balance(uow, invoice_id, customer_id, order_id, currency_code)
    if uow.exposure.add_credit_note(credit_note_id, invoice_id, customer_id, unpaid):
        uow.exposure.save_invoice(balance.credit(unpaid))

