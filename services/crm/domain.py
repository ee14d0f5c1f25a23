"""Customer accounts and credit: what a valid customer is, how status and credit limit
change, the exposure projection's rules, and the credit decision. No I/O here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import re
from decimal import Decimal

from mesh import addresses, money
from mesh.errors import FailedPrecondition, Violations

# Patterns are used with fullmatch (a trailing newline never passes).
CUSTOMER_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_NAME = 200
MAX_CONTACTS = 50
MAX_PHONE = 50
MAX_ROLE = 100
MAX_REASON = 500
MAX_PAYMENT_TERMS_DAYS = 365
DEFAULT_WEBHOOK_OVERLAP = dt.timedelta(days=1)
MAX_WEBHOOK_OVERLAP = dt.timedelta(days=7)
FOUR_PLACES = Decimal("0.0001")
ZERO = Decimal(0)


class CustomerStatus(enum.StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    BLOCKED = "blocked"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


@dataclasses.dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""
    phone: str = ""
    role: str = ""


@dataclasses.dataclass(frozen=True)
class SecretRef:
    """Names one webhook secret (mesh.webhook_keys.derive makes it from the master key key_id);
    secret_id "" is the service-wide secret of before per-customer secrets (LEGACY)."""

    secret_id: str
    key_id: str


LEGACY = SecretRef("", "")


@dataclasses.dataclass(frozen=True)
class WebhookSigning:
    """Which secrets sign a customer's webhook deliveries: ids only, never a secret.

    current is None when the customer has no webhook URL, LEGACY for a URL set before
    per-customer secrets. previous, the secret the last rotation replaced, also signs
    until previous_expires_at (the overlap window)."""

    current: SecretRef | None = None
    version: int = 0  # how many secrets of its own the webhook has had
    created_at: dt.datetime | None = None
    previous: SecretRef | None = None
    previous_expires_at: dt.datetime | None = None

    def previous_at(self, now: dt.datetime) -> SecretRef | None:
        """The previous secret while its window is open at `now`."""
        if self.previous is None or self.previous_expires_at is None or now >= self.previous_expires_at:
            return None
        return self.previous


@dataclasses.dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    status: CustomerStatus
    currency_code: str  # the credit limit's currency, fixed at creation
    credit_limit: Decimal
    payment_terms_days: int
    email: str = ""
    contacts: tuple[Contact, ...] = ()
    webhook_url: str = ""
    version: int = 1
    status_reason: str = ""
    # Fingerprint of the create that made it: a repeat of that create is answered with
    # the customer, whatever changed since; any other create of the id is a conflict.
    created_as: str = ""
    webhook_signing: WebhookSigning = WebhookSigning()


# ---------------------------------------------------------------- commands


@dataclasses.dataclass(frozen=True)
class CreateCustomer:
    customer_id: str
    name: str
    status: str  # "" (default: active), or a CustomerStatus value; anything else is invalid
    credit_limit_amount: str
    credit_limit_currency: str
    payment_terms_days: int
    email: str = ""
    contacts: tuple[Contact, ...] = ()
    webhook_url: str = ""


@dataclasses.dataclass(frozen=True)
class UpdateCustomerStatus:
    customer_id: str
    status: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SetCreditLimit:
    customer_id: str
    amount: str
    currency_code: str


@dataclasses.dataclass(frozen=True)
class SetWebhookUrl:
    customer_id: str
    webhook_url: str


@dataclasses.dataclass(frozen=True)
class RotateWebhookSecret:
    customer_id: str
    overlap: dt.timedelta | None  # None: DEFAULT_WEBHOOK_OVERLAP


@dataclasses.dataclass(frozen=True)
class CheckCredit:
    """What crm needs of an OrderPlaced event."""

    order_id: str
    customer_id: str
    total_amount: str
    currency_code: str


# ---------------------------------------------------------------- validation


def check_customer_id(v: Violations, field: str, customer_id: str) -> None:
    v.check(bool(CUSTOMER_ID_RE.fullmatch(customer_id)), field,
            "must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")


def parse_status(v: Violations, field: str, status: str, default: CustomerStatus | None = None) -> CustomerStatus:
    if not status and default is not None:
        return default
    try:
        return CustomerStatus(status)
    except ValueError:
        v.add(field, "must be ACTIVE, ON_HOLD or BLOCKED")
        return default or CustomerStatus.ACTIVE


def _credit_limit(v: Violations, field: str, amount: str) -> Decimal:
    value = money.parse_amount(amount)
    if value is None:
        v.add(f"{field}.amount", "must be a decimal such as 1000.00 (at most 14 digits before the point and 4 after)")
        return ZERO
    if value < 0:
        v.add(f"{field}.amount", "must not be negative")
        return ZERO
    return value.quantize(FOUR_PLACES)


def _fingerprint(customer: Customer) -> str:
    data = dataclasses.asdict(customer)
    for volatile in ("version", "status_reason", "created_as", "webhook_signing"):
        data.pop(volatile)
    data["credit_limit"] = str(customer.credit_limit)
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def new_customer(cmd: CreateCustomer) -> Customer:
    """Validates a create and returns the customer (version 1); every problem at once."""
    v = Violations()
    check_customer_id(v, "customer.customer_id", cmd.customer_id)
    name = cmd.name.strip()
    v.check(0 < len(name) <= MAX_NAME, "customer.name", f"must be 1-{MAX_NAME} characters")
    status = parse_status(v, "customer.status", cmd.status, default=CustomerStatus.ACTIVE)
    limit = _credit_limit(v, "customer.credit_limit", cmd.credit_limit_amount)
    v.check(money.valid_currency(cmd.credit_limit_currency), "customer.credit_limit.currency_code",
            "must be an ISO 4217 code such as EUR; it becomes the customer's currency")
    v.check(0 <= cmd.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS, "customer.payment_terms_days",
            f"must be 0-{MAX_PAYMENT_TERMS_DAYS}")
    email = cmd.email.strip()
    addresses.check_email(v, "customer.email", email)
    webhook_url = cmd.webhook_url.strip()
    addresses.check_webhook_url(v, "customer.webhook_url", webhook_url)
    v.check(len(cmd.contacts) <= MAX_CONTACTS, "customer.contacts", f"must hold at most {MAX_CONTACTS} contacts")
    contacts = []
    for i, c in enumerate(cmd.contacts[:MAX_CONTACTS]):
        field = f"customer.contacts[{i}]"
        contact = Contact(c.name.strip(), c.email.strip(), c.phone.strip(), c.role.strip())
        v.check(0 < len(contact.name) <= MAX_NAME, f"{field}.name", f"must be 1-{MAX_NAME} characters")
        addresses.check_email(v, f"{field}.email", contact.email)
        v.check(len(contact.phone) <= MAX_PHONE, f"{field}.phone", f"must be at most {MAX_PHONE} characters")
        v.check(len(contact.role) <= MAX_ROLE, f"{field}.role", f"must be at most {MAX_ROLE} characters")
        contacts.append(contact)
    v.raise_if_any()
    customer = Customer(
        customer_id=cmd.customer_id, name=name, status=status, currency_code=cmd.credit_limit_currency,
        credit_limit=limit, payment_terms_days=cmd.payment_terms_days, email=email, contacts=tuple(contacts),
        webhook_url=webhook_url,
    )
    return dataclasses.replace(customer, created_as=_fingerprint(customer))


# ---------------------------------------------------------------- webhook secrets


def new_webhook_secret(signing: WebhookSigning, secret: SecretRef, now: dt.datetime) -> WebhookSigning:
    """A webhook URL set (or changed): a new secret, and no other signs any more (the old
    secret was given for another URL, or for none)."""
    return WebhookSigning(current=secret, version=signing.version + 1, created_at=now)


def with_webhook_url(customer: Customer, cmd: SetWebhookUrl, secret: SecretRef,
                     now: dt.datetime) -> Customer | None:
    """The customer with the new webhook URL (next version), a new secret for a new URL and
    none for no URL; None when it is the URL already."""
    url = cmd.webhook_url.strip()
    if url == customer.webhook_url:
        return None
    if url:
        signing = new_webhook_secret(customer.webhook_signing, secret, now)
    else:
        signing = WebhookSigning(version=customer.webhook_signing.version)
    return dataclasses.replace(customer, webhook_url=url, webhook_signing=signing, version=customer.version + 1)


def validate_webhook_url(cmd: SetWebhookUrl) -> None:
    v = Violations()
    check_customer_id(v, "customer_id", cmd.customer_id)
    addresses.check_webhook_url(v, "webhook_url", cmd.webhook_url.strip())
    v.raise_if_any()


def validate_rotation(cmd: RotateWebhookSecret) -> dt.timedelta:
    v = Violations()
    check_customer_id(v, "customer_id", cmd.customer_id)
    overlap = DEFAULT_WEBHOOK_OVERLAP if cmd.overlap is None else cmd.overlap
    v.check(dt.timedelta(0) <= overlap <= MAX_WEBHOOK_OVERLAP, "overlap",
            "must be 0 to 7 days (604800s); leave it unset for 1 day")
    v.raise_if_any()
    return overlap


def rotated(customer: Customer, overlap: dt.timedelta, secret: SecretRef, now: dt.datetime) -> Customer:
    """The customer with a new webhook secret (next version); the one it replaces also signs
    for `overlap` (a secret from an earlier rotation whose window is still open stops now).
    FailedPrecondition without a webhook URL."""
    if not customer.webhook_url or customer.webhook_signing.current is None:
        raise FailedPrecondition(f"customer {customer.customer_id} has no webhook URL, so it has no webhook "
                                 "secret to rotate; set one with SetWebhookUrl")
    old = customer.webhook_signing
    keep_old = overlap > dt.timedelta(0)
    signing = WebhookSigning(current=secret, version=old.version + 1, created_at=now,
                             previous=old.current if keep_old else None,
                             previous_expires_at=now + overlap if keep_old else None)
    return dataclasses.replace(customer, webhook_signing=signing, version=customer.version + 1)


def validate_status_change(cmd: UpdateCustomerStatus) -> CustomerStatus:
    v = Violations()
    check_customer_id(v, "customer_id", cmd.customer_id)
    status = parse_status(v, "status", cmd.status)
    v.check(0 < len(cmd.reason.strip()) <= MAX_REASON, "reason", f"must be 1-{MAX_REASON} characters")
    v.raise_if_any()
    return status


def with_status(customer: Customer, status: CustomerStatus, reason: str) -> Customer | None:
    """The customer in the new status (next version); None when it already is in it."""
    if customer.status is status:
        return None
    return dataclasses.replace(customer, status=status, status_reason=reason.strip(), version=customer.version + 1)


def validate_credit_limit(cmd: SetCreditLimit) -> Decimal:
    v = Violations()
    check_customer_id(v, "customer_id", cmd.customer_id)
    limit = _credit_limit(v, "credit_limit", cmd.amount)
    v.check(money.valid_currency(cmd.currency_code), "credit_limit.currency_code",
            "must be an ISO 4217 code such as EUR")
    v.raise_if_any()
    return limit


def with_credit_limit(customer: Customer, limit: Decimal, currency_code: str) -> Customer | None:
    """The customer with the new limit (next version); None when it is the limit already.
    The currency never changes: every amount crm keeps for the customer is in it."""
    if currency_code != customer.currency_code:
        v = Violations()
        v.add("credit_limit.currency_code", f"must be {customer.currency_code}, the customer's currency")
        v.raise_if_any()
    if limit == customer.credit_limit:
        return None
    return dataclasses.replace(customer, credit_limit=limit, version=customer.version + 1)


# ---------------------------------------------------------------- exposure


@dataclasses.dataclass(frozen=True)
class Exposure:
    """What a customer owes or has promised to owe, in the customer's currency."""

    open_orders: Decimal = ZERO
    unpaid_invoices: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        with decimal.localcontext(prec=60):
            return self.open_orders + self.unpaid_invoices

    def available(self, credit_limit: Decimal) -> Decimal:
        with decimal.localcontext(prec=60):
            return credit_limit - self.total


