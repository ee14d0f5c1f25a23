"""Procure to pay in finance on the real engines: purchase orders and goods receipts
handed to finance's real consumer as procurement's events, supplier bills recorded,
reviewed and paid through the generated stubs, the books read back from the journal."""
from __future__ import annotations

import concurrent.futures
import datetime as dt
import uuid
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa

from erp.common.v1 import paging_pb2
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import procurement_events_pb2 as proc_ev
from erp.finance.v1 import finance_pb2 as pb
from erp.finance.v1 import finance_pb2_grpc
from mesh import service
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, DeadLetter, Delivery, Retry
from services.finance.service import spec as finance_spec
from tests import support
from tests.integration.test_finance import MAX_ATTEMPTS, RETRY_BASE_MS, Finance, eur, fails, field_violations, scalar

D = Decimal
INVALID = grpc.StatusCode.INVALID_ARGUMENT
HELD, POSTED = pb.SUPPLIER_BILL_STATUS_HELD, pb.SUPPLIER_BILL_STATUS_POSTED
PARTLY_PAID, PAID, REJECTED = (pb.SUPPLIER_BILL_STATUS_PARTLY_PAID, pb.SUPPLIER_BILL_STATUS_PAID,
                               pb.SUPPLIER_BILL_STATUS_REJECTED)


@pytest.fixture
def finance(engines, tmp_path):
    spec = finance_spec()
    settings = support.settings_for("finance", engines, tmp_path, env={
        "ERP_FINANCE_BILL_QUANTITY_TOLERANCE": "0", "ERP_FINANCE_BILL_PRICE_TOLERANCE": "0.02"})
    running = service.start(spec, settings)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    consumer = Consumer(spec.build_handlers(running.runtime), running.runtime.uow, MAX_ATTEMPTS, RETRY_BASE_MS)
    try:
        yield Finance(running, finance_pb2_grpc.FinanceServiceStub(channel), consumer)
    finally:
        channel.close()
        running.stop(grace=1)


# ---------------------------------------------------------------- procurement's events and the calls


def approved(po_id: str, lines=((1, "CHAIR", 10, "50.00"),), supplier: str = "SUP-1", terms: int = 45,
             currency: str = "EUR") -> proc_ev.PurchaseOrderApproved:
    total = sum((D(price) * qty for _, _, qty, price in lines), D(0))
    return proc_ev.PurchaseOrderApproved(
        purchase_order_id=po_id, number=f"PO-{po_id}", supplier_id=supplier, supplier_name="Oak & Co",
        warehouse_code="MAIN", payment_terms_days=terms, approved_by="boss", total=eur(str(total), currency),
        lines=[proc_ev.PurchaseOrderLineItem(line_no=n, sku=sku, quantity=qty, unit_price=eur(price, currency))
               for n, sku, qty, price in lines])


def received(receipt_id: str, po_id: str, *lines: tuple[int, str, int], supplier: str = "SUP-1"
             ) -> proc_ev.GoodsReceived:
    return proc_ev.GoodsReceived(
        receipt_id=receipt_id, purchase_order_id=po_id, supplier_id=supplier, warehouse_code="MAIN",
        lines=[proc_ev.ReceivedLine(line_no=n, sku=sku, quantity=qty, unit_price=eur("0.01")) for n, sku, qty in lines])


def bill(fin: Finance, po_id: str, number: str, *lines: tuple[int, int, str], request_id: str | None = None,
         currency: str = "EUR") -> pb.SupplierBill:
    return fin.stub.RecordSupplierBill(bill_request(po_id, number, *lines, request_id=request_id,
                                                    currency=currency)).bill


def bill_request(po_id: str, number: str, *lines: tuple[int, int, str], request_id: str | None = None,
                 currency: str = "EUR") -> pb.RecordSupplierBillRequest:
    return pb.RecordSupplierBillRequest(
        request_id=request_id or str(uuid.uuid4()), purchase_order_id=po_id, supplier_bill_number=number,
        lines=[pb.SupplierBillLine(line_no=n, quantity=q, unit_price=eur(p, currency)) for n, q, p in lines])


