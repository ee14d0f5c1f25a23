"""Finance's rules: invoice pricing by the one declared rounding rule, payments, credit
notes, the double-entry journal, invoice status and receivables aging. No I/O here.

Rounding rule (finance.proto's service comment): each line amount is quantity x unit
price rounded half up to 2 decimals; the subtotal is the sum of the rounded lines; tax
is subtotal x tax rate rounded half up to 2 decimals; total = subtotal + tax.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal

from mesh import money
from mesh.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# The largest amount Money can carry (14 integer digits); posted money is Numeric(18,2).
MAX_AMOUNT = Decimal("99999999999999.99")
MAX_PAYMENT_TERMS_DAYS = 3650
MAX_ID = 64
INVOICE_PREFIX = "INV"
CREDIT_NOTE_PREFIX = "CN"


# ---------------------------------------------------------------- chart of accounts


class Account(enum.StrEnum):
    CASH = "1000"
    RECEIVABLES = "1100"
    INVENTORY = "1200"
    PAYABLES = "2000"
    GOODS_RECEIVED_NOT_INVOICED = "2100"
    TAX_PAYABLE = "2200"
    REVENUE = "4000"
    COST_OF_GOODS_SOLD = "5000"
    PURCHASE_PRICE_VARIANCE = "5100"
    INVENTORY_ADJUSTMENTS = "5200"


# code -> (name, kind). The migrations seed the same rows (a unit test keeps them equal).
CHART: dict[str, tuple[str, str]] = {
    Account.CASH: ("Cash", "asset"),
    Account.RECEIVABLES: ("Accounts receivable", "asset"),
    Account.INVENTORY: ("Inventory", "asset"),
    Account.PAYABLES: ("Accounts payable", "liability"),
    Account.GOODS_RECEIVED_NOT_INVOICED: ("Goods received not invoiced", "liability"),
    Account.TAX_PAYABLE: ("Tax payable", "liability"),
    Account.REVENUE: ("Revenue", "revenue"),
    Account.COST_OF_GOODS_SOLD: ("Cost of goods sold", "expense"),
    Account.PURCHASE_PRICE_VARIANCE: ("Purchase price variance", "expense"),
    Account.INVENTORY_ADJUSTMENTS: ("Inventory adjustments", "expense"),
}


# ---------------------------------------------------------------- configuration


def _fraction(name: str, raw: str, example: str) -> Decimal:
    """A setting that is a decimal fraction from 0 to 1 with at most 6 decimals."""
    try:
        value = Decimal(raw)
    except decimal.InvalidOperation as exc:
        raise ValueError(f"{name} must be a decimal such as {example}, got {raw!r}") from exc
    if not value.is_finite() or not 0 <= value <= 1 or value.as_tuple().exponent < -6:
        raise ValueError(f"{name} must be between 0 and 1 with at most 6 decimals, got {raw!r}")
    return value


@dataclasses.dataclass(frozen=True)
class FinanceConfig:
    tax_rate: Decimal
    default_payment_terms_days: int
    currency: str
    # Three-way match of supplier bills (services/finance/payables.py), as fractions.
    bill_quantity_tolerance: Decimal = Decimal(0)
    bill_price_tolerance: Decimal = Decimal("0.02")

    @classmethod
    def parse(cls, tax_rate: str, default_payment_terms_days: str, currency: str,
              bill_quantity_tolerance: str = "0", bill_price_tolerance: str = "0.02") -> FinanceConfig:
        """From the ERP_FINANCE_* settings; a bad value stops the service at start-up."""
        rate = _fraction("ERP_FINANCE_TAX_RATE", tax_rate, "0.20")
        try:
            terms = int(default_payment_terms_days)
        except ValueError as exc:
            raise ValueError("ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS must be a whole number of days, "
                             f"got {default_payment_terms_days!r}") from exc
        if not 0 <= terms <= MAX_PAYMENT_TERMS_DAYS:
            raise ValueError(f"ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS must be 0-{MAX_PAYMENT_TERMS_DAYS}, got {terms}")
        if not money.valid_currency(currency):
            raise ValueError(f"ERP_FINANCE_CURRENCY must be an ISO 4217 code such as EUR, got {currency!r}")
        return cls(rate, terms, currency,
                   _fraction("ERP_FINANCE_BILL_QUANTITY_TOLERANCE", bill_quantity_tolerance, "0.05"),
                   _fraction("ERP_FINANCE_BILL_PRICE_TOLERANCE", bill_price_tolerance, "0.02"))


# ---------------------------------------------------------------- rounding and pricing


def round_money(value: Decimal) -> Decimal:
    """Half up to the currency's minor unit (2 decimals), exact at any size."""
    with decimal.localcontext(prec=60):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