@dataclasses.dataclass(frozen=True)
class BeforeDeciding:
    """What a credit decision looks at first (ExposureRepository.before_deciding)."""

    decided: bool  # the order has its decision already
    closed_by: ClosedBy | None  # the order closed before it was decided (its tombstone)
    exposure: Exposure  # the customer's, in the currency asked


class ClosedBy(enum.StrEnum):
    """Why an order no longer counts as open."""

    REJECTED = "rejected"
    CANCELLED = "cancelled"
    INVOICED = "invoiced"


@dataclasses.dataclass(frozen=True)
class OrderExposure:
    """An approved order's amount while it is open. A row closed before its approval is
    a tombstone: the order's late OrderPlaced is then refused, never counted."""

    order_id: str
    customer_id: str
    currency_code: str
    amount: Decimal | None  # None for a tombstone
    closed_by: ClosedBy | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_by is None


@dataclasses.dataclass(frozen=True)
class InvoiceBalance:
    """What is still due on one invoice, from finance's events in any order.

    InvoiceIssued gives the total; every PaymentReceived gives the amount due after it
    (amounts due only ever fall, so the lowest one seen is the latest); every credit
    note takes away the part of the invoice that was still unpaid when it was issued.
    """

    invoice_id: str
    customer_id: str
    order_id: str
    currency_code: str
    total: Decimal | None = None
    lowest_due: Decimal | None = None
    credited: Decimal = ZERO

    @property
    def amount_due(self) -> Decimal:
        known = [x for x in (self.total, self.lowest_due) if x is not None]
        with decimal.localcontext(prec=60):
            return max(ZERO, (min(known) if known else ZERO) - self.credited)

    def issued(self, total: Decimal) -> InvoiceBalance:
        return dataclasses.replace(self, total=total)

    def paid(self, amount_due: Decimal) -> InvoiceBalance:
        lowest = amount_due if self.lowest_due is None else min(self.lowest_due, amount_due)
        return dataclasses.replace(self, lowest_due=lowest)

    def credit(self, unpaid_amount: Decimal) -> InvoiceBalance:
        with decimal.localcontext(prec=60):
            return dataclasses.replace(self, credited=self.credited + unpaid_amount)