def pay(fin: Finance, bill_id: str, amount: str, request_id: str | None = None, currency: str = "EUR"):
    return fin.stub.PaySupplierBill(pb.PaySupplierBillRequest(
        request_id=request_id or str(uuid.uuid4()), bill_id=bill_id, amount=eur(amount, currency),
        reference="bank transfer"))


def review(fin: Finance, bill_id: str, decision, reviewer: str = "alice", note: str = "checked with the supplier"):
    return fin.stub.ReviewSupplierBill(pb.ReviewSupplierBillRequest(bill_id=bill_id, decision=decision,
                                                                    reviewer=reviewer, note=note)).bill


def get(fin: Finance, bill_id: str) -> pb.SupplierBill:
    return fin.stub.GetSupplierBill(pb.GetSupplierBillRequest(bill_id=bill_id)).bill


def balances(fin: Finance) -> dict[str, D]:
    """Balance (debit - credit) per account, after checking that the books balance."""
    trial = fin.stub.GetTrialBalance(pb.GetTrialBalanceRequest())
    assert trial.total_debit == trial.total_credit
    return {line.account: D(line.balance.amount) for line in trial.lines}


def postings(fin: Finance, reference: str) -> list[tuple[str, str, str]]:
    [entry] = fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest(reference=reference)).entries
    return [(x.account, x.debit.amount, x.credit.amount) for x in entry.lines]


def quantities(fin: Finance, po_id: str) -> list[tuple[int, int, int, int]]:
    """(line, ordered, received, billed) of finance's copy of a purchase order."""
    with fin.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT line_no, ordered_quantity, received_quantity, billed_quantity "
                                    "FROM purchase_order_lines WHERE purchase_order_id = :po ORDER BY line_no"),
                            {"po": po_id}).all()
    return [tuple(r) for r in rows]


# ---------------------------------------------------------------- the happy path


