"""Finance's rules for the sales side: invoice pricing by the one declared rounding rule
(services/finance/ledger/domain.py), invoices and their status, customer payments, credit
notes and the entries they post. No I/O here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from collections.abc import Sequence
from decimal import Decimal

from mesh import money
from mesh.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations
from services.finance.ledger.domain import (
    MAX_AMOUNT,
    MAX_ID,
    MAX_PAYMENT_TERMS_DAYS,
    ZERO,
    Account,
    JournalEntry,
    OrderLineInput,
    check_id,
    check_payment,
    entry,
    line_amount,
    payment_posting,
    tax_on,
    unit_price,
    utc_date,
    valid_payment,
)

INVOICE_PREFIX = "INV"
CREDIT_NOTE_PREFIX = "CN"


# ---------------------------------------------------------------- pricing


@dataclasses.dataclass(frozen=True)
class InvoiceLine:
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal  # quantity x unit_price, rounded half up to 2 decimals


@dataclasses.dataclass(frozen=True)
class IssueInvoice:
    order_id: str
    customer_id: str
    lines: tuple[OrderLineInput, ...]
    total_amount: str  # the order's pre-tax total; empty when the event carries none
    total_currency: str


@dataclasses.dataclass(frozen=True)
class PricedOrder:
    currency_code: str
    lines: tuple[InvoiceLine, ...]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    order_amount: Decimal  # the order's exact pre-tax total (sum of unrounded lines)


def price(lines: Sequence[tuple[int, Decimal]], tax_rate: Decimal) -> tuple[list[Decimal], Decimal, Decimal, Decimal]:
    """(line amounts, subtotal, tax, total) of (quantity, unit price) pairs by the rounding rule."""
    amounts = [line_amount(q, p) for q, p in lines]
    with decimal.localcontext(prec=60):
        subtotal = sum(amounts, ZERO)
        tax = tax_on(subtotal, tax_rate)
        return amounts, subtotal, tax, subtotal + tax


def price_order(cmd: IssueInvoice, tax_rate: Decimal) -> PricedOrder:
    """Validates an OrderConfirmed's content and prices it; every problem is reported at once."""
    v = Violations()
    check_id(v, "order_id", cmd.order_id)
    check_id(v, "customer_id", cmd.customer_id)
    v.check(len(cmd.lines) > 0, "lines", "must hold at least one line")
    currency = cmd.total_currency or (cmd.lines[0].currency_code if cmd.lines else "")
    if cmd.total_currency or cmd.total_amount:
        v.check(money.valid_currency(cmd.total_currency), "total.currency_code", "must be an ISO 4217 code")
    elif cmd.lines:
        v.check(money.valid_currency(currency), "lines[0].unit_price.currency_code", "must be an ISO 4217 code")
    parsed: list[tuple[int, Decimal]] = []
    seen: set[int] = set()
    for i, line in enumerate(cmd.lines):
        field = f"lines[{i}]"
        v.check(line.line_no > 0 and line.line_no not in seen, f"{field}.line_no", "must be positive and unique")
        seen.add(line.line_no)
        v.check(0 < len(line.sku) <= MAX_ID, f"{field}.sku", f"must be 1-{MAX_ID} characters")
        v.check(line.quantity > 0, f"{field}.quantity", "must be positive")
        line_price = unit_price(v, field, line.unit_price)
        v.check(line.currency_code == currency, f"{field}.unit_price.currency_code",
                f"must be the order's currency {currency}")
        parsed.append((line.quantity, line_price))
    v.raise_if_any()
    amounts, subtotal, tax, total = price(parsed, tax_rate)
    with decimal.localcontext(prec=60):
        order_amount = sum((p * q for q, p in parsed), Decimal(0))
    stated = money.parse_amount(cmd.total_amount) if cmd.total_amount else order_amount
    if total > MAX_AMOUNT or order_amount > MAX_AMOUNT:
        v.add("total.amount", f"the invoice total {total} exceeds the largest amount finance can post ({MAX_AMOUNT})")
    elif stated is None or stated != order_amount:
        v.add("total.amount", f"must equal the sum of the lines ({money.format_amount(order_amount)})")
    v.raise_if_any()
    lines = tuple(InvoiceLine(line.line_no, line.sku, line.quantity, q_p[1], amount)
                  for line, q_p, amount in zip(cmd.lines, parsed, amounts, strict=True))
    return PricedOrder(currency, lines, subtotal, tax, total, order_amount)


