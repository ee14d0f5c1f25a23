"""Finance's rules and use cases, run against in-memory fakes."""
from __future__ import annotations

import datetime as dt
import importlib.util
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp.common.v1 import money_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import paging
from mesh.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mesh.events.envelope import build
from services.finance import events as finance_events
from services.finance.ledger import domain as ledger
from services.finance.ledger import handlers as ledger_handlers
from services.finance.ledger.domain import (
    Account,
    FinanceConfig,
    JournalEntry,
    JournalLine,
    OrderLineInput,
    UnbalancedEntry,
)
from services.finance.receivables import domain, handlers
from services.finance.receivables.domain import (
    CancelOrder,
    CustomerTerms,
    InvoiceStatus,
    IssueInvoice,
    RecordPayment,
)
from services.finance.receivables.handlers import InvoiceQuery
from tests.unit.fakes import FakeIntegrityError
from tests.unit.fakes_finance import T0, finance_settings, finance_uow

CONFIG = FinanceConfig(Decimal("0.20"), 30, "EUR")
D = Decimal


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in exc.value.violations]


def line(sku="SKU-A", quantity=1, price="10.00", currency="EUR", line_no=None) -> OrderLineInput:
    return OrderLineInput(line_no or 0, sku, quantity, price, currency)


def confirmed(order_id="o1", *lines: OrderLineInput, customer="c1", total=None, currency="EUR") -> IssueInvoice:
    lines = lines or (line(),)
    lines = tuple(OrderLineInput(x.line_no or i + 1, x.sku, x.quantity, x.unit_price, x.currency_code)
                  for i, x in enumerate(lines))
    if total is None:
        total = str(sum((D(x.unit_price) * x.quantity for x in lines), D(0)))
    return IssueInvoice(order_id, customer, lines, total, currency if total else "")


def issue(uow, cmd: IssueInvoice, config=CONFIG, now=T0):
    with uow:
        invoice = handlers.issue_invoice(uow, cmd, config, now=now)
        uow.commit()
    return invoice


def cancel(uow, order_id="o1", was_invoiced=True, now=T0):
    with uow:
        note = handlers.on_order_cancelled(uow, CancelOrder(order_id, "c1", "customer changed their mind",
                                                            was_invoiced), now=now)
        uow.commit()
    return note


def pay(uow, invoice_id, amount, request_id=None, currency="EUR", now=T0):
    return handlers.record_payment(uow, RecordPayment(request_id or f"pay-{amount}-{len(uow.payments.rows)}",
                                                      invoice_id, amount, currency, "bank transfer"), now=now)


def entries(uow) -> list[JournalEntry]:
    return [uow.journal.entries[i] for i in sorted(uow.journal.entries)]


def postings(entry: JournalEntry) -> list[tuple[str, str, str]]:
    return [(line.account, str(line.debit), str(line.credit)) for line in entry.lines]


@pytest.fixture
def uow():
    return finance_uow()


# ---------------------------------------------------------------- rounding rule


@pytest.mark.parametrize(("value", "rounded"), [
    ("0.005", "0.01"), ("0.0049", "0.00"), ("2.675", "2.68"), ("1.0050", "1.01"), ("12.3449", "12.34"),
    ("99999999999999.995", "100000000000000.00"), ("0", "0.00"),
])
def test_money_rounds_half_up_to_cents(value, rounded):
    assert str(ledger.round_money(D(value))) == rounded


def test_the_subtotal_is_the_sum_of_rounded_lines_not_the_rounded_sum():
    # Two lines of 0.005 each: 0.01 + 0.01, where rounding the sum (0.010) would give 0.01.
    amounts, subtotal, tax, total = domain.price([(1, D("0.005")), (1, D("0.005"))], D("0.20"))
    assert amounts == [D("0.01"), D("0.01")]
    assert (subtotal, tax, total) == (D("0.02"), D("0.00"), D("0.02"))
    # Tax is rounded once, on the subtotal: 3 x 0.3333 = 0.9999 -> 1.00; 19% of 1.00 = 0.19.
    assert domain.price([(3, D("0.3333"))], D("0.19"))[1:] == (D("1.00"), D("0.19"), D("1.19"))
    # 0.125 of tax rounds up to 0.13.
    assert domain.price([(1, D("0.625"))], D("0.20"))[1:] == (D("0.63"), D("0.13"), D("0.76"))