def test_partial_receipts_a_matching_bill_and_its_payments_clear_grni_and_payables(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 10, "50.00"), (2, "LAMP", 3, "16.665"))), "PO-1")
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 6), (2, "LAMP", 3)), "PO-1", version=2)
    fin.deliver(received("R-2", "PO-1", (1, "CHAIR", 4)), "PO-1", version=3)
    # Goods in at the order's prices (not the events' unit_price), each line rounded half up.
    assert postings(fin, "R-1") == [("1200", "350.00", "0.00"), ("2100", "0.00", "350.00")]
    assert postings(fin, "R-2") == [("1200", "200.00", "0.00"), ("2100", "0.00", "200.00")]
    assert balances(fin) == {"1200": D("550.00"), "2100": D("-550.00")}
    assert quantities(fin, "PO-1") == [(1, 10, 10, 0), (2, 3, 3, 0)]

    # 50.50 is 1% above the ordered 50.00: within the 2% tolerance.
    posted = bill(fin, "PO-1", "INV-77", (1, 10, "50.50"), (2, 3, "16.665"), request_id="bill-1")
    assert posted.status == POSTED and list(posted.hold_reasons) == []
    assert (posted.supplier_id, posted.total.amount, posted.amount_paid.amount) == ("SUP-1", "555.00", "0.00")
    assert [(x.line_no, x.sku, x.quantity, x.unit_price.amount, x.amount.amount) for x in posted.lines] == [
        (1, "CHAIR", 10, "50.50", "505.00"), (2, "LAMP", 3, "16.665", "50.00")]
    assert posted.due_at.ToDatetime() - posted.recorded_at.ToDatetime() == dt.timedelta(days=45)
    assert postings(fin, posted.bill_id) == [("2100", "550.00", "0.00"), ("5100", "5.00", "0.00"),
                                             ("2000", "0.00", "555.00")]
    assert balances(fin) == {"1200": D("550.00"), "2100": D("0.00"), "2000": D("-555.00"), "5100": D("5.00")}
    assert quantities(fin, "PO-1") == [(1, 10, 10, 10), (2, 3, 3, 3)]
    [event] = fin.outbox(fin_ev.SupplierBillPosted)
    assert (event.bill_id, event.purchase_order_id, event.supplier_id, event.total.amount) == (
        posted.bill_id, "PO-1", "SUP-1", "555.00")
    assert [(x.line_no, x.quantity) for x in event.lines] == [(1, 10), (2, 3)]
    assert fin.stub.RecordSupplierBill(bill_request("PO-1", "INV-77", (1, 10, "50.50"), (2, 3, "16.665"),
                                                    request_id="bill-1")).bill == posted  # a retried call
    assert get(fin, posted.bill_id) == posted

    first = pay(fin, posted.bill_id, "200.00", request_id="pay-1")
    assert (first.bill.status, first.bill.amount_paid.amount) == (PARTLY_PAID, "200.00")
    assert pay(fin, posted.bill_id, "200", request_id="pay-1").payment_id == first.payment_id  # repeated
    fails(pay, fin, posted.bill_id, "100.00", "pay-1", code=grpc.StatusCode.ALREADY_EXISTS)
    err = fails(pay, fin, posted.bill_id, "355.01", code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "exceeds the 355.00 EUR open" in err.details()
    assert postings(fin, first.payment_id) == [("2000", "200.00", "0.00"), ("1000", "0.00", "200.00")]
    last = pay(fin, posted.bill_id, "355.00")
    assert (last.bill.status, last.bill.amount_paid.amount) == (PAID, "555.00")
    fails(pay, fin, posted.bill_id, "0.01", code=grpc.StatusCode.FAILED_PRECONDITION)
    assert balances(fin) == {"1000": D("-555.00"), "1200": D("550.00"), "2000": D("0.00"), "2100": D("0.00"),
                             "5100": D("5.00")}
    assert len(fin.outbox(fin_ev.SupplierBillPosted)) == 1


# ---------------------------------------------------------------- held bills


def test_a_bill_above_the_received_quantity_is_held_and_posts_itself_when_the_goods_arrive(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 10, "20.00"), (2, "DESK", 2, "100.00"))), "PO-1")
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 6), (2, "DESK", 2)), "PO-1", version=2)

    held = bill(fin, "PO-1", "B-1", (1, 10, "20.00"), (2, 2, "100.00"))
    assert held.status == HELD
    assert list(held.hold_reasons) == ["line 1: billed 10 exceeds received 6"]
    assert fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest(reference=held.bill_id)).entries == []
    assert fin.outbox(fin_ev.SupplierBillPosted) == []
    assert quantities(fin, "PO-1") == [(1, 10, 6, 0), (2, 2, 2, 0)]  # a held bill bills nothing
    fails(pay, fin, held.bill_id, "1.00", code=grpc.StatusCode.FAILED_PRECONDITION)

    fin.deliver(received("R-2", "PO-1", (1, "CHAIR", 3)), "PO-1", version=3)
    still = get(fin, held.bill_id)
    assert (still.status, list(still.hold_reasons)) == (HELD, ["line 1: billed 10 exceeds received 9"])

    fin.deliver(received("R-3", "PO-1", (1, "CHAIR", 1)), "PO-1", version=4)
    matched = get(fin, held.bill_id)
    assert (matched.status, list(matched.hold_reasons), matched.total.amount) == (POSTED, [], "400.00")
    assert postings(fin, held.bill_id) == [("2100", "400.00", "0.00"), ("2000", "0.00", "400.00")]
    [event] = fin.outbox(fin_ev.SupplierBillPosted)
    assert event.bill_id == held.bill_id and [(x.line_no, x.quantity) for x in event.lines] == [(1, 10), (2, 2)]
    assert balances(fin) == {"1200": D("400.00"), "2100": D("0.00"), "2000": D("-400.00")}
    assert quantities(fin, "PO-1") == [(1, 10, 10, 10), (2, 2, 2, 2)]
    listed = fin.stub.ListSupplierBills(pb.ListSupplierBillsRequest(status=POSTED)).bills
    assert [b.bill_id for b in listed] == [held.bill_id]


