"""Finance's shared rules: the chart of accounts, the configuration, the one rounding rule,
the double-entry journal, the checks every payment shares and aging by due date. No I/O here.

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
from typing import TYPE_CHECKING, Protocol

from mesh import money
from mesh.errors import Violations

if TYPE_CHECKING:
    from mesh.settings import Settings, Variables

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# The largest amount Money can carry (14 integer digits); posted money is Numeric(18,2).
MAX_AMOUNT = Decimal("99999999999999.99")
MAX_PAYMENT_TERMS_DAYS = 3650
MAX_ID = 64


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


def _fraction(variables: Variables, name: str, default: str) -> Decimal:
    """A setting that is a decimal fraction from 0 to 1 with at most 6 decimals."""
    value = variables.decimal(name, default, least=Decimal(0), most=Decimal(1))
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -6:
        raise ValueError(f"{name} must have at most 6 decimals, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class FinanceConfig:
    tax_rate: Decimal
    default_payment_terms_days: int
    currency: str
    # Three-way match of supplier bills (services/finance/payables/domain.py), as fractions.
    bill_quantity_tolerance: Decimal = Decimal(0)
    bill_price_tolerance: Decimal = Decimal("0.02")

    @classmethod
    def from_settings(cls, settings: Settings) -> FinanceConfig:
        """From the ERP_FINANCE_* settings (README's configuration table, services/finance/service.py);
        a bad value stops the service at start-up, naming its variable."""
        variables = settings.variables
        currency = variables.text("ERP_FINANCE_CURRENCY", "EUR")
        if not money.valid_currency(currency):
            raise ValueError(f"ERP_FINANCE_CURRENCY must be an ISO 4217 code such as EUR, got {currency!r}")
        return cls(
            tax_rate=_fraction(variables, "ERP_FINANCE_TAX_RATE", "0.20"),
            default_payment_terms_days=variables.integer("ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS", 30, least=0,
                                                         most=MAX_PAYMENT_TERMS_DAYS),
            currency=currency,
            bill_quantity_tolerance=_fraction(variables, "ERP_FINANCE_BILL_QUANTITY_TOLERANCE", "0"),
            bill_price_tolerance=_fraction(variables, "ERP_FINANCE_BILL_PRICE_TOLERANCE", "0.02"),
        )


# ---------------------------------------------------------------- rounding and checks


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


def utc_date(moment: dt.datetime) -> dt.date:
    return moment.astimezone(dt.UTC).date()


def check_id(v: Violations, field: str, value: str) -> None:
    v.check(0 < len(value) <= MAX_ID, field, f"must be 1-{MAX_ID} characters")


def check_payment(v: Violations, request_id: str, paid: tuple[str, str], amount_text: str, currency_code: str,
                  reference: str) -> Decimal | None:
    """The checks every payment (a customer's, or to a supplier) shares; paid is the (field,
    id) of what is paid. Returns the amount when it is valid."""
    v.check(0 < len(request_id) <= MAX_ID, "request_id", "must be 1-64 characters (a UUID is a good choice)")
    check_id(v, *paid)
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


@dataclasses.dataclass(frozen=True)
class OrderLineInput:
    """One line of an order's event (a sales order's OrderConfirmed, a purchase order's
    PurchaseOrderApproved), as received (never trusted)."""

    line_no: int
    sku: str
    quantity: int
    unit_price: str
    currency_code: str


def unit_price(v: Violations, field: str, text: str) -> Decimal:
    """A line's unit price: a non-negative amount; zero when it is not one (v then says why)."""
    price = money.parse_amount(text)
    if price is None or price < 0:
        v.add(f"{field}.unit_price.amount", "must be a non-negative decimal with at most 4 decimals")
        return Decimal(0)
    return price


def valid_payment(v: Violations, amount: Decimal | None) -> Decimal:
    """The amount check_payment returned, once v holds no violation (it raises otherwise)."""
    v.raise_if_any()
    assert amount is not None, "check_payment reports an amount that does not parse"
    return amount


# ---------------------------------------------------------------- the journal


class UnbalancedEntry(Exception):
    """A bug, never a caller's mistake: an entry whose debits and credits differ."""


@dataclasses.dataclass(frozen=True)
class JournalLine:
    account: str
    debit: Decimal = ZERO
    credit: Decimal = ZERO


class _DebitsAndCredits(Protocol):
    @property
    def debit(self) -> Decimal: ...

    @property
    def credit(self) -> Decimal: ...


class _Totals:
    """Debit and credit totals over the lines of an entry or a trial balance."""

    lines: Sequence[_DebitsAndCredits]

    @property
    def total_debit(self) -> Decimal:
        return sum((line.debit for line in self.lines), ZERO)

    @property
    def total_credit(self) -> Decimal:
        return sum((line.credit for line in self.lines), ZERO)


@dataclasses.dataclass(frozen=True)
class JournalEntry(_Totals):
    memo: str
    reference: str
    currency_code: str
    lines: tuple[JournalLine, ...]
    reverses_entry_id: int | None = None
    entry_id: int | None = None
    posted_at: dt.datetime | None = None

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


def payment_posting(memo: str, reference: str, currency_code: str, amount: Decimal, debit: Account,
                  credit: Account) -> JournalEntry:
    """A payment's two lines (Dr cash / Cr receivables for a customer's, Dr payables / Cr cash
    for one to a supplier)."""
    result = entry(memo, reference, currency_code, [(debit, amount)], [(credit, amount)])
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
class TrialBalance(_Totals):
    lines: tuple[AccountTotals, ...]


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
    """What is open on an invoice (or a supplier bill) as of some day, with its due date;
    customer_id holds the supplier's id for a bill."""

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
        return sum((self.amount(name) for name in BUCKETS), ZERO)

    def amount(self, name: str) -> Decimal:
        value: Decimal = getattr(self, name)
        return value

    def add(self, name: str, amount: Decimal) -> None:
        setattr(self, name, self.amount(name) + amount)


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