# ---------------------------------------------------------------- invoices


class PaymentState(enum.StrEnum):
    """What is stored; OVERDUE is derived when read, from the due date."""

    UNPAID = "unpaid"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    CREDITED = "credited"


class InvoiceStatus(enum.StrEnum):
    UNPAID = "unpaid"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    OVERDUE = "overdue"
    CREDITED = "credited"


def document_number(prefix: str, year: int, seq: int) -> str:
    return f"{prefix}-{year}-{seq:06d}"


@dataclasses.dataclass
class Invoice:
    invoice_id: str
    year: int
    seq: int
    order_id: str
    customer_id: str
    currency_code: str
    lines: list[InvoiceLine]
    subtotal: Decimal
    tax: Decimal
    total: Decimal
    tax_rate: Decimal
    order_amount: Decimal
    issued_at: dt.datetime
    due_at: dt.datetime
    amount_paid: Decimal = ZERO
    amount_credited: Decimal = ZERO
    journal_entry_id: int | None = None
    version: int = 1

    @property
    def number(self) -> str:
        return document_number(INVOICE_PREFIX, self.year, self.seq)

    @property
    def due_date(self) -> dt.date:
        return utc_date(self.due_at)

    @property
    def credited(self) -> bool:
        return self.amount_credited > 0

    @property
    def amount_due(self) -> Decimal:
        """total - paid - credited; never below zero (a credit note after a payment
        leaves a refund owed to the customer, which is not an amount due)."""
        return max(ZERO, self.total - self.amount_paid - self.amount_credited)

    @property
    def state(self) -> PaymentState:
        if self.credited:
            return PaymentState.CREDITED
        if self.amount_due == 0:
            return PaymentState.PAID
        if self.amount_paid > 0:
            return PaymentState.PARTLY_PAID
        return PaymentState.UNPAID

    def is_overdue(self, as_of: dt.datetime) -> bool:
        """Not paid in full after its due date (the due day itself is not overdue)."""
        return not self.credited and self.amount_due > 0 and utc_date(as_of) > self.due_date

    def status(self, as_of: dt.datetime) -> InvoiceStatus:
        state = self.state
        if state in (PaymentState.UNPAID, PaymentState.PARTLY_PAID) and self.is_overdue(as_of):
            return InvoiceStatus.OVERDUE
        return InvoiceStatus(state.value)

    def pay(self, amount: Decimal, currency_code: str) -> None:
        """Applies a payment; refuses one in another currency or above the amount due."""
        if currency_code != self.currency_code:
            raise InvalidArgument([FieldViolation("amount.currency_code",
                                                  f"must be the invoice's currency {self.currency_code}")])
        if self.credited:
            raise FailedPrecondition(f"invoice {self.number} was credited; nothing is due")
        if self.amount_due == 0:
            raise FailedPrecondition(f"invoice {self.number} is already paid in full")
        if amount > self.amount_due:
            raise FailedPrecondition(
                f"payment of {money.format_amount(amount)} {currency_code} exceeds the "
                f"{money.format_amount(self.amount_due)} {self.currency_code} due on invoice {self.number}")
        self.amount_paid += amount
        self.version += 1

    def credit(self) -> tuple[Decimal, Decimal] | None:
        """Credits what is not yet credited; returns (amount, unpaid part), or None when
        there is nothing left to credit."""
        amount = self.total - self.amount_credited
        if self.credited or amount <= 0:
            return None
        unpaid = self.amount_due
        self.amount_credited += amount
        self.version += 1
        return amount, unpaid