def test_a_price_outside_tolerance_is_held_and_a_reviewer_releases_or_rejects_it(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 5, "10.00"), (2, "DESK", 5, "10.00"))), "PO-1")
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 5), (2, "DESK", 5)), "PO-1", version=2)

    # 10.30 is 3% above the ordered price, 9.79 is 2.1% below: both outside 2%; 10.20 is at the edge.
    surcharge = bill(fin, "PO-1", "B-1", (1, 5, "10.30"))
    assert (surcharge.status, list(surcharge.hold_reasons)) == (
        HELD, ["line 1: price 10.30 differs from the ordered 10.00 by more than 2%"])
    cheap = bill(fin, "PO-1", "B-2", (2, 5, "9.79"))
    assert list(cheap.hold_reasons) == ["line 2: price 9.79 differs from the ordered 10.00 by more than 2%"]

    released = review(fin, surcharge.bill_id, pb.BILL_REVIEW_DECISION_RELEASE, "alice", "surcharge agreed")
    assert (released.status, released.reviewed_by, released.review_note) == (POSTED, "alice", "surcharge agreed")
    assert list(released.hold_reasons) == ["line 1: price 10.30 differs from the ordered 10.00 by more than 2%"]
    assert postings(fin, surcharge.bill_id) == [("2100", "50.00", "0.00"), ("5100", "1.50", "0.00"),
                                                ("2000", "0.00", "51.50")]
    # The same review again (a retried call) answers as the first time; another is refused.
    assert review(fin, surcharge.bill_id, pb.BILL_REVIEW_DECISION_RELEASE, "alice", "surcharge agreed") == released
    err = fails(review, fin, surcharge.bill_id, pb.BILL_REVIEW_DECISION_REJECT, code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "not held" in err.details()

    rejected = review(fin, cheap.bill_id, pb.BILL_REVIEW_DECISION_REJECT, "bob", "wrong price list")
    assert (rejected.status, rejected.reviewed_by, rejected.review_note) == (REJECTED, "bob", "wrong price list")
    assert fin.stub.ListJournalEntries(pb.ListJournalEntriesRequest(reference=cheap.bill_id)).entries == []
    fails(pay, fin, cheap.bill_id, "1.00", code=grpc.StatusCode.FAILED_PRECONDITION)
    fails(review, fin, cheap.bill_id, pb.BILL_REVIEW_DECISION_RELEASE, code=grpc.StatusCode.FAILED_PRECONDITION)
    # A rejected bill billed nothing: the corrected bill (its own number) matches in full.
    corrected = bill(fin, "PO-1", "B-2-corrected", (2, 5, "10.20"))
    assert corrected.status == POSTED
    assert postings(fin, corrected.bill_id) == [("2100", "50.00", "0.00"), ("5100", "1.00", "0.00"),
                                                ("2000", "0.00", "51.00")]
    assert quantities(fin, "PO-1") == [(1, 5, 5, 5), (2, 5, 5, 5)]
    assert [e.bill_id for e in fin.outbox(fin_ev.SupplierBillPosted)] == [surcharge.bill_id, corrected.bill_id]
    assert balances(fin) == {"1200": D("100.00"), "2100": D("0.00"), "2000": D("-102.50"), "5100": D("2.50")}
    # Billing more than was ordered and received, even at the right price, is held.
    over = bill(fin, "PO-1", "B-3", (1, 1, "10.00"))
    assert list(over.hold_reasons) == ["line 1: billed 6 (5 on earlier bills) exceeds received 5",
                                       "line 1: billed 6 (5 on earlier bills) exceeds ordered 5"]


# ---------------------------------------------------------------- idempotency and concurrency


def test_a_replayed_goods_received_has_one_effect_under_the_same_or_a_new_event_id(finance):
    fin = finance
    fin.deliver(approved("PO-1"), "PO-1")
    fin.deliver(approved("PO-1"), "PO-1")  # the approval again, under a new event id: the same projection
    body = fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 5)), "PO-1", version=2)
    fin.handle(body)  # the same event again
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 5)), "PO-1", version=2)  # the same receipt, a new event id
    assert quantities(fin, "PO-1") == [(1, 10, 5, 0)]
    assert scalar(fin, "SELECT count(*) FROM journal_entries") == 1
    assert balances(fin) == {"1200": D("250.00"), "2100": D("-250.00")}
    assert list(bill(fin, "PO-1", "B-1", (1, 6, "50.00")).hold_reasons) == ["line 1: billed 6 exceeds received 5"]


