"""Finance on the real engines: the service started in-process, driven through the
generated stubs and by real events (through the transport, or handed to its consumer),
on every engine set."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime as dt
import time
import uuid
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from erp.common.v1 import money_pb2, paging_pb2
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.finance.v1 import finance_pb2 as pb
from erp.finance.v1 import finance_pb2_grpc
from mesh import service
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery, Message, Retry
from services.finance.events import issue_command
from services.finance.ledger.domain import FinanceConfig
from services.finance.receivables import handlers
from services.finance.service import spec as finance_spec
from tests import support

MAX_ATTEMPTS = 3  # support.settings_for's
RETRY_BASE_MS = 20


@dataclasses.dataclass
class Finance:
    running: service.RunningService
    stub: finance_pb2_grpc.FinanceServiceStub
    consumer: Consumer

    @property
    def engine(self) -> sa.Engine:
        return self.running.runtime.engine

    def deliver(self, payload, aggregate_id: str, version: int = 1) -> bytes:
        """Hands one new event to finance's consumer, as its transport would; returns the body."""
        env = envelope.build(source="test", aggregate_type="order", aggregate_id=aggregate_id,
                             aggregate_version=version, payload=payload)
        body = env.SerializeToString()
        self.handle(body)
        return body

    def handle(self, body: bytes) -> None:
        """Handles a delivery, retrying (without the delay) like the transport until it is acked."""
        attempt = 0
        while isinstance(outcome := self.consumer.handle(Delivery(body=body, attempts=attempt, tag=None)), Retry):
            attempt += 1
        assert isinstance(outcome, Ack), f"event dead-lettered: {outcome}"

    def outbox(self, payload_type) -> list:
        """Payloads finance wrote to its outbox, in order."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT envelope FROM outbox WHERE event_type = :t ORDER BY id"),
                                {"t": payload_type.DESCRIPTOR.full_name}).scalars().all()
        return [envelope.decode(bytes(row)).payload for row in rows]

    def invoice_of(self, order_id: str) -> pb.Invoice:
        [invoice] = self.stub.ListInvoices(pb.ListInvoicesRequest(order_id=order_id)).invoices
        return invoice


@pytest.fixture
def finance(engines, tmp_path):
    spec = finance_spec()
    settings = support.settings_for("finance", engines, tmp_path, env={"ERP_FINANCE_TAX_RATE": "0.20"})
    running = service.start(spec, settings)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    consumer = Consumer(spec.build_handlers(running.runtime), running.runtime.uow, MAX_ATTEMPTS, RETRY_BASE_MS)
    try:
        yield Finance(running, finance_pb2_grpc.FinanceServiceStub(channel), consumer)
    finally:
        channel.close()
        running.stop(grace=1)  # the engines fixture removes finance's queues and exchange


def eur(amount: str, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount=amount)


def order_confirmed(order_id: str, customer_id: str = "CUST-1", lines=(("CHAIR", 1, "100.00"),),
                    currency: str = "EUR") -> orders_ev.OrderConfirmed:
    items = [orders_ev.OrderLineItem(line_no=i + 1, sku=sku, warehouse_code="MAIN", quantity=qty,
                                     unit_price=eur(price, currency))
             for i, (sku, qty, price) in enumerate(lines)]
    total = sum((Decimal(price) * qty for _, qty, price in lines), Decimal(0))
    return orders_ev.OrderConfirmed(order_id=order_id, customer_id=customer_id, lines=items,
                                    total=eur(str(total), currency))


def order_cancelled(order_id: str, was_invoiced: bool = True) -> orders_ev.OrderCancelled:
    return orders_ev.OrderCancelled(order_id=order_id, customer_id="CUST-1", reason="customer changed their mind",
                                    was_invoiced=was_invoiced, total=eur("100.00"))


def customer(customer_id: str, terms: int) -> crm_ev.CustomerUpdated:
    return crm_ev.CustomerUpdated(customer_id=customer_id, name=customer_id, payment_terms_days=terms,
                                  status="active")


def pay(fin: Finance, invoice_id: str, amount: str, request_id: str | None = None, currency: str = "EUR"):
    return fin.stub.RecordPayment(pb.RecordPaymentRequest(request_id=request_id or str(uuid.uuid4()),
                                                          invoice_id=invoice_id, amount=eur(amount, currency)))


def fails(fn, *args, code: grpc.StatusCode) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as exc:
        fn(*args)
    assert exc.value.code() == code, exc.value.details()
    return exc.value


def field_violations(err: grpc.RpcError) -> list[str]:
    for detail in rpc_status.from_call(err).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return [v.field for v in bad.field_violations]
    raise AssertionError("no BadRequest detail")


def scalar(fin: Finance, sql: str, **params):
    with fin.engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


def this_year() -> int:
    return dt.datetime.now(dt.UTC).year


# ---------------------------------------------------------------- invoicing


def test_an_order_confirmed_is_invoiced_once_even_when_delivered_twice(finance):
    fin = finance
    transport = fin.running.runtime.transport
    handled = fin.consumer.handlers.event_types
    transport.subscribe("finance", handled).close()  # finance's queue and bindings exist before we publish
    issued_type = fin_ev.InvoiceIssued.DESCRIPTOR.full_name
    watcher = transport.subscribe("probe", [issued_type])  # a downstream consumer of InvoiceIssued
    try:
        publisher = transport.publisher()
        terms = envelope.build(source="crm", aggregate_type="customer", aggregate_id="CUST-1", aggregate_version=1,
                               payload=customer("CUST-1", 14))
        order = envelope.build(source="orders", aggregate_type="order", aggregate_id="O-1", aggregate_version=2,
                               payload=order_confirmed("O-1", lines=(("CHAIR", 4, "89.90"), ("DESK", 1, "349.005"))))
        sentinel = envelope.build(source="crm", aggregate_type="customer", aggregate_id="LAST", aggregate_version=1,
                                  payload=customer("LAST", 1))
        # At-least-once delivery: the same event twice on the wire.
        publisher.publish_many([Message(env.event_type, env.event_id, env.SerializeToString())
                                for env in (terms, order, order, sentinel)])
        publisher.close()
        support.wait_for("customer LAST to be projected",
                         lambda: scalar(fin, "SELECT count(*) FROM customers WHERE customer_id = 'LAST'"), timeout=30)
        # And a second OrderConfirmed for the order with an event id of its own.
        fin.deliver(order_confirmed("O-1"), "O-1", version=2)

        invoice = fin.invoice_of("O-1")
        assert invoice.number == f"INV-{this_year()}-000001"
        assert [(x.sku, x.quantity, x.unit_price.amount, x.amount.amount) for x in invoice.lines] == [
            ("CHAIR", 4, "89.90", "359.60"), ("DESK", 1, "349.005", "349.01")]
        assert (invoice.subtotal.amount, invoice.tax.amount, invoice.total.amount, invoice.amount_due.amount) == (
            "708.61", "141.72", "850.33", "850.33")
        assert invoice.status == pb.INVOICE_STATUS_UNPAID
        assert invoice.due_at.ToDatetime() - invoice.issued_at.ToDatetime() == dt.timedelta(days=14)
        assert fin.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.invoice_id)).invoice == invoice
        [entry] = fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest()).entries
        assert entry.reference == invoice.invoice_id and entry.reverses_entry_id == 0
        assert [(x.account, x.debit.amount, x.credit.amount) for x in entry.lines] == [
            ("1100", "850.33", "0.00"), ("4000", "0.00", "708.61"), ("2200", "0.00", "141.72")]
        [issued] = fin.outbox(fin_ev.InvoiceIssued)
        assert (issued.number, issued.total.amount, issued.order_amount.amount) == (
            invoice.number, "850.33", "708.605")
        assert issued.due_date == invoice.due_at.ToDatetime().date().isoformat()

        # The relay publishes InvoiceIssued once, for whoever consumes it.
        seen, idle, deadline = [], 0, time.monotonic() + 30
        while not (seen and idle >= 3) and time.monotonic() < deadline:
            batch = watcher.receive(timeout=0.3)
            idle = 0 if batch else idle + 1
            seen += [envelope.decode(d.body).payload for d in batch]
            watcher.settle([(d, Ack()) for d in batch])
        assert [(p.order_id, p.invoice_id) for p in seen] == [("O-1", invoice.invoice_id)]
    finally:
        watcher.close()

    fails(fin.stub.GetInvoice, pb.GetInvoiceRequest(invoice_id="nope"), code=grpc.StatusCode.NOT_FOUND)
    err = fails(fin.stub.GetInvoice, pb.GetInvoiceRequest(invoice_id=""), code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["invoice_id"]


def test_invoice_numbers_are_gap_free_under_concurrent_invoicing(finance):
    fin = finance
    config = FinanceConfig.from_settings(fin.running.runtime.settings)
    # A transaction that took a number and rolled back leaves no gap behind.
    with fin.running.runtime.uow() as uow:
        assert handlers.issue_invoice(uow, issue_command(order_confirmed("ROLLED-BACK")), config).seq == 1
    orders = [f"O-{i:02d}" for i in range(24)]
    # A third of the orders twice, with different event ids, all at once: twins race for one order.
    work = orders + orders[::3]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda order_id: fin.deliver(order_confirmed(order_id, customer_id=f"C-{int(order_id[2:]) % 4}"),
                                                   order_id), work))

    numbers, token = [], ""
    while True:
        page = fin.stub.ListInvoices(pb.ListInvoicesRequest(page=paging_pb2.PageRequest(page_size=10,
                                                                                          page_token=token)))
        numbers += [(i.number, i.order_id) for i in page.invoices]
        token = page.next_page_token
        if not token:
            break
    year = this_year()
    assert [n for n, _ in numbers] == [f"INV-{year}-{i:06d}" for i in range(1, 25)]
    assert sorted(o for _, o in numbers) == orders  # one invoice per order
    assert len(fin.outbox(fin_ev.InvoiceIssued)) == 24
    assert scalar(fin, "SELECT count(*) FROM journal_entries") == 24
    assert scalar(fin, "SELECT last_value FROM number_sequences WHERE kind = 'INV'") == 24
    by_customer = fin.stub.ListInvoices(pb.ListInvoicesRequest(customer_id="C-1")).invoices
    assert {i.customer_id for i in by_customer} == {"C-1"} and len(by_customer) == 6
    err = fails(fin.stub.ListInvoices, pb.ListInvoicesRequest(customer_id="C-2", page=paging_pb2.PageRequest(
        page_token=fin.stub.ListInvoices(pb.ListInvoicesRequest(page=paging_pb2.PageRequest(page_size=1)))
        .next_page_token)), code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["page.page_token"]


# ---------------------------------------------------------------- payments


def test_partial_payments_and_overpayment_is_refused(finance):
    fin = finance
    fin.deliver(order_confirmed("O-1"), "O-1")
    invoice = fin.invoice_of("O-1")
    assert invoice.total.amount == "120.00"

    first = pay(fin, invoice.invoice_id, "50.00", request_id="pay-1")
    assert (first.invoice.amount_paid.amount, first.invoice.amount_due.amount, first.invoice.status) == (
        "50.00", "70.00", pb.INVOICE_STATUS_PARTLY_PAID)
    again = pay(fin, invoice.invoice_id, "50", request_id="pay-1")  # a retried call
    assert again.payment_id == first.payment_id and again.invoice.amount_paid.amount == "50.00"
    fails(pay, fin, invoice.invoice_id, "20.00", "pay-1", code=grpc.StatusCode.ALREADY_EXISTS)
    err = fails(pay, fin, invoice.invoice_id, "70.01", code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "exceeds the 70.00 EUR due" in err.details()

    # Ten concurrent payments of 10.00 against 70.00 due: exactly seven go through.
    def attempt(_):
        try:
            pay(fin, invoice.invoice_id, "10.00")
            return "ok"
        except grpc.RpcError as exc:
            return exc.code()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert outcomes.count("ok") == 7 and outcomes.count(grpc.StatusCode.FAILED_PRECONDITION) == 3
    paid = fin.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.invoice_id)).invoice
    assert (paid.amount_paid.amount, paid.amount_due.amount, paid.status) == ("120.00", "0.00",
                                                                              pb.INVOICE_STATUS_PAID)
    received = fin.outbox(fin_ev.PaymentReceived)
    assert len(received) == 8 and sum(Decimal(p.amount.amount) for p in received) == Decimal("120.00")
    assert [p.paid_in_full for p in received] == [False] * 7 + [True]
    assert received[-1].amount_due.amount == "0.00"
    assert scalar(fin, "SELECT sum(debit) FROM journal_lines WHERE account = '1000'") == Decimal("120.00")
    fails(pay, fin, invoice.invoice_id, "0.01", code=grpc.StatusCode.FAILED_PRECONDITION)

    err = fails(fin.stub.RecordPayment, pb.RecordPaymentRequest(amount=eur("-1", "eur")),
                code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["request_id", "invoice_id", "amount.amount", "amount.currency_code"]
    err = fails(pay, fin, invoice.invoice_id, "1.005", code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["amount.amount"]
    fails(pay, fin, "no-such-invoice", "1.00", code=grpc.StatusCode.NOT_FOUND)
    fin.deliver(order_confirmed("O-2"), "O-2")
    err = fails(pay, fin, fin.invoice_of("O-2").invoice_id, "1.00", None, "USD", code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["amount.currency_code"]


# ---------------------------------------------------------------- credit notes


def test_a_cancelled_invoiced_order_gets_a_credit_note(finance):
    fin = finance
    fin.deliver(order_confirmed("O-1"), "O-1")
    invoice = fin.invoice_of("O-1")
    pay(fin, invoice.invoice_id, "50.00")
    body = fin.deliver(order_cancelled("O-1"), "O-1", version=3)
    fin.handle(body)  # the same event again
    fin.deliver(order_cancelled("O-1"), "O-1", version=3)  # and a second cancellation

    credited = fin.stub.GetInvoice(pb.GetInvoiceRequest(invoice_id=invoice.invoice_id)).invoice
    assert (credited.status, credited.amount_due.amount, credited.amount_paid.amount) == (
        pb.INVOICE_STATUS_CREDITED, "0.00", "50.00")
    [note] = fin.outbox(fin_ev.CreditNoteIssued)
    assert note.number == f"CN-{this_year()}-000001"
    assert (note.invoice_id, note.order_id, note.amount.amount, note.unpaid_amount.amount) == (
        invoice.invoice_id, "O-1", "120.00", "70.00")
    [reversal] = fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest(reference=note.credit_note_id)).entries
    [original] = fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest(reference=invoice.invoice_id)).entries
    assert reversal.reverses_entry_id == original.entry_id
    assert [(x.account, x.debit.amount, x.credit.amount) for x in reversal.lines] == [
        (x.account, x.credit.amount, x.debit.amount) for x in original.lines]
    fails(pay, fin, invoice.invoice_id, "1.00", code=grpc.StatusCode.FAILED_PRECONDITION)
    listed = fin.stub.ListInvoices(pb.ListInvoicesRequest(status=pb.INVOICE_STATUS_CREDITED)).invoices
    assert [i.invoice_id for i in listed] == [invoice.invoice_id]

    # Cancelled before finance saw the confirmation (out of order): the late one invoices nothing.
    fin.deliver(order_cancelled("O-2", was_invoiced=False), "O-2", version=3)
    fin.deliver(order_confirmed("O-2"), "O-2", version=2)
    assert fin.stub.ListInvoices(pb.ListInvoicesRequest(order_id="O-2")).invoices == []
    assert len(fin.outbox(fin_ev.InvoiceIssued)) == 1


# ---------------------------------------------------------------- the books


def test_the_trial_balance_sums_to_zero_and_the_journal_refuses_what_does_not_balance(finance):
    fin = finance
    fin.deliver(order_confirmed("O-1", lines=(("CHAIR", 2, "50.00"),)), "O-1")
    fin.deliver(order_confirmed("O-2", lines=(("LAMP", 3, "16.665"),)), "O-2")  # 49.995 -> 50.00
    fin.deliver(order_confirmed("O-3", lines=(("DESK", 1, "10.00"),), currency="USD"), "O-3")
    pay(fin, fin.invoice_of("O-1").invoice_id, "30.00")
    fin.deliver(order_cancelled("O-2"), "O-2", version=3)

    balance = fin.stub.GetTrialBalance(pb.GetTrialBalanceRequest())
    assert [(x.account, x.name, x.debit.amount, x.credit.amount, x.balance.amount) for x in balance.lines] == [
        ("1000", "Cash", "30.00", "0.00", "30.00"),
        ("1100", "Accounts receivable", "180.00", "90.00", "90.00"),
        ("2200", "Tax payable", "10.00", "30.00", "-20.00"),
        ("4000", "Revenue", "50.00", "150.00", "-100.00"),
    ]
    assert balance.total_debit == balance.total_credit == eur("270.00")
    assert sum(Decimal(x.balance.amount) for x in balance.lines) == 0
    usd = fin.stub.GetTrialBalance(pb.GetTrialBalanceRequest(currency_code="USD"))
    assert usd.total_debit == usd.total_credit == eur("12.00", "USD")
    err = fails(fin.stub.GetTrialBalance, pb.GetTrialBalanceRequest(currency_code="usd"),
                code=grpc.StatusCode.INVALID_ARGUMENT)
    assert field_violations(err) == ["currency_code"]

    # The database itself refuses an unbalanced entry (at commit) and any change to a posted one.
    with fin.engine.connect() as conn:
        entry_id = conn.execute(sa.text("INSERT INTO journal_entries (memo, reference, currency_code) "
                                        "VALUES ('bad', 'test', 'EUR') RETURNING entry_id")).scalar()
        conn.execute(sa.text("INSERT INTO journal_lines VALUES (:e, 1, '1000', 10, 0), (:e, 2, '4000', 0, 9.99)"),
                     {"e": entry_id})
        with pytest.raises(sa.exc.IntegrityError, match="does not balance"):
            conn.commit()
    with fin.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match="never changed"):
        conn.execute(sa.text("UPDATE journal_lines SET debit = debit + 1 WHERE account = '1100'"))
    with fin.engine.connect() as conn, pytest.raises(sa.exc.IntegrityError, match="never changed"):
        conn.execute(sa.text("DELETE FROM journal_entries"))
    assert fin.stub.GetTrialBalance(pb.GetTrialBalanceRequest()).total_debit == eur("270.00")


def test_receivables_aging_buckets(finance):
    fin = finance
    fin.deliver(customer("NET0", 0), "NET0")
    fin.deliver(customer("NET60", 60), "NET60")
    fin.deliver(customer("NET60", 5), "NET60", version=0)  # an older version arriving late: ignored
    fin.deliver(order_confirmed("O-1", customer_id="NET0"), "O-1")  # 120.00 due today
    fin.deliver(order_confirmed("O-2", customer_id="NET60", lines=(("LAMP", 1, "50.00"),)), "O-2")  # 60.00
    fin.deliver(order_confirmed("O-3", customer_id="NET60", lines=(("DESK", 1, "10.00"),)), "O-3")  # 12.00
    fin.deliver(order_confirmed("O-4", customer_id="NET0", lines=(("PEN", 1, "5.00"),)), "O-4")  # 6.00, paid
    fin.deliver(order_confirmed("O-5", customer_id="NET0", lines=(("PEN", 1, "5.00"),), currency="USD"), "O-5")
    pay(fin, fin.invoice_of("O-1").invoice_id, "20.00")
    pay(fin, fin.invoice_of("O-4").invoice_id, "6.00")
    assert fin.invoice_of("O-2").due_at.ToDatetime() - fin.invoice_of("O-2").issued_at.ToDatetime() == \
        dt.timedelta(days=60)

    def aging(days: int, currency: str = "") -> tuple[dict, list[str]]:
        as_of = timestamp_pb2.Timestamp()
        as_of.FromDatetime(dt.datetime.now(dt.UTC) + dt.timedelta(days=days))
        report = fin.stub.GetReceivablesAging(pb.GetReceivablesAgingRequest(as_of=as_of, currency_code=currency))
        buckets = ("current", "days_1_30", "days_31_60", "days_61_90", "over_90", "total")
        rows = {r.customer_id: [getattr(r, b).amount for b in buckets] for r in report.rows}
        return rows, [getattr(report.totals, b).amount for b in buckets]

    zero = "0.00"
    assert aging(0) == ({"NET0": ["100.00", zero, zero, zero, zero, "100.00"],
                         "NET60": ["72.00", zero, zero, zero, zero, "72.00"]},
                        ["172.00", zero, zero, zero, zero, "172.00"])
    assert aging(20)[0]["NET0"] == [zero, "100.00", zero, zero, zero, "100.00"]
    assert aging(45)[0]["NET0"] == [zero, zero, "100.00", zero, zero, "100.00"]
    assert aging(75) == ({"NET0": [zero, zero, zero, "100.00", zero, "100.00"],
                          "NET60": [zero, "72.00", zero, zero, zero, "72.00"]},
                         [zero, "72.00", zero, "100.00", zero, "172.00"])
    assert aging(200)[1] == [zero, zero, zero, zero, "172.00", "172.00"]
    assert aging(-1) == ({}, [zero] * 6)  # before anything was issued
    assert aging(0, "USD")[0] == {"NET0": ["6.00", zero, zero, zero, zero, "6.00"]}
    overdue = fin.stub.ListInvoices(pb.ListInvoicesRequest(status=pb.INVOICE_STATUS_OVERDUE)).invoices
    assert overdue == []  # nothing is past its due date yet, as of now
    now = fin.stub.GetReceivablesAging(pb.GetReceivablesAgingRequest())
    assert now.totals.total.amount == "172.00"


def test_a_batch_that_issues_invoices_queues_for_the_number_counter_instead_of_falling_back(finance):
    """The invoice number counter is taken first: a batch waiting for another's counter waits
    (numbering is serial anyway) rather than giving up after the batch lock timeout."""
    from mesh import metrics

    finance.deliver(order_confirmed("O-FIRST"), "O-FIRST")  # the counter row of this year exists now
    batch = [Delivery(envelope.build(source="orders", aggregate_type="order", aggregate_id=order_id,
                                     aggregate_version=2, payload=order_confirmed(order_id)).SerializeToString(),
                      0, None) for order_id in ("O-1", "O-2")]
    fallbacks = metrics.EVENT_BATCH_FALLBACKS.labels("finance")
    before = fallbacks._value.get()
    outcomes = support.handle_batch_behind_a_lock(  # held five times the batch lock timeout
        finance.engine, "SELECT 1 FROM number_sequences WHERE kind = 'INV' FOR UPDATE", finance.consumer, batch)
    assert outcomes == [Ack(), Ack()]
    assert fallbacks._value.get() == before  # applied as one batch, after waiting
    assert [finance.invoice_of(o).number for o in ("O-1", "O-2")] == [
        f"INV-{this_year()}-000002", f"INV-{this_year()}-000003"]