def event_amount(value: str, what: str) -> Decimal:
    """An amount from another service's event; a malformed one is a fault to retry and
    then dead-letter, never something to guess around."""
    amount = money.parse_amount(value)
    if amount is None or amount < 0:
        raise ValueError(f"{what} {value!r} is not a non-negative amount")
    return amount


# ---------------------------------------------------------------- credit decision


@dataclasses.dataclass(frozen=True)
class CreditDecision:
    order_id: str
    customer_id: str
    approved: bool
    reason: str  # empty when approved
    currency_code: str
    order_total: Decimal | None = None  # None when the event's total was not an amount
    exposure_after: Decimal | None = None  # approved only: exposure counting this order
    credit_limit: Decimal | None = None  # approved only


def fmt(amount: Decimal) -> str:
    return money.format_amount(amount)


def decide(cmd: CheckCredit, customer: Customer | None, exposure: Exposure,
           closed_by: ClosedBy | None = None) -> CreditDecision:
    """Approves an order when the customer may order and its total fits the credit left."""
    total = money.parse_amount(cmd.total_amount)

    def reject(reason: str) -> CreditDecision:
        return CreditDecision(cmd.order_id, cmd.customer_id, False, reason, cmd.currency_code,
                              total.quantize(FOUR_PLACES) if total is not None and total >= 0 else None)

    if closed_by is not None:
        return reject(f"order {cmd.order_id} was already {closed_by} before its credit check")
    if customer is None:
        return reject(f"unknown customer {cmd.customer_id}")
    if customer.status is not CustomerStatus.ACTIVE:
        why = f": {customer.status_reason}" if customer.status_reason else ""
        return reject(f"customer {customer.customer_id} is {customer.status.label}{why}")
    if total is None or total < 0:
        return reject(f"order total {cmd.total_amount!r} {cmd.currency_code} is not an amount crm can check "
                      "(a non-negative decimal, at most 14 digits before the point and 4 after)")
    if cmd.currency_code != customer.currency_code:
        return reject(f"order is in {cmd.currency_code or 'no currency'} but customer {customer.customer_id}'s "
                      f"credit limit is in {customer.currency_code}")
    with decimal.localcontext(prec=60):
        after = exposure.total + total
    cur = customer.currency_code
    if after > customer.credit_limit:
        return reject(f"credit limit {fmt(customer.credit_limit)} {cur} exceeded: exposure would be "
                      f"{fmt(after)} {cur} (open orders {fmt(exposure.open_orders)} + unpaid invoices "
                      f"{fmt(exposure.unpaid_invoices)} + this order {fmt(total)})")
    return CreditDecision(cmd.order_id, cmd.customer_id, True, "", cur, total.quantize(FOUR_PLACES), after,
                          customer.credit_limit)