def test_goods_for_an_order_finance_does_not_know_retry_then_dead_letter(finance):
    fin = finance
    body = envelope.build(source="procurement", aggregate_type="purchase_order", aggregate_id="PO-X",
                          aggregate_version=2, payload=received("R-1", "PO-X", (1, "CHAIR", 5))).SerializeToString()
    outcomes = [fin.consumer.handle(Delivery(body=body, attempts=attempt, tag=None)) for attempt in range(MAX_ATTEMPTS)]
    assert [type(o) for o in outcomes] == [Retry] * (MAX_ATTEMPTS - 1) + [DeadLetter]
    assert "knows no approved purchase order PO-X" in outcomes[-1].reason
    assert scalar(fin, "SELECT count(*) FROM goods_receipts") == 0
    # Once the approval has arrived, the replayed dead letter posts the receipt.
    fin.deliver(approved("PO-X"), "PO-X")
    assert isinstance(fin.consumer.handle(Delivery(body=body, attempts=0, tag=None)), Ack)
    assert quantities(fin, "PO-X") == [(1, 10, 5, 0)]


def test_concurrent_bills_for_the_same_received_quantity_bill_it_once(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 10, "50.00"),)), "PO-1")
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 10)), "PO-1", version=2)

    def record(i: int) -> pb.SupplierBill:
        return bill(fin, "PO-1", f"B-{i}", (1, 10, "50.00"))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        bills = list(pool.map(record, range(8)))
    assert sorted(b.status for b in bills) == [HELD] * 7 + [POSTED]
    assert {tuple(b.hold_reasons) for b in bills if b.status == HELD} == {
        ("line 1: billed 20 (10 on earlier bills) exceeds received 10",
         "line 1: billed 20 (10 on earlier bills) exceeds ordered 10")}
    assert quantities(fin, "PO-1") == [(1, 10, 10, 10)]
    assert len(fin.outbox(fin_ev.SupplierBillPosted)) == 1
    assert balances(fin) == {"1200": D("500.00"), "2100": D("0.00"), "2000": D("-500.00")}

    # Twins of one request at once record one bill; twins of one bill number, one too.
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        twins = list(pool.map(lambda _: bill(fin, "PO-1", "B-twin", (1, 1, "50.00"), request_id="twin"), range(6)))
    assert len({b.bill_id for b in twins}) == 1

    def same_number(_):
        try:
            return bill(fin, "PO-1", "B-same", (1, 1, "50.00")).status
        except grpc.RpcError as exc:
            return exc.code()

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(same_number, range(6)))
    assert outcomes.count(grpc.StatusCode.ALREADY_EXISTS) == 5
    assert scalar(fin, "SELECT count(*) FROM supplier_bills") == 10


def test_concurrent_payments_never_pay_more_than_is_open(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 7, "10.00"),)), "PO-1")
    fin.deliver(received("R-1", "PO-1", (1, "CHAIR", 7)), "PO-1", version=2)
    posted = bill(fin, "PO-1", "B-1", (1, 7, "10.00"))

    def attempt(_):
        try:
            return pay(fin, posted.bill_id, "10.00").bill.status
        except grpc.RpcError as exc:
            return exc.code()

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        outcomes = list(pool.map(attempt, range(10)))
    assert outcomes.count(grpc.StatusCode.FAILED_PRECONDITION) == 3
    assert (get(fin, posted.bill_id).status, get(fin, posted.bill_id).amount_paid.amount) == (PAID, "70.00")
    assert balances(fin)["2000"] == D("0.00")


# ---------------------------------------------------------------- the contract's errors