def test_pricing_is_exact_for_the_largest_orders():
    amounts, subtotal, _, _ = domain.price([(10**9, D("99999.9999"))] * 3, D("0"))
    assert amounts[0] == D("99999999900000.00") and subtotal == D("299999999700000.00")


def _rounded(value: Decimal) -> Decimal:
    """The rounding rule, spelled out independently of the code under test."""
    return value.quantize(D("0.01"), rounding=ROUND_HALF_UP)


prices = st.decimals(min_value=0, max_value=D("99999.9999"), places=4, allow_nan=False, allow_infinity=False)
order_lines = st.lists(st.tuples(st.integers(1, 10**6), prices), min_size=1, max_size=12)
rates = st.decimals(min_value=0, max_value=1, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(order_lines, rates, st.lists(st.integers(1, 100), max_size=4), st.booleans())
def test_invoice_total_is_the_sum_of_rounded_lines_plus_rounded_tax_and_every_entry_balances(
        lines, rate, payment_percents, cancelled):
    uow = finance_uow()
    config = FinanceConfig(rate, 30, "EUR")
    cmd = confirmed("o1", *(line(f"SKU-{i}", q, str(p)) for i, (q, p) in enumerate(lines)))
    invoice = issue(uow, cmd, config)

    expected_lines = [_rounded(p * q) for q, p in lines]
    subtotal = sum(expected_lines, D(0))
    tax = _rounded(subtotal * rate)
    assert [x.amount for x in invoice.lines] == expected_lines
    assert (invoice.subtotal, invoice.tax, invoice.total) == (subtotal, tax, subtotal + tax)
    [issued] = uow.payloads(ev.InvoiceIssued)
    assert D(issued.total.amount) == subtotal + tax

    # Pay parts of what is due, then maybe cancel: the books balance after every step.
    for percent in payment_percents:
        due = uow.invoices.get(invoice.invoice_id).amount_due
        amount = _rounded(due * percent / 100)
        if amount > 0:
            pay(uow, invoice.invoice_id, str(amount))
    if cancelled:
        cancel(uow)
    for entry in entries(uow):
        assert sum(x.debit for x in entry.lines) == sum(x.credit for x in entry.lines) > 0
        assert all((x.debit > 0) != (x.credit > 0) for x in entry.lines)
    balance = ledger_handlers.trial_balance(uow, "", config)[1]
    assert balance.total_debit == balance.total_credit
    assert sum(x.balance for x in balance.lines) == 0
    final = uow.invoices.get(invoice.invoice_id)
    receivable = sum((x.balance for x in balance.lines if x.account == Account.RECEIVABLES), D(0))
    # What the journal says the customer owes is what the invoice says is due (less any refund owed).
    assert receivable == final.total - final.amount_paid - final.amount_credited
    assert final.amount_due == max(D(0), receivable)


# ---------------------------------------------------------------- validating OrderConfirmed


def test_an_order_confirmed_is_validated_field_by_field():
    cmd = IssueInvoice("", "c" * 65, (
        OrderLineInput(1, "", 0, "1.00", "EUR"),
        OrderLineInput(1, "SKU-B", 1, "-1", "EUR"),
        OrderLineInput(3, "SKU-C", 1, "1.23456", "USD"),
    ), "", "")
    with pytest.raises(InvalidArgument) as exc:
        domain.price_order(cmd, D("0.2"))
    assert fields(exc) == ["order_id", "customer_id", "lines[0].sku", "lines[0].quantity",
                           "lines[1].line_no", "lines[1].unit_price.amount",
                           "lines[2].unit_price.amount", "lines[2].unit_price.currency_code"]


def test_an_order_confirmed_without_lines_or_with_a_total_that_does_not_add_up_is_refused():
    with pytest.raises(InvalidArgument) as exc:
        domain.price_order(IssueInvoice("o1", "c1", (), "", ""), D("0.2"))
    assert fields(exc) == ["lines"]
    with pytest.raises(InvalidArgument) as exc:
        domain.price_order(confirmed("o1", line(quantity=2, price="1.005"), total="2.00"), D("0.2"))
    assert fields(exc) == ["total.amount"] and "2.01" in exc.value.violations[0].description
    with pytest.raises(InvalidArgument) as exc:
        domain.price_order(confirmed("o1", line(currency="USD")), D("0.2"))
    assert fields(exc) == ["lines[0].unit_price.currency_code"]


def test_an_invoice_too_large_for_money_is_refused():
    with pytest.raises(InvalidArgument) as exc:
        domain.price_order(confirmed("o1", line(quantity=10**9, price="99999.9999"),
                                     line("SKU-B", quantity=10**9, price="99999.9999")), D("0.2"))
    assert fields(exc) == ["total.amount"]


def test_an_order_confirmed_without_a_total_takes_its_currency_from_the_lines():
    priced = domain.price_order(IssueInvoice("o1", "c1", (OrderLineInput(1, "A", 3, "1.005", "USD"),), "", ""),
                                D("0.10"))
    assert (priced.currency_code, priced.subtotal, priced.tax, priced.total, priced.order_amount) == \
        ("USD", D("3.02"), D("0.30"), D("3.32"), D("3.015"))


@pytest.mark.parametrize(("env", "problem"), [
    (("abc", "30", "EUR"), "ERP_FINANCE_TAX_RATE"), (("1.5", "30", "EUR"), "ERP_FINANCE_TAX_RATE"),
    (("-0.1", "30", "EUR"), "ERP_FINANCE_TAX_RATE"), (("0.1234567", "30", "EUR"), "ERP_FINANCE_TAX_RATE"),
    (("NaN", "30", "EUR"), "ERP_FINANCE_TAX_RATE"), (("0.2", "x", "EUR"), "ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS"),
    (("0.2", "-1", "EUR"), "ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS"), (("0.2", "30", "eur"), "ERP_FINANCE_CURRENCY"),
])
def test_bad_settings_stop_the_service_naming_the_variable(env, problem):
    with pytest.raises(ValueError, match=problem):
        FinanceConfig.from_settings(finance_settings(*env))
    assert FinanceConfig.from_settings(finance_settings("0.075", "14", "USD")) == FinanceConfig(D("0.075"), 14, "USD")
    assert FinanceConfig.from_settings(finance_settings()) == FinanceConfig(D("0.20"), 30, "EUR")


def test_the_migrations_seed_exactly_the_chart_the_domain_posts_to():
    seeded = {}
    for path in sorted((Path(domain.__file__).parents[1] / "migrations" / "versions").glob("0*.py")):
        spec = importlib.util.spec_from_file_location(f"finance_{path.stem}", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        seeded |= {code: (name, kind) for code, name, kind in getattr(migration, "CHART", [])}
    assert seeded == dict(ledger.CHART)
    assert set(ledger.CHART) == {a.value for a in Account}


# ---------------------------------------------------------------- issuing invoices


def test_an_order_confirmed_issues_a_numbered_invoice_and_posts_it(uow):
    invoice = issue(uow, confirmed("o1", line("CHAIR", 4, "89.90"), line("DESK", 1, "349.005")))
    assert invoice.number == "INV-2026-000001"
    assert [(x.line_no, x.sku, x.quantity, x.amount) for x in invoice.lines] == [
        (1, "CHAIR", 4, D("359.60")), (2, "DESK", 1, D("349.01"))]
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("708.61"), D("141.72"), D("850.33"))
    assert invoice.order_amount == D("708.605")
    assert invoice.due_at == T0 + dt.timedelta(days=30)  # unknown customer: the default terms
    assert invoice.status(T0) is InvoiceStatus.UNPAID
    [entry] = entries(uow)
    assert entry.reference == invoice.invoice_id and entry.entry_id == invoice.journal_entry_id
    assert postings(entry) == [("1100", "850.33", "0.00"), ("4000", "0.00", "708.61"), ("2200", "0.00", "141.72")]
    [event] = uow.events
    assert (event.aggregate_type, event.aggregate_id, event.version) == ("invoice", "o1", 1)
    assert event.payload == ev.InvoiceIssued(
        invoice_id=invoice.invoice_id, number="INV-2026-000001", order_id="o1", customer_id="c1",
        total=money_pb2.Money(currency_code="EUR", amount="850.33"), due_date="2026-04-09",
        order_amount=money_pb2.Money(currency_code="EUR", amount="708.605"))


def test_one_invoice_per_order_ever(uow):
    first = issue(uow, confirmed("o1"))
    again = issue(uow, confirmed("o1", line(quantity=5)))  # another delivery, even with other content
    assert again.invoice_id == first.invoice_id
    assert len(uow.invoices.rows) == 1 and len(uow.journal.entries) == 1 and len(uow.events) == 1
    assert issue(uow, confirmed("o2")).number == "INV-2026-000002"


def test_numbers_are_gap_free_when_a_transaction_rolls_back_and_restart_each_year(uow):
    with uow:
        assert handlers.issue_invoice(uow, confirmed("o1"), CONFIG, now=T0).number == "INV-2026-000001"
        # no commit: the consumer's transaction fails and rolls back
    assert uow.invoices.rows == {} and uow.events == []
    assert issue(uow, confirmed("o2")).number == "INV-2026-000001"
    assert issue(uow, confirmed("o3")).number == "INV-2026-000002"
    assert issue(uow, confirmed("o4"), now=dt.datetime(2027, 1, 1, tzinfo=dt.UTC)).number == "INV-2027-000001"


def test_the_customers_payment_terms_set_the_due_date_and_older_versions_are_ignored(uow):
    with uow:
        assert handlers.on_customer_updated(uow, CustomerTerms("c1", 14, 2))
        assert not handlers.on_customer_updated(uow, CustomerTerms("c1", 60, 1))  # late, older
        uow.commit()
    invoice = issue(uow, confirmed("o1"))
    assert invoice.due_at == T0 + dt.timedelta(days=14)
    with uow, pytest.raises(InvalidArgument) as exc:
        handlers.on_customer_updated(uow, CustomerTerms("", -1, 3))
    assert fields(exc) == ["customer_id", "payment_terms_days"]


def test_a_free_order_is_invoiced_paid_and_posts_nothing(uow):
    invoice = issue(uow, confirmed("o1", line(price="0")))
    assert invoice.total == 0 and invoice.status(T0) is InvoiceStatus.PAID
    assert invoice.journal_entry_id is None and uow.journal.entries == {}
    assert cancel(uow) is None  # nothing to credit


def test_a_cancellation_before_the_invoice_leaves_a_tombstone_so_a_late_confirmation_invoices_nothing(uow):
    assert cancel(uow, "o1", was_invoiced=False) is None
    assert issue(uow, confirmed("o1")) is None
    assert uow.invoices.rows == {} and uow.events == [] and uow.journal.entries == {}


def test_an_invalid_order_confirmed_fails_so_the_consumer_retries_and_dead_letters(uow):
    with uow, pytest.raises(InvalidArgument):
        handlers.issue_invoice(uow, confirmed("o1", line(quantity=-1)), CONFIG, now=T0)
    assert uow.invoices.rows == {} and uow.numbers.counters == {}


# ---------------------------------------------------------------- invoice status


def _invoice(total="100.00", paid="0.00", credited="0.00", due=T0 + dt.timedelta(days=30)) -> domain.Invoice:
    return domain.Invoice("i1", 2026, 1, "o1", "c1", "EUR", [], D(total), D("0.00"), D(total), D("0"), D(total),
                          T0, due, D(paid), D(credited))


@pytest.mark.parametrize(("paid", "credited", "as_of_days", "status"), [
    ("0.00", "0.00", 0, InvoiceStatus.UNPAID),
    ("0.00", "0.00", 30, InvoiceStatus.UNPAID),  # the due day itself is not overdue
    ("0.00", "0.00", 31, InvoiceStatus.OVERDUE),
    ("40.00", "0.00", 0, InvoiceStatus.PARTLY_PAID),
    ("40.00", "0.00", 31, InvoiceStatus.OVERDUE),  # past due and not paid in full
    ("100.00", "0.00", 31, InvoiceStatus.PAID),
    ("0.00", "100.00", 31, InvoiceStatus.CREDITED),
    ("40.00", "100.00", 0, InvoiceStatus.CREDITED),
])
def test_invoice_status_is_derived(paid, credited, as_of_days, status):
    invoice = _invoice(paid=paid, credited=credited)
    assert invoice.status(T0 + dt.timedelta(days=as_of_days)) is status
    states, overdue = domain.status_filter(status)
    assert invoice.state in states
    if overdue is not None:
        assert (invoice.due_date < ledger.utc_date(T0 + dt.timedelta(days=as_of_days))) == overdue


def test_amount_due_never_goes_below_zero_after_a_credit_note_on_a_paid_invoice():
    assert _invoice(paid="40.00", credited="100.00").amount_due == 0


# ---------------------------------------------------------------- payments


def test_partial_payments_settle_an_invoice_and_post_cash_against_receivables(uow):
    invoice = issue(uow, confirmed("o1", line(price="100.00")))  # total 120.00
    payment, after = pay(uow, invoice.invoice_id, "50", request_id="r1")
    assert (after.amount_paid, after.amount_due, after.status(T0)) == (D("50"), D("70.00"), InvoiceStatus.PARTLY_PAID)
    assert postings(uow.journal.entries[payment.journal_entry_id]) == [("1000", "50", "0.00"), ("1100", "0.00", "50")]
    _, after = pay(uow, invoice.invoice_id, "70.00", request_id="r2")
    assert (after.amount_due, after.status(T0)) == (D("0.00"), InvoiceStatus.PAID)
    received = uow.payloads(ev.PaymentReceived)
    assert [(p.amount.amount, p.amount_due.amount, p.paid_in_full) for p in received] == [
        ("50.00", "70.00", False), ("70.00", "0.00", True)]
    assert [(e.aggregate_type, e.aggregate_id, e.version) for e in uow.events[1:]] == [
        ("payment", "o1", 2), ("payment", "o1", 3)]


def test_a_repeated_payment_request_changes_nothing_and_answers_as_the_first_time(uow):
    invoice = issue(uow, confirmed("o1", line(price="100.00")))
    first, _ = pay(uow, invoice.invoice_id, "50.00", request_id="r1")
    again, after = pay(uow, invoice.invoice_id, "50", request_id="r1")
    assert again.payment_id == first.payment_id and after.amount_paid == D("50.00")
    assert len(uow.payments.rows) == 1 and len(uow.payloads(ev.PaymentReceived)) == 1
    with pytest.raises(AlreadyExists):
        pay(uow, invoice.invoice_id, "20.00", request_id="r1")


def test_paying_more_than_is_due_is_refused_and_changes_nothing(uow):
    invoice = issue(uow, confirmed("o1", line(price="100.00")))
    pay(uow, invoice.invoice_id, "100.00")
    before = (dict(uow.journal.entries), list(uow.events), uow.invoices.get(invoice.invoice_id))
    with pytest.raises(FailedPrecondition, match="exceeds the 20.00 EUR due"):
        pay(uow, invoice.invoice_id, "20.01")
    assert (dict(uow.journal.entries), list(uow.events), uow.invoices.get(invoice.invoice_id)) == before
    pay(uow, invoice.invoice_id, "20.00")
    with pytest.raises(FailedPrecondition, match="already paid in full"):
        pay(uow, invoice.invoice_id, "0.01")


def test_payment_requests_are_validated_field_by_field(uow):
    with pytest.raises(InvalidArgument) as exc:
        handlers.record_payment(uow, RecordPayment("", "", "0", "eur", "x" * 201))
    assert fields(exc) == ["request_id", "invoice_id", "amount.amount", "amount.currency_code", "reference"]
    for amount, why in [("-5", "more than zero"), ("1.005", "at most 2 decimals"), ("1e3", "decimal")]:
        with pytest.raises(InvalidArgument, match=why):
            handlers.record_payment(uow, RecordPayment("r", "i", amount, "EUR", ""))
    with pytest.raises(NotFound):
        handlers.record_payment(uow, RecordPayment("r", "nope", "1", "EUR", ""))
    invoice = issue(uow, confirmed("o1"))
    with pytest.raises(InvalidArgument) as exc:
        pay(uow, invoice.invoice_id, "1.00", currency="USD")
    assert fields(exc) == ["amount.currency_code"]


# ---------------------------------------------------------------- credit notes


def test_cancelling_an_invoiced_order_credits_the_invoice_with_a_reversal(uow):
    invoice = issue(uow, confirmed("o1", line(price="100.00")))
    pay(uow, invoice.invoice_id, "50.00")
    note = cancel(uow)
    assert note.number == "CN-2026-000001"
    assert (note.amount, note.unpaid_amount) == (D("120.00"), D("70.00"))
    credited = uow.invoices.get(invoice.invoice_id)
    assert credited.status(T0) is InvoiceStatus.CREDITED and credited.amount_due == 0
    reversal = uow.journal.entries[note.journal_entry_id]
    assert reversal.reverses_entry_id == invoice.journal_entry_id and reversal.reference == note.credit_note_id
    assert postings(reversal) == [("1100", "0.00", "120.00"), ("4000", "100.00", "0.00"), ("2200", "20.00", "0.00")]
    [event] = [e for e in uow.events if isinstance(e.payload, ev.CreditNoteIssued)]
    assert (event.aggregate_type, event.aggregate_id, event.version) == ("credit_note", "o1", 3)
    assert (event.payload.amount.amount, event.payload.unpaid_amount.amount) == ("120.00", "70.00")
    # A second cancellation credits nothing more, and nothing can be paid any more.
    assert cancel(uow) is None and len(uow.credit_notes.rows) == 1
    with pytest.raises(FailedPrecondition, match="credited"):
        pay(uow, invoice.invoice_id, "1.00")


def test_an_invoice_is_credited_even_when_orders_did_not_know_it_was_invoiced(uow):
    invoice = issue(uow, confirmed("o1"))
    note = cancel(uow, was_invoiced=False)
    assert note is not None and note.invoice_id == invoice.invoice_id and note.unpaid_amount == invoice.total


def test_the_journal_refuses_unbalanced_and_repeated_reversals():
    with pytest.raises(UnbalancedEntry):
        ledger.entry("x", "r", "EUR", [(Account.CASH, D("10.00"))], [(Account.REVENUE, D("9.99"))])
    with pytest.raises(UnbalancedEntry):
        JournalEntry("x", "r", "EUR", (JournalLine("9999", debit=D(1)), JournalLine("1000", credit=D(1)))).check()
    with pytest.raises(UnbalancedEntry):
        JournalEntry("x", "r", "EUR", (JournalLine("1000", debit=D("0.001")),
                                       JournalLine("4000", credit=D("0.001")))).check()
    assert ledger.entry("x", "r", "EUR", [(Account.CASH, D(0))], []) is None
    uow = finance_uow()
    invoice = issue(uow, confirmed("o1"))
    original = uow.journal.get(invoice.journal_entry_id)
    uow.journal.post(ledger.reversal(original, "first", "r1"))
    with pytest.raises(FakeIntegrityError, match="already reversed"):
        uow.journal.post(ledger.reversal(original, "second", "r2"))


# ---------------------------------------------------------------- reports


def test_the_trial_balance_sums_to_zero_per_currency(uow):
    a = issue(uow, confirmed("o1", line(price="100.00")))
    issue(uow, confirmed("o2", line(price="10.00", currency="USD"), currency="USD"))
    pay(uow, a.invoice_id, "30.00")
    issue(uow, confirmed("o3", line(price="50.00")))
    cancel(uow, "o3")
    currency, balance = ledger_handlers.trial_balance(uow, "", CONFIG)
    assert currency == "EUR"
    assert [(x.account, x.name, str(x.debit), str(x.credit), str(x.balance)) for x in balance.lines] == [
        ("1000", "Cash", "30.00", "0.00", "30.00"),
        ("1100", "Accounts receivable", "180.00", "90.00", "90.00"),
        ("2200", "Tax payable", "10.00", "30.00", "-20.00"),
        ("4000", "Revenue", "50.00", "150.00", "-100.00"),
    ]
    assert balance.total_debit == balance.total_credit == D("270.00")
    usd = ledger_handlers.trial_balance(uow, "USD", CONFIG)[1]
    assert usd.total_debit == usd.total_credit == D("12.00")
    with pytest.raises(InvalidArgument) as exc:
        ledger_handlers.trial_balance(uow, "usd", CONFIG)
    assert fields(exc) == ["currency_code"]


@pytest.mark.parametrize(("days", "name"), [
    (-5, "current"), (0, "current"), (1, "days_1_30"), (30, "days_1_30"), (31, "days_31_60"), (60, "days_31_60"),
    (61, "days_61_90"), (90, "days_61_90"), (91, "over_90"), (4000, "over_90"),
])
def test_aging_buckets_by_days_past_the_due_date(days, name):
    assert ledger.bucket(days) == name


def test_receivables_aging_by_customer_as_of_a_moment(uow):
    with uow:
        handlers.on_customer_updated(uow, CustomerTerms("net0", 0, 1))
        uow.commit()
    a = issue(uow, confirmed("o1", line(price="100.00"), customer="net0"))  # due T0: 120.00
    issue(uow, confirmed("o2", line(price="10.00"), customer="net30"))  # due T0 + 30: 12.00
    issue(uow, confirmed("o3", line(price="10.00"), customer="net0"), now=T0 + dt.timedelta(days=40))  # later
    pay(uow, a.invoice_id, "20.00", now=T0 + dt.timedelta(days=10))
    issue(uow, confirmed("o4", line(price="5.00", currency="USD"), customer="net0", currency="USD"))

    def aged(days: int):
        _, rows, totals = handlers.receivables_aging(uow, "", T0 + dt.timedelta(days=days), CONFIG)
        return {r.customer_id: [str(getattr(r, b)) for b in ledger.BUCKETS] for r in rows}, str(totals.total)

    assert aged(0) == ({"net0": ["120.00", "0.00", "0.00", "0.00", "0.00"], "net30": ["12.00", "0.00", "0.00", "0.00", "0.00"]}, "132.00")
    assert aged(5) == ({"net0": ["0.00", "120.00", "0.00", "0.00", "0.00"], "net30": ["12.00", "0.00", "0.00", "0.00", "0.00"]}, "132.00")
    # The payment on day 10 counts from then on; the invoice issued on day 40 from then on.
    assert aged(31) == ({"net0": ["0.00", "0.00", "100.00", "0.00", "0.00"], "net30": ["0.00", "12.00", "0.00", "0.00", "0.00"]}, "112.00")
    assert aged(45) == ({"net0": ["0.00", "12.00", "100.00", "0.00", "0.00"],
                         "net30": ["0.00", "12.00", "0.00", "0.00", "0.00"]}, "124.00")
    assert aged(200)[0]["net0"] == ["0.00", "0.00", "0.00", "0.00", "112.00"]
    _, usd_rows, _ = handlers.receivables_aging(uow, "USD", T0, CONFIG)
    assert [(r.customer_id, r.current) for r in usd_rows] == [("net0", D("6.00"))]


def test_list_invoices_filters_and_pages_by_number(uow):
    for i in range(5):
        issue(uow, confirmed(f"o{i}", customer="c1" if i % 2 else "c2"))
    paid = uow.invoices.by_order("o1")
    pay(uow, paid.invoice_id, str(paid.total))
    page, token = handlers.list_invoices(uow, InvoiceQuery(), 2, "", T0)
    assert [i.number for i in page] == ["INV-2026-000001", "INV-2026-000002"] and token
    page, token = handlers.list_invoices(uow, InvoiceQuery(), 2, token, T0)
    assert [i.number for i in page] == ["INV-2026-000003", "INV-2026-000004"]
    page, token = handlers.list_invoices(uow, InvoiceQuery(), 2, token, T0)
    assert [i.number for i in page] == ["INV-2026-000005"] and token == ""
    assert [i.order_id for i in handlers.list_invoices(uow, InvoiceQuery(customer_id="c1"), 0, "", T0)[0]] == [
        "o1", "o3"]
    assert [i.order_id for i in handlers.list_invoices(uow, InvoiceQuery(status=InvoiceStatus.PAID), 0, "", T0)[0]] \
        == ["o1"]
    later = T0 + dt.timedelta(days=31)
    assert len(handlers.list_invoices(uow, InvoiceQuery(status=InvoiceStatus.OVERDUE), 0, "", later)[0]) == 4
    assert handlers.list_invoices(uow, InvoiceQuery(status=InvoiceStatus.UNPAID), 0, "", later)[0] == []
    _, token = handlers.list_invoices(uow, InvoiceQuery(), 1, "", T0)
    with pytest.raises(InvalidArgument, match="other filters"):
        handlers.list_invoices(uow, InvoiceQuery(customer_id="c1"), 1, token, T0)
    forged = paging.encode(["x", 1], {"customer_id": "", "order_id": "", "status": ""})
    with pytest.raises(InvalidArgument, match="page_token"):
        handlers.list_invoices(uow, InvoiceQuery(), 1, forged, T0)
    with pytest.raises(InvalidArgument) as exc:
        handlers.list_invoices(uow, InvoiceQuery(customer_id="c" * 65), -1, "", T0)
    assert fields(exc) == ["customer_id"]


def test_journal_entries_list_in_posting_order_by_reference(uow):
    invoice = issue(uow, confirmed("o1"))
    payment, _ = pay(uow, invoice.invoice_id, "1.00")
    issue(uow, confirmed("o2"))
    page, token = ledger_handlers.list_journal_entries(uow, "", 2, "")
    assert [e.entry_id for e in page] == [1, 2] and token
    assert [e.entry_id for e in ledger_handlers.list_journal_entries(uow, "", 2, token)[0]] == [3]
    assert [e.reference for e in ledger_handlers.list_journal_entries(uow, payment.payment_id, 0, "")[0]] == [
        payment.payment_id]


def test_get_invoice(uow):
    invoice = issue(uow, confirmed("o1"))
    assert handlers.get_invoice(uow, invoice.invoice_id).number == invoice.number
    with pytest.raises(NotFound):
        handlers.get_invoice(uow, "nope")
    with pytest.raises(InvalidArgument):
        handlers.get_invoice(uow, "")


# ---------------------------------------------------------------- the event entry points


def _event(payload, version=1) -> EventEnvelope:
    return build(source="test", aggregate_type="x", aggregate_id="a", aggregate_version=version, payload=payload)


def test_the_consumed_events_reach_their_handlers(uow):
    consumes = finance_events.build(CONFIG)
    assert consumes.event_types == ["erp.events.v1.CustomerUpdated", "erp.events.v1.GoodsReceived",
                                    "erp.events.v1.OrderCancelled", "erp.events.v1.OrderConfirmed",
                                    "erp.events.v1.PurchaseOrderApproved", "erp.events.v1.StockAdjusted",
                                    "erp.events.v1.StockIssued"]
    eur = money_pb2.Money(currency_code="EUR", amount="12.50")
    with uow:
        updated = crm_ev.CustomerUpdated(customer_id="c1", payment_terms_days=7)
        consumes.handlers["erp.events.v1.CustomerUpdated"](uow, updated, _event(updated, version=4))
        order = orders_ev.OrderConfirmed(order_id="o1", customer_id="c1", total=money_pb2.Money(
            currency_code="EUR", amount="25.00"), lines=[orders_ev.OrderLineItem(
                line_no=1, sku="SKU-A", warehouse_code="MAIN", quantity=2, unit_price=eur)])
        consumes.handlers["erp.events.v1.OrderConfirmed"](uow, order, _event(order))
        cancelled = orders_ev.OrderCancelled(order_id="o1", customer_id="c1", reason="r", was_invoiced=True)
        consumes.handlers["erp.events.v1.OrderCancelled"](uow, cancelled, _event(cancelled))
        uow.commit()
    assert uow.customers.rows["c1"] == CustomerTerms("c1", 7, 4)
    invoice = uow.invoices.by_order("o1")
    assert (invoice.total, invoice.due_at - invoice.issued_at) == (D("30.00"), dt.timedelta(days=7))
    assert [type(p).__name__ for p in uow.payloads()] == ["InvoiceIssued", "CreditNoteIssued"]