def new_invoice(invoice_id: str, year: int, seq: int, cmd: IssueInvoice, priced: PricedOrder, tax_rate: Decimal,
                issued_at: dt.datetime, payment_terms_days: int) -> Invoice:
    return Invoice(
        invoice_id=invoice_id, year=year, seq=seq, order_id=cmd.order_id, customer_id=cmd.customer_id,
        currency_code=priced.currency_code, lines=list(priced.lines), subtotal=priced.subtotal, tax=priced.tax,
        total=priced.total, tax_rate=tax_rate, order_amount=priced.order_amount, issued_at=issued_at,
        due_at=issued_at + dt.timedelta(days=payment_terms_days))


def status_filter(status: InvoiceStatus) -> tuple[frozenset[PaymentState], bool | None]:
    """Stored states a status covers, and whether the due date must be past (True),
    not past (False) or does not matter (None)."""
    open_states = {InvoiceStatus.UNPAID: PaymentState.UNPAID, InvoiceStatus.PARTLY_PAID: PaymentState.PARTLY_PAID}
    if status is InvoiceStatus.OVERDUE:
        return frozenset({PaymentState.UNPAID, PaymentState.PARTLY_PAID}), True
    if status in open_states:
        return frozenset({open_states[status]}), False
    return frozenset({PaymentState(status.value)}), None


# ---------------------------------------------------------------- payments and credit notes


@dataclasses.dataclass(frozen=True)
class RecordPayment:
    request_id: str
    invoice_id: str
    amount: str
    currency_code: str
    reference: str


@dataclasses.dataclass(frozen=True)
class Payment:
    payment_id: str
    request_id: str
    invoice_id: str
    amount: Decimal
    currency_code: str
    reference: str
    received_at: dt.datetime
    journal_entry_id: int | None = None


def validate_payment(cmd: RecordPayment) -> Decimal:
    """The payment amount, or InvalidArgument naming every bad field."""
    v = Violations()
    return valid_payment(v, check_payment(v, cmd.request_id, ("invoice_id", cmd.invoice_id), cmd.amount,
                                          cmd.currency_code, cmd.reference))


@dataclasses.dataclass(frozen=True)
class CancelOrder:
    order_id: str
    customer_id: str
    reason: str
    was_invoiced: bool


@dataclasses.dataclass(frozen=True)
class CreditNote:
    credit_note_id: str
    year: int
    seq: int
    invoice_id: str
    order_id: str
    customer_id: str
    currency_code: str
    amount: Decimal  # credited, tax included
    unpaid_amount: Decimal  # the part that was still due
    reason: str
    issued_at: dt.datetime
    journal_entry_id: int | None = None

    @property
    def number(self) -> str:
        return document_number(CREDIT_NOTE_PREFIX, self.year, self.seq)


@dataclasses.dataclass(frozen=True)
class CustomerTerms:
    """What finance keeps of a CustomerUpdated: the payment terms, at a version."""

    customer_id: str
    payment_terms_days: int
    version: int


def validate_terms(terms: CustomerTerms) -> None:
    v = Violations()
    check_id(v, "customer_id", terms.customer_id)
    v.check(0 <= terms.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS, "payment_terms_days",
            f"must be 0-{MAX_PAYMENT_TERMS_DAYS}")
    v.raise_if_any()


# ---------------------------------------------------------------- what they post


def invoice_entry(invoice: Invoice) -> JournalEntry | None:
    """Dr receivables total / Cr revenue subtotal / Cr tax payable tax."""
    return entry(f"invoice {invoice.number} for order {invoice.order_id}", invoice.invoice_id, invoice.currency_code,
                 [(Account.RECEIVABLES, invoice.total)],
                 [(Account.REVENUE, invoice.subtotal), (Account.TAX_PAYABLE, invoice.tax)])


def payment_entry(payment: Payment, invoice: Invoice) -> JournalEntry:
    """Dr cash / Cr receivables."""
    return payment_posting(f"payment for invoice {invoice.number}", payment.payment_id, payment.currency_code,
                           payment.amount, Account.CASH, Account.RECEIVABLES)


@dataclasses.dataclass(frozen=True)
class BeforeIssuing:
    """What issuing an order's invoice looks at first (InvoiceRepository.before_issuing)."""

    cancelled: bool  # cancelled before it was invoiced: no invoice
    invoiced: bool  # has its invoice already
    payment_terms: int | None  # the customer's; None: not known here yet