def test_every_bad_request_gets_the_documented_status(finance):
    fin = finance
    fin.deliver(approved("PO-1", lines=((1, "CHAIR", 10, "50.00"),)), "PO-1")
    fin.deliver(approved("PO-2", lines=((1, "DESK", 1, "10.00"),), supplier="SUP-2", currency="USD"), "PO-2")

    err = fails(fin.stub.RecordSupplierBill, pb.RecordSupplierBillRequest(), code=INVALID)
    assert field_violations(err) == ["request_id", "purchase_order_id", "supplier_bill_number", "lines"]
    err = fails(fin.stub.RecordSupplierBill, bill_request("PO-1", "B-1", (0, 0, "-1"), (0, 10**9 + 1, "1.00001"),
                                                          currency="eur"), code=INVALID)
    assert field_violations(err) == [
        "lines[0].line_no", "lines[0].quantity", "lines[0].unit_price.amount", "lines[0].unit_price.currency_code",
        "lines[1].line_no", "lines[1].quantity", "lines[1].unit_price.amount", "lines[1].unit_price.currency_code"]
    err = fails(fin.stub.RecordSupplierBill, bill_request("PO-1", "B-1", (2, 1, "1.00"), (1, 1, "1.00"),
                                                          currency="USD"), code=INVALID)
    assert field_violations(err) == ["lines[0].line_no", "lines[0].unit_price.currency_code",
                                     "lines[1].unit_price.currency_code"]
    err = fails(fin.stub.RecordSupplierBill, bill_request("PO-1", "B-1", (1, 10**9, "99999999999.0000")),
                code=INVALID)
    assert field_violations(err) == ["lines"]
    err = fails(bill, fin, "PO-404", "B-1", (1, 1, "1.00"), code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "no approved purchase order PO-404" in err.details()

    first = bill(fin, "PO-1", "B-1", (1, 1, "50.00"), request_id="r-1")  # held: nothing received yet
    err = fails(bill, fin, "PO-1", "B-1", (1, 1, "50.00"), code=grpc.StatusCode.ALREADY_EXISTS)  # the number again
    assert "already has a bill numbered B-1" in err.details()
    err = fails(fin.stub.RecordSupplierBill, bill_request("PO-1", "B-2", (1, 1, "50.00"), request_id="r-1"),
                code=grpc.StatusCode.ALREADY_EXISTS)  # the request id again, for another bill
    assert "request_id r-1" in err.details()
    assert bill(fin, "PO-2", "B-1", (1, 1, "10.00"), currency="USD").supplier_id == "SUP-2"  # another supplier's B-1

    fails(get, fin, "nope", code=grpc.StatusCode.NOT_FOUND)
    assert field_violations(fails(get, fin, "", code=INVALID)) == ["bill_id"]

    err = fails(fin.stub.ReviewSupplierBill, pb.ReviewSupplierBillRequest(note="x" * 501), code=INVALID)
    assert field_violations(err) == ["bill_id", "decision", "reviewer", "note"]
    fails(review, fin, "nope", pb.BILL_REVIEW_DECISION_RELEASE, code=grpc.StatusCode.NOT_FOUND)

    err = fails(fin.stub.PaySupplierBill, pb.PaySupplierBillRequest(amount=eur("0", "eur"), reference="x" * 201),
                code=INVALID)
    assert field_violations(err) == ["request_id", "bill_id", "amount.amount", "amount.currency_code", "reference"]
    assert field_violations(fails(pay, fin, first.bill_id, "1.005", code=INVALID)) == ["amount.amount"]
    assert field_violations(fails(pay, fin, first.bill_id, "1.00", None, "USD", code=INVALID)) == [
        "amount.currency_code"]
    fails(pay, fin, "nope", "1.00", code=grpc.StatusCode.NOT_FOUND)
    err = fails(pay, fin, first.bill_id, "1.00", code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "only a posted bill is paid" in err.details()

    listing = fin.stub.ListSupplierBills
    err = fails(listing, pb.ListSupplierBillsRequest(status=99, supplier_id="s" * 65), code=INVALID)
    assert field_violations(err) == ["status"]
    assert field_violations(fails(listing, pb.ListSupplierBillsRequest(supplier_id="s" * 65), code=INVALID)) == [
        "supplier_id"]
    page = listing(pb.ListSupplierBillsRequest(page=paging_pb2.PageRequest(page_size=1)))
    assert [b.bill_id for b in page.bills] == [first.bill_id] and page.next_page_token
    rest = listing(pb.ListSupplierBillsRequest(page=paging_pb2.PageRequest(page_size=1,
                                                                           page_token=page.next_page_token)))
    assert [b.supplier_id for b in rest.bills] == ["SUP-2"] and rest.next_page_token == ""
    err = fails(listing, pb.ListSupplierBillsRequest(supplier_id="SUP-1", page=paging_pb2.PageRequest(
        page_token=page.next_page_token)), code=INVALID)
    assert field_violations(err) == ["page.page_token"]
    assert [b.supplier_bill_number for b in listing(pb.ListSupplierBillsRequest(purchase_order_id="PO-2")).bills] == [
        "B-1"]
    assert listing(pb.ListSupplierBillsRequest(supplier_id="SUP-1", status=HELD)).bills[0].bill_id == first.bill_id
