"""CRM's rules and use cases, run against in-memory fakes."""
from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal

import pytest

from erp.common.v1 import money_pb2
from erp.events.v1 import crm_events_pb2 as ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import addresses
from mesh.errors import AlreadyExists, InvalidArgument, NotFound
from mesh.events.envelope import event_type
from services.crm import domain, handlers
from services.crm import events as crm_events
from services.crm.domain import (
    CheckCredit,
    ClosedBy,
    Contact,
    CreateCustomer,
    CustomerStatus,
    Exposure,
    InvoiceBalance,
    SetCreditLimit,
    UpdateCustomerStatus,
)
from tests.unit.fakes import FakeUnitOfWork
from tests.unit.fakes_crm import FakeCredit, FakeCustomers, FakeExposure

S = CustomerStatus
D = Decimal


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> set[str]:
    return {v.field for v in exc.value.violations}


def create(customer_id="CUST-1", limit="1000.00", currency="EUR", status="", name="Acme Ltd", terms=30,
           email="ap@acme.example", contacts=(), webhook_url="") -> CreateCustomer:
    return CreateCustomer(customer_id, name, status, limit, currency, terms, email, tuple(contacts), webhook_url)


def m(amount: str, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount=amount)


class World:
    """One crm database reached through the real handlers; events go through the real
    event handlers (services.crm.events), each in its own transaction as the consumer runs them."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.customers = FakeCustomers(self.calls)
        self.credit = FakeCredit(self.calls)
        self.exposure = FakeExposure(self.calls, self.credit)
        self.uow = FakeUnitOfWork(customers=self.customers, credit=self.credit, exposure=self.exposure)
        self.consumes = crm_events.build()

    def customer(self, customer_id="CUST-1", limit="100.00", **kw):
        return handlers.create_customer(self.uow, create(customer_id, limit, **kw))

    def deliver(self, payload) -> None:
        handler = self.consumes.handlers[event_type(payload)]
        with self.uow:
            handler(self.uow, payload, None)
            self.uow.commit()

    def place(self, order_id: str, total: str, customer_id="CUST-1", currency="EUR") -> None:
        self.deliver(orders_ev.OrderPlaced(order_id=order_id, customer_id=customer_id, total=m(total, currency)))

    def decisions(self) -> list:
        return self.uow.payloads(ev.CreditApproved) + self.uow.payloads(ev.CreditRejected)

    def decision(self, order_id: str):
        [found] = [p for p in self.decisions() if p.order_id == order_id]
        return found

    def exposure_of(self, customer_id="CUST-1") -> Exposure:
        return handlers.get_customer(self.uow, customer_id)[1]


@pytest.fixture
def world() -> World:
    return World()


# ---------------------------------------------------------------- customers: validation


def test_a_valid_create_becomes_an_active_customer_in_its_limit_currency():
    c = domain.new_customer(create(name="  Acme Ltd ", limit="1000", contacts=[Contact(" Ann ", "ann@acme.example")]))
    assert (c.customer_id, c.name, c.status, c.currency_code, c.credit_limit, c.version) == (
        "CUST-1", "Acme Ltd", S.ACTIVE, "EUR", D("1000.0000"), 1)
    assert c.contacts == (Contact("Ann", "ann@acme.example"),)
    assert domain.new_customer(create(status="on_hold")).status is S.ON_HOLD
    # The same customer written differently is the same create.
    assert domain.new_customer(create(limit="1000.00")).created_as == domain.new_customer(create(limit="1000")).created_as
    assert domain.new_customer(create(limit="1000.01")).created_as != domain.new_customer(create()).created_as


def test_every_problem_of_a_create_is_reported_at_once_with_its_field_path():
    cmd = create(customer_id="bad id!", name=" ", status="7", limit="-1", currency="eur", terms=366,
                 email="not-an-email", webhook_url="ftp://example.com/hook",
                 contacts=[Contact("Ann"), Contact("", "x@", "9" * 51, "r" * 101)])
    with pytest.raises(InvalidArgument) as exc:
        domain.new_customer(cmd)
    assert fields(exc) == {
        "customer.customer_id", "customer.name", "customer.status", "customer.credit_limit.amount",
        "customer.credit_limit.currency_code", "customer.payment_terms_days", "customer.email",
        "customer.webhook_url", "customer.contacts[1].name", "customer.contacts[1].email",
        "customer.contacts[1].phone", "customer.contacts[1].role"}
    with pytest.raises(InvalidArgument) as exc:
        domain.new_customer(create(limit="", contacts=[Contact("A")] * (domain.MAX_CONTACTS + 1)))
    assert fields(exc) == {"customer.credit_limit.amount", "customer.contacts"}
    with pytest.raises(InvalidArgument) as exc:
        domain.new_customer(create(customer_id="C" * 65, limit="1e3", terms=-1))
    assert fields(exc) == {"customer.customer_id", "customer.credit_limit.amount", "customer.payment_terms_days"}


@pytest.mark.parametrize("url, ok", [
    ("", True), ("https://hooks.example.com/erp", True), ("http://127.0.0.1:8080/hook", True),
    ("ftp://example.com/x", False), ("https://", False), ("https://exa mple.com/", False),
    ("https://example.com:99999/", False), ("http://[::1/", False), ("example.com/hook", False),
    ("https://example.com/" + "x" * addresses.MAX_URL, False),
])
def test_webhook_urls(url, ok):
    if ok:
        assert domain.new_customer(create(webhook_url=url)).webhook_url == url
    else:
        with pytest.raises(InvalidArgument) as exc:
            domain.new_customer(create(webhook_url=url))
        assert fields(exc) == {"customer.webhook_url"}


@pytest.mark.parametrize("email, ok", [
    ("", True), ("a@b.co", True), ("first.last+erp@sub.example.org", True),
    ("a@b", False), ("@b.co", False), ("a b@c.de", False), ("a@b.co\nb@c.de", False), ("a@@b.co", False),
    ("a@b.co" + "m" * addresses.MAX_EMAIL, False),
])
def test_email_addresses(email, ok):
    if ok:
        assert domain.new_customer(create(email=f" {email}\n")).email == email  # trimmed
    else:
        with pytest.raises(InvalidArgument):
            domain.new_customer(create(email=email))


def test_status_and_credit_limit_changes_bump_the_version_only_when_something_changes():
    c = domain.new_customer(create())
    held = domain.with_status(c, S.ON_HOLD, " overdue invoices ")
    assert (held.status, held.status_reason, held.version) == (S.ON_HOLD, "overdue invoices", 2)
    assert domain.with_status(held, S.ON_HOLD, "again") is None
    raised = domain.with_credit_limit(c, D("2000"), "EUR")
    assert (raised.credit_limit, raised.version) == (D("2000"), 2)
    assert domain.with_credit_limit(c, D("1000.0000"), "EUR") is None
    with pytest.raises(InvalidArgument) as exc:
        domain.with_credit_limit(c, D("2000"), "USD")
    assert fields(exc) == {"credit_limit.currency_code"}
    assert "must be EUR" in exc.value.violations[0].description


# ---------------------------------------------------------------- exposure rules


def test_exposure_total_and_available_credit_can_go_negative():
    e = Exposure(D("700.00"), D("450.50"))
    assert e.total == D("1150.50")
    assert e.available(D("1000")) == D("-150.50")


def test_an_invoice_balance_comes_out_the_same_whatever_order_its_events_arrive_in():
    # Invoice of 120; paid 50 (70 due), then 50 (20 due); then the rest credited.
    steps = [lambda b: b.issued(D("120")), lambda b: b.paid(D("70")), lambda b: b.paid(D("20")),
             lambda b: b.credit(D("20"))]
    empty = InvoiceBalance("INV-1", "CUST-1", "O-1", "EUR")
    for order in itertools.permutations(steps):
        balance = empty
        for step in order:
            balance = step(balance)
        assert balance.amount_due == 0
    partial = empty.paid(D("70")).issued(D("120"))
    assert partial.amount_due == D("70")
    assert empty.issued(D("120")).amount_due == D("120")
    assert empty.credit(D("30")).amount_due == 0  # never negative


def test_malformed_amounts_from_other_services_are_faults_not_guesses():
    assert domain.event_amount("12.50", "x") == D("12.50")
    for bad in ("", "-1", "1e3", "abc", "1.23456"):
        with pytest.raises(ValueError):
            domain.event_amount(bad, "invoice total")


# ---------------------------------------------------------------- credit decision rules


def active(limit="100.00", **kw) -> domain.Customer:
    return domain.new_customer(create(limit=limit, **kw))


def check(total="60.00", currency="EUR", customer_id="CUST-1", order_id="O-1") -> CheckCredit:
    return CheckCredit(order_id, customer_id, total, currency)


def test_an_order_that_fits_exactly_is_approved_and_one_cent_more_is_not():
    exposure = Exposure(D("30.00"), D("10.00"))
    ok = domain.decide(check("60.00"), active(), exposure)
    assert (ok.approved, ok.reason, ok.exposure_after, ok.credit_limit, ok.order_total) == (
        True, "", D("100.00"), D("100.0000"), D("60.0000"))
    no = domain.decide(check("60.01"), active(), exposure)
    assert not no.approved and no.exposure_after is None
    assert no.reason == ("credit limit 100.00 EUR exceeded: exposure would be 100.01 EUR "
                         "(open orders 30.00 + unpaid invoices 10.00 + this order 60.01)")


@pytest.mark.parametrize("cmd, customer, closed_by, expected", [
    (check(customer_id="NOPE"), None, None, "unknown customer NOPE"),
    (check(), dataclasses.replace(active(), status=S.ON_HOLD, status_reason="overdue invoices"), None,
     "customer CUST-1 is on hold: overdue invoices"),
    (check(), dataclasses.replace(active(), status=S.BLOCKED), None, "customer CUST-1 is blocked"),
    (check(currency="USD"), active(), None, "order is in USD but customer CUST-1's credit limit is in EUR"),
    (check(total="-5"), active(), None, "order total '-5' EUR is not an amount crm can check"),
    (check(total="1e9"), active(), None, "order total '1e9' EUR is not an amount crm can check"),
    (check(total="999999999999999.00"), active(), None, "is not an amount crm can check"),
    (check(), active(), ClosedBy.REJECTED, "order O-1 was already rejected before its credit check"),
])
def test_rejections_say_why_in_words(cmd, customer, closed_by, expected):
    decision = domain.decide(cmd, customer, Exposure(), closed_by)
    assert not decision.approved
    assert expected in decision.reason


# ---------------------------------------------------------------- customer use cases


def test_create_is_idempotent_and_publishes_customer_updated_once(world):
    first = world.customer(contacts=[Contact("Ann", "ann@acme.example", "+1 555", "accounts payable")],
                           webhook_url="https://acme.example/hook")
    again = world.customer(contacts=[Contact("Ann", "ann@acme.example", "+1 555", "accounts payable")],
                           webhook_url="https://acme.example/hook")
    assert again == first
    [event] = world.uow.events
    assert (event.aggregate_type, event.aggregate_id, event.version) == ("customer", "CUST-1", 1)
    secret_ref = first.webhook_signing.current
    assert event.payload == ev.CustomerUpdated(
        customer_id="CUST-1", name="Acme Ltd", email="ap@acme.example", webhook_url="https://acme.example/hook",
        payment_terms_days=30, status="active", webhook_secrets=ev.WebhookSecrets(
            current=ev.WebhookSecretRef(secret_id=secret_ref.secret_id, key_id=secret_ref.key_id)))
    with pytest.raises(AlreadyExists):
        world.customer(limit="999.00")
    assert len(world.uow.events) == 1 and world.uow.rollbacks >= 1


def test_a_repeated_create_after_later_changes_still_succeeds_and_returns_the_customer_as_it_is(world):
    world.customer()
    handlers.update_customer_status(world.uow, UpdateCustomerStatus("CUST-1", "blocked", "fraud check"))
    again = world.customer()
    assert (again.status, again.version) == (S.BLOCKED, 2)


def test_a_create_that_loses_the_race_to_an_identical_one_returns_the_winner():
    calls: list[str] = []

    class Racing(FakeCustomers):
        """The row appears between our read and our insert (another replica's create)."""

        def get(self, customer_id, for_update=False):
            found = super().get(customer_id, for_update)
            if found is None and not self.rows:
                self.rows[customer_id] = winner
            return None if len(self.calls) == 1 else found

    winner = domain.new_customer(create())
    customers = Racing(calls)
    uow = FakeUnitOfWork(customers=customers, credit=FakeCredit(calls), exposure=FakeExposure(calls))
    assert handlers.create_customer(uow, create()) == winner
    assert uow.events == []  # the winner published it
    with pytest.raises(AlreadyExists):
        handlers.create_customer(uow, create(limit="5"))


def test_get_customer_validates_and_reports_missing_customers(world):
    with pytest.raises(InvalidArgument) as exc:
        handlers.get_customer(world.uow, "")
    assert fields(exc) == {"customer_id"}
    with pytest.raises(NotFound):
        handlers.get_customer(world.uow, "NOPE")
    world.customer()
    customer, exposure = handlers.get_customer(world.uow, "CUST-1")
    assert customer.customer_id == "CUST-1" and exposure == Exposure()


def test_list_customers_pages_by_id_and_filters_by_status(world):
    for i in (5, 3, 1, 4, 2):
        world.customer(f"C-{i}")
    handlers.update_customer_status(world.uow, UpdateCustomerStatus("C-2", "on_hold", "late"))
    handlers.update_customer_status(world.uow, UpdateCustomerStatus("C-4", "on_hold", "late"))
    seen, token, pages = [], "", 0
    while True:
        page, token = handlers.list_customers(world.uow, 2, token, "")
        seen += [c.customer_id for c in page]
        pages += 1
        if not token:
            break
    assert seen == ["C-1", "C-2", "C-3", "C-4", "C-5"] and pages == 3
    held, token = handlers.list_customers(world.uow, 1, "", "on_hold")
    assert [c.customer_id for c in held] == ["C-2"] and token
    rest, last = handlers.list_customers(world.uow, 1, token, "on_hold")
    assert [c.customer_id for c in rest] == ["C-4"] and last == ""
    with pytest.raises(InvalidArgument) as exc:
        handlers.list_customers(world.uow, 1, token, "")  # a token for other filters
    assert fields(exc) == {"page.page_token"}
    for size, tok, status, field in ((-1, "", "", "page.page_size"), (0, "garbage!", "", "page.page_token"),
                                     (0, "", "9", "status")):
        with pytest.raises(InvalidArgument) as exc:
            handlers.list_customers(world.uow, size, tok, status)
        assert fields(exc) == {field}


def test_a_status_change_is_recorded_published_and_idempotent(world):
    world.customer()
    held = handlers.update_customer_status(world.uow, UpdateCustomerStatus("CUST-1", "on_hold", " overdue "))
    assert (held.status, held.version, held.status_reason) == (S.ON_HOLD, 2, "overdue")
    again = handlers.update_customer_status(world.uow, UpdateCustomerStatus("CUST-1", "on_hold", "still"))
    assert again.version == 2
    updates = world.uow.payloads(ev.CustomerUpdated)
    assert [u.status for u in updates] == ["active", "on_hold"]
    assert [e.version for e in world.uow.events] == [1, 2]
    assert world.customers.status_changes == [("CUST-1", 2, "active", "on_hold", "overdue")]
    with pytest.raises(NotFound):
        handlers.update_customer_status(world.uow, UpdateCustomerStatus("NOPE", "active", "x"))
    with pytest.raises(InvalidArgument) as exc:
        handlers.update_customer_status(world.uow, UpdateCustomerStatus("CUST-1", "", " "))
    assert fields(exc) == {"status", "reason"}


def test_a_credit_limit_change_is_published_and_keeps_the_currency(world):
    world.customer()
    raised = handlers.set_credit_limit(world.uow, SetCreditLimit("CUST-1", "2500.5", "EUR"))
    assert (raised.credit_limit, raised.version) == (D("2500.5000"), 2)
    assert world.customers.rows["CUST-1"].credit_limit == D("2500.5")
    assert len(world.uow.payloads(ev.CustomerUpdated)) == 2
    handlers.set_credit_limit(world.uow, SetCreditLimit("CUST-1", "2500.50", "EUR"))  # the same limit
    assert len(world.uow.payloads(ev.CustomerUpdated)) == 2
    with pytest.raises(InvalidArgument) as exc:
        handlers.set_credit_limit(world.uow, SetCreditLimit("CUST-1", "10", "USD"))
    assert fields(exc) == {"credit_limit.currency_code"}
    with pytest.raises(InvalidArgument) as exc:
        handlers.set_credit_limit(world.uow, SetCreditLimit("CUST-1", "-10", ""))
    assert fields(exc) == {"credit_limit.amount", "credit_limit.currency_code"}
    with pytest.raises(NotFound):
        handlers.set_credit_limit(world.uow, SetCreditLimit("NOPE", "10", "EUR"))


# ---------------------------------------------------------------- credit check


def test_the_credit_check_locks_the_customer_before_it_reads_the_exposure(world):
    world.customer()
    world.calls.clear()
    world.place("O-1", "60.00")
    assert world.calls.index("lock customer CUST-1") < world.calls.index("totals CUST-1")
    assert world.calls.index("lock customer CUST-1") < world.calls.index("decision O-1")


def test_approved_orders_count_until_the_limit_is_reached(world):
    world.customer(limit="100.00")
    world.place("O-1", "60.00")
    world.place("O-2", "60.00")
    world.place("O-3", "40.00")
    approved = world.decision("O-1")
    assert isinstance(approved, ev.CreditApproved)
    assert approved.exposure == m("60.00") and approved.credit_limit == m("100.00")
    rejected = world.decision("O-2")
    assert isinstance(rejected, ev.CreditRejected)
    assert rejected.reason.startswith("credit limit 100.00 EUR exceeded: exposure would be 120.00 EUR")
    assert isinstance(world.decision("O-3", ), ev.CreditApproved)
    assert world.decision("O-3").exposure == m("100.00")
    assert world.exposure_of() == Exposure(D("100.00"), D(0))
    credit_events = [e for e in world.uow.events if e.aggregate_type == "credit"]
    assert [(e.aggregate_id, e.version) for e in credit_events] == [("O-1", 1), ("O-2", 1), ("O-3", 1)]


def test_each_order_gets_exactly_one_decision_even_when_placed_twice(world):
    """An OrderPlaced published again (orders' saga deadline, another event id) gets the first
    decision's answer again, and the order counts once."""
    world.customer(limit="100.00")
    world.place("O-1", "60.00")
    world.place("O-1", "60.00")
    first, again = world.decisions()
    assert again == first and isinstance(first, ev.CreditApproved) and first.exposure == m("60.00")
    assert len(world.uow.credit.decisions) == 1
    assert world.exposure_of().open_orders == D("60.00")


def test_a_rejected_order_placed_again_is_rejected_again_for_the_first_reason_even_when_credit_freed_up(world):
    world.customer(limit="100.00")
    world.place("O-1", "60.00")
    world.place("O-2", "60.00")
    world.deliver(orders_ev.OrderCancelled(order_id="O-1", customer_id="CUST-1"))
    world.place("O-2", "60.00")
    rejections = world.uow.payloads(ev.CreditRejected)
    assert len(rejections) == 2 and rejections[0] == rejections[1]
    assert world.exposure_of().open_orders == D(0)


@pytest.mark.parametrize("setup, order, reason", [
    (lambda w: None, dict(customer_id="NOPE"), "unknown customer NOPE"),
    (lambda w: handlers.update_customer_status(w.uow, UpdateCustomerStatus("CUST-1", "blocked", "fraud")), {},
     "customer CUST-1 is blocked: fraud"),
    (lambda w: None, dict(currency="USD"), "order is in USD"),
    (lambda w: None, dict(total="abc"), "order total 'abc' EUR is not an amount crm can check"),
])
def test_rejected_orders_do_not_count(world, setup, order, reason):
    world.customer(limit="100.00")
    setup(world)
    world.place("O-1", order.get("total", "10.00"), order.get("customer_id", "CUST-1"), order.get("currency", "EUR"))
    decision = world.decision("O-1")
    assert isinstance(decision, ev.CreditRejected) and reason in decision.reason
    assert world.credit.decisions["O-1"].approved is False
    assert world.exposure_of() == Exposure()


def test_a_rejected_or_cancelled_order_frees_its_credit(world):
    world.customer(limit="100.00")
    world.place("O-1", "60.00")
    world.place("O-2", "30.00")
    world.deliver(orders_ev.OrderRejected(order_id="O-1", customer_id="CUST-1", reason="stock not available"))
    assert world.exposure_of().open_orders == D("30.00")
    world.place("O-3", "70.00")
    assert isinstance(world.decision("O-3"), ev.CreditApproved)
    world.deliver(orders_ev.OrderCancelled(order_id="O-3", customer_id="CUST-1", total=m("70.00")))
    world.deliver(orders_ev.OrderCancelled(order_id="O-3", customer_id="CUST-1", total=m("70.00")))
    assert world.exposure_of().open_orders == D("30.00")
    assert world.exposure.orders["O-3"].closed_by is ClosedBy.CANCELLED


def test_an_order_closed_before_its_order_placed_arrives_is_refused_not_counted(world):
    world.customer(limit="100.00")
    world.deliver(orders_ev.OrderRejected(order_id="O-1", customer_id="CUST-1", reason="stock not available"))
    world.place("O-1", "60.00")
    decision = world.decision("O-1")
    assert isinstance(decision, ev.CreditRejected)
    assert decision.reason == "order O-1 was already rejected before its credit check"
    assert world.exposure_of() == Exposure()


def test_an_invoice_replaces_its_order_and_payments_and_credit_notes_lower_it(world):
    world.customer(limit="200.00")
    world.place("O-1", "100.00")
    world.deliver(fin_ev.InvoiceIssued(invoice_id="INV-1", number="INV-2026-000001", order_id="O-1",
                                       customer_id="CUST-1", total=m("120.00"), order_amount=m("100.00")))
    assert world.exposure_of() == Exposure(D(0), D("120.00"))
    world.place("O-2", "80.01")  # 120 + 80.01 > 200
    assert isinstance(world.decision("O-2"), ev.CreditRejected)
    world.deliver(fin_ev.PaymentReceived(payment_id="P-1", invoice_id="INV-1", order_id="O-1",
                                         customer_id="CUST-1", amount=m("100.00"), amount_due=m("20.00")))
    assert world.exposure_of() == Exposure(D(0), D("20.00"))
    note = fin_ev.CreditNoteIssued(credit_note_id="CN-1", invoice_id="INV-1", order_id="O-1", customer_id="CUST-1",
                                   amount=m("120.00"), unpaid_amount=m("20.00"))
    world.deliver(note)
    world.deliver(note)  # the same credit note again changes nothing
    assert world.exposure_of() == Exposure()
    # The order was invoiced: its late cancellation does not reopen or double-count anything.
    world.deliver(orders_ev.OrderCancelled(order_id="O-1", customer_id="CUST-1", was_invoiced=True))
    assert world.exposure.orders["O-1"].closed_by is ClosedBy.INVOICED
    assert world.exposure_of() == Exposure()


def test_finance_events_in_any_order_end_in_the_same_exposure():
    events = [
        fin_ev.InvoiceIssued(invoice_id="INV-1", order_id="O-1", customer_id="CUST-1", total=m("120.00")),
        fin_ev.PaymentReceived(payment_id="P-1", invoice_id="INV-1", order_id="O-1", customer_id="CUST-1",
                               amount=m("50.00"), amount_due=m("70.00")),
        fin_ev.PaymentReceived(payment_id="P-2", invoice_id="INV-1", order_id="O-1", customer_id="CUST-1",
                               amount=m("20.00"), amount_due=m("50.00")),
    ]
    for order in itertools.permutations(events):
        w = World()
        w.customer(limit="500.00")
        w.place("O-1", "100.00")
        for event in order:
            w.deliver(event)
        assert w.exposure_of() == Exposure(D(0), D("50.00")), order


def test_a_malformed_finance_event_fails_and_changes_nothing(world):
    world.customer(limit="200.00")
    world.place("O-1", "100.00")
    with pytest.raises(ValueError, match="invoice total"):
        world.deliver(fin_ev.InvoiceIssued(invoice_id="INV-1", order_id="O-1", customer_id="CUST-1",
                                           total=m("12,00")))
    assert world.exposure_of() == Exposure(D("100.00"), D(0))
    assert "INV-1" not in world.exposure.invoices


def test_crm_consumes_the_order_and_finance_events_it_needs():
    assert set(crm_events.build().event_types) == {event_type(t) for t in (
        orders_ev.OrderPlaced, orders_ev.OrderRejected, orders_ev.OrderCancelled,
        fin_ev.InvoiceIssued, fin_ev.PaymentReceived, fin_ev.CreditNoteIssued)}


def test_an_invoice_in_another_currency_is_kept_apart_and_logged(world, caplog):
    world.customer(limit="200.00")
    world.deliver(fin_ev.InvoiceIssued(invoice_id="INV-9", order_id="O-9", customer_id="CUST-1",
                                       total=m("50.00", "USD")))
    assert world.exposure_of() == Exposure()
    assert world.exposure.invoices["INV-9"].amount_due == D("50.00")
    assert "INV-9" in caplog.text and "USD" in caplog.text