def line_amount(quantity: int, unit_price: Decimal) -> Decimal:
    with decimal.localcontext(prec=60):
        return round_money(unit_price * quantity)


def tax_on(subtotal: Decimal, tax_rate: Decimal) -> Decimal:
    with decimal.localcontext(prec=60):
        return round_money(subtotal * tax_rate)


@dataclasses.dataclass(frozen=True)
class InvoiceLine:
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal  # quantity x unit_price, rounded half up to 2 decimals


@dataclasses.dataclass(frozen=True)
class OrderLineInput:
    """One line of an OrderConfirmed event, as received (never trusted)."""

    line_no: int
    sku: str
    quantity: int
    unit_price: str
    currency_code: str


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


def _check_id(v: Violations, field: str, value: str) -> None:
    v.check(0 < len(value) <= MAX_ID, field, f"must be 1-{MAX_ID} characters")


def price_order(cmd: IssueInvoice, tax_rate: Decimal) -> PricedOrder:
    """Validates an OrderConfirmed's content and prices it; every problem is reported at once."""
    v = Violations()
    _check_id(v, "order_id", cmd.order_id)
    _check_id(v, "customer_id", cmd.customer_id)
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
        unit_price = money.parse_amount(line.unit_price)
        if unit_price is None or unit_price < 0:
            v.add(f"{field}.unit_price.amount", "must be a non-negative decimal with at most 4 decimals")
        v.check(line.currency_code == currency, f"{field}.unit_price.currency_code",
                f"must be the order's currency {currency}")
        parsed.append((line.quantity, unit_price if unit_price is not None and unit_price >= 0 else Decimal(0)))
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


def utc_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


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


def check_payment(v: Violations, request_id: str, paid: tuple[str, str], amount_text: str, currency_code: str,
                  reference: str) -> Decimal | None:
    """The checks every payment (a customer's, or to a supplier) shares; paid is the (field,
    id) of what is paid. Returns the amount when it is valid."""
    v.check(0 < len(request_id) <= MAX_ID, "request_id", "must be 1-64 characters (a UUID is a good choice)")
    _check_id(v, *paid)
    amount = money.parse_amount(amount_text)
    if amount is None:
        v.add("amount.amount", "must be a decimal such as 12.50")
    elif amount <= 0:
        v.add("amount.amount", "must be more than zero")
    elif amount != round_money(amount):
        v.add("amount.amount", "must have at most 2 decimals (the currency's minor unit)")
    v.check(money.valid_currency(currency_code), "amount.currency_code", "must be an ISO 4217 code such as EUR")
    v.check(len(reference) <= 200, "reference", "must be at most 200 characters")
    return amount


def validate_payment(cmd: RecordPayment) -> Decimal:
    """The payment amount, or InvalidArgument naming every bad field."""
    v = Violations()
    amount = check_payment(v, cmd.request_id, ("invoice_id", cmd.invoice_id), cmd.amount, cmd.currency_code,
                           cmd.reference)
    v.raise_if_any()
    return amount


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
    _check_id(v, "customer_id", terms.customer_id)
    v.check(0 <= terms.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS, "payment_terms_days",
            f"must be 0-{MAX_PAYMENT_TERMS_DAYS}")
    v.raise_if_any()


# ---------------------------------------------------------------- the journal


class UnbalancedEntry(Exception):
    """A bug, never a caller's mistake: an entry whose debits and credits differ."""


@dataclasses.dataclass(frozen=True)
class JournalLine:
    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO


@dataclasses.dataclass(frozen=True)
class JournalEntry:
    memo: str
    reference: str
    currency_code: str
    lines: tuple[JournalLine, ...]
    reverses_entry_id: int | None = None
    entry_id: int | None = None
    posted_at: dt.datetime | None = None

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)

    def check(self) -> None:
        """What the database enforces too: two or more one-sided lines in known
        accounts, in cents, debits = credits > 0."""
        for line in self.lines:
            if line.account not in CHART:
                raise UnbalancedEntry(f"unknown account {line.account}")
            if line.debit < 0 or line.credit < 0 or (line.debit > 0) == (line.credit > 0):
                raise UnbalancedEntry(f"line {line} must be a positive debit or a positive credit")
            if round_money(line.debit) != line.debit or round_money(line.credit) != line.credit:
                raise UnbalancedEntry(f"line {line} is not in cents")
        if len(self.lines) < 2 or self.total_debit != self.total_credit or self.total_debit == 0:
            raise UnbalancedEntry(f"entry {self.memo!r} does not balance: debits {self.total_debit}, "
                                  f"credits {self.total_credit}")


def entry(memo: str, reference: str, currency_code: str, debits: Iterable[tuple[str, Decimal]],
          credits: Iterable[tuple[str, Decimal]]) -> JournalEntry | None:
    """A checked entry from its debits and credits; zero lines are left out, and an entry
    of nothing at all (a free order) is None."""
    lines = tuple([JournalLine(a, debit=x) for a, x in debits if x] + [JournalLine(a, credit=x) for a, x in credits if x])
    if not lines:
        return None
    result = JournalEntry(memo, reference, currency_code, lines)
    result.check()
    return result


def invoice_entry(invoice: Invoice) -> JournalEntry | None:
    """Dr receivables total / Cr revenue subtotal / Cr tax payable tax."""
    return entry(f"invoice {invoice.number} for order {invoice.order_id}", invoice.invoice_id, invoice.currency_code,
                 [(Account.RECEIVABLES, invoice.total)],
                 [(Account.REVENUE, invoice.subtotal), (Account.TAX_PAYABLE, invoice.tax)])


def payment_entry(payment: Payment, invoice: Invoice) -> JournalEntry:
    """Dr cash / Cr receivables."""
    result = entry(f"payment for invoice {invoice.number}", payment.payment_id, payment.currency_code,
                   [(Account.CASH, payment.amount)], [(Account.RECEIVABLES, payment.amount)])
    assert result is not None, "payments are positive"
    return result


def reversal(original: JournalEntry, memo: str, reference: str) -> JournalEntry:
    """The mirror of a posted entry: every debit becomes a credit and back."""
    assert original.entry_id is not None, "only a posted entry can be reversed"
    result = JournalEntry(memo, reference, original.currency_code,
                          tuple(JournalLine(line.account, debit=line.credit, credit=line.debit)
                                for line in original.lines),
                          reverses_entry_id=original.entry_id)
    result.check()
    return result


# ---------------------------------------------------------------- reports


@dataclasses.dataclass(frozen=True)
class AccountTotals:
    account: str
    name: str
    debit: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclasses.dataclass(frozen=True)
class TrialBalance:
    lines: tuple[AccountTotals, ...]

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


BUCKETS = ("current", "days_1_30", "days_31_60", "days_61_90", "over_90")


def bucket(days_overdue: int) -> str:
    if days_overdue <= 0:
        return "current"
    if days_overdue <= 30:
        return "days_1_30"
    if days_overdue <= 60:
        return "days_31_60"
    if days_overdue <= 90:
        return "days_61_90"
    return "over_90"


@dataclasses.dataclass(frozen=True)
class OpenItem:
    """An invoice's amount due as of some day, with its due date."""

    customer_id: str
    due_date: dt.date
    amount_due: Decimal


@dataclasses.dataclass
class AgingRow:
    customer_id: str
    current: Decimal = ZERO
    days_1_30: Decimal = ZERO
    days_31_60: Decimal = ZERO
    days_61_90: Decimal = ZERO
    over_90: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, name) for name in BUCKETS), ZERO)

    def add(self, name: str, amount: Decimal) -> None:
        setattr(self, name, getattr(self, name) + amount)


def aging(items: Iterable[OpenItem], as_of: dt.datetime) -> tuple[list[AgingRow], AgingRow]:
    """Rows per customer (by customer id) and their totals; days overdue count from the due date."""
    today = utc_date(as_of)
    rows: dict[str, AgingRow] = {}
    totals = AgingRow("")
    for item in items:
        if item.amount_due <= 0:
            continue
        name = bucket((today - item.due_date).days)
        rows.setdefault(item.customer_id, AgingRow(item.customer_id)).add(name, item.amount_due)
        totals.add(name, item.amount_due)
    return [rows[c] for c in sorted(rows)], totals
