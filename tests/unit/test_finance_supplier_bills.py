"""Finance's procure-to-pay use cases (handlers and event entry points) run against the
in-memory fakes: receipts, three-way matched bills, reviews and payments."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from erp.common.v1 import money_pb2
from erp.events.v1 import finance_events_pb2 as ev
from erp.events.v1 import procurement_events_pb2 as proc_ev
from mesh.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mesh.events.envelope import Event, build
from services.finance import events as finance_events
from services.finance.ledger import handlers as ledger_handlers
from services.finance.ledger.domain import FinanceConfig
from services.finance.payables import domain as payables
from services.finance.payables import handlers
from services.finance.payables.domain import BillStatus, ReviewDecision
from tests.unit.fakes_finance import T0, finance_uow

D = Decimal
CONFIG = FinanceConfig(D("0.20"), 30, "EUR", bill_quantity_tolerance=D(0), bill_price_tolerance=D("0.02"))
CONSUMES = finance_events.build(CONFIG)


def money(amount: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount=amount)


def deliver(uow, payload, version: int = 1) -> None:
    """Runs the consumer's handler for payload in one transaction, as the consumer does."""
    event = Event(build(source="procurement", aggregate_type="purchase_order", aggregate_id="po-1",
                        aggregate_version=version, payload=payload), payload)
    with uow:
        CONSUMES.handlers[event.envelope.event_type](uow, payload, event.envelope)
        uow.commit()


def approve(uow, *lines: tuple[int, str, int, str], po_id: str = "po-1", terms: int = 30, version: int = 1) -> None:
    deliver(uow, proc_ev.PurchaseOrderApproved(
        purchase_order_id=po_id, number="PO-2026-000001", supplier_id="sup-1", payment_terms_days=terms,
        total=money("0"), lines=[proc_ev.PurchaseOrderLineItem(line_no=n, sku=sku, quantity=q, unit_price=money(p))
                                 for n, sku, q, p in lines]), version)


def receive(uow, receipt_id: str, *lines: tuple[int, str, int], po_id: str = "po-1") -> None:
    deliver(uow, proc_ev.GoodsReceived(
        receipt_id=receipt_id, purchase_order_id=po_id, supplier_id="sup-1", warehouse_code="MAIN",
        lines=[proc_ev.ReceivedLine(line_no=n, sku=sku, quantity=q, unit_price=money("999")) for n, sku, q in lines]))


def record(uow, number: str, *lines: tuple[int, int, str], request_id: str | None = None, po_id: str = "po-1"):
    cmd = payables.RecordSupplierBill(request_id or f"req-{number}", po_id, number,
                                      tuple(payables.BillLineInput(n, q, p, "EUR") for n, q, p in lines))
    return handlers.record_supplier_bill(uow, cmd, CONFIG, now=T0)


def review(uow, bill_id: str, decision: ReviewDecision, reviewer: str = "alice", note: str = "ok"):
    return handlers.review_supplier_bill(uow, payables.ReviewSupplierBill(bill_id, decision, reviewer, note), now=T0)


def pay(uow, bill_id: str, amount: str, request_id: str | None = None, currency: str = "EUR"):
    return handlers.pay_supplier_bill(uow, payables.PaySupplierBill(
        request_id or f"pay-{len(uow.bill_payments.rows)}", bill_id, amount, currency, ""), now=T0)


def quantities(uow, po_id: str = "po-1") -> list[tuple[int, int, int, int]]:
    return [(x.line_no, x.ordered, x.received, x.billed) for x in uow.purchase_orders.rows[po_id].lines.values()]


def balance(uow) -> dict[str, Decimal]:
    trial = ledger_handlers.trial_balance(uow, "EUR", CONFIG)[1]
    assert trial.total_debit == trial.total_credit
    return {x.account: x.balance for x in trial.lines}


@pytest.fixture
def uow():
    return finance_uow()


def test_finance_consumes_procurements_approvals_and_receipts():
    assert {"erp.events.v1.PurchaseOrderApproved", "erp.events.v1.GoodsReceived"} <= set(CONSUMES.event_types)


def test_receipts_post_inventory_and_a_matched_bill_clears_it_into_payables(uow):
    approve(uow, (1, "CHAIR", 10, "50.00"), terms=45)
    receive(uow, "r-1", (1, "CHAIR", 6))
    receive(uow, "r-2", (1, "CHAIR", 4))
    assert quantities(uow) == [(1, 10, 10, 0)] and balance(uow) == {"1200": D("500.00"), "2100": D("-500.00")}

    bill = record(uow, "B-1", (1, 10, "50.50"))
    assert (bill.status, bill.due_at, bill.hold_reasons) == (BillStatus.POSTED, T0 + dt.timedelta(days=45), [])
    assert quantities(uow) == [(1, 10, 10, 10)]
    assert balance(uow) == {"1200": D("500.00"), "2100": D("0.00"), "2000": D("-505.00"), "5100": D("5.00")}
    [posted] = [e for e in uow.events if isinstance(e.payload, ev.SupplierBillPosted)]
    assert (posted.aggregate_type, posted.aggregate_id, posted.version) == ("supplier_bill", "po-1", 1)
    assert posted.payload == ev.SupplierBillPosted(bill_id=bill.bill_id, purchase_order_id="po-1",
                                                   supplier_id="sup-1", total=money("505.00"),
                                                   lines=[ev.BilledLine(line_no=1, quantity=10)])


def test_a_held_bill_follows_the_receipts_and_posts_itself_when_they_cover_it(uow):
    approve(uow, (1, "CHAIR", 10, "20.00"))
    receive(uow, "r-1", (1, "CHAIR", 4))
    bill = record(uow, "B-1", (1, 10, "20.00"))
    assert (bill.status, bill.hold_reasons) == (BillStatus.HELD, ["line 1: billed 10 exceeds received 4"])
    assert uow.payloads(ev.SupplierBillPosted) == [] and quantities(uow) == [(1, 10, 4, 0)]
    receive(uow, "r-2", (1, "CHAIR", 5))
    assert uow.supplier_bills.get(bill.bill_id).hold_reasons == ["line 1: billed 10 exceeds received 9"]
    receive(uow, "r-3", (1, "CHAIR", 1))
    posted = uow.supplier_bills.get(bill.bill_id)
    assert (posted.status, posted.hold_reasons) == (BillStatus.POSTED, []) and posted.posted_at is not None
    assert quantities(uow) == [(1, 10, 10, 10)] and len(uow.payloads(ev.SupplierBillPosted)) == 1
    assert balance(uow)["2100"] == 0


def test_a_held_bill_for_a_price_stays_held_when_goods_arrive(uow):
    approve(uow, (1, "CHAIR", 10, "20.00"))
    bill = record(uow, "B-1", (1, 10, "25.00"))
    assert len(bill.hold_reasons) == 2
    receive(uow, "r-1", (1, "CHAIR", 10))
    assert uow.supplier_bills.get(bill.bill_id).hold_reasons == [
        "line 1: price 25.00 differs from the ordered 20.00 by more than 2%"]
    assert uow.payloads(ev.SupplierBillPosted) == []


def test_a_receipt_has_one_effect_and_one_for_an_unknown_order_fails_leaving_nothing(uow):
    approve(uow, (1, "CHAIR", 10, "50.00"))
    receive(uow, "r-1", (1, "CHAIR", 5))
    receive(uow, "r-1", (1, "CHAIR", 5))  # the same receipt under a new event id
    assert quantities(uow) == [(1, 10, 5, 0)] and len(uow.journal.entries) == 1
    with pytest.raises(payables.UnknownPurchaseOrder, match="po-x"):
        receive(uow, "r-2", (1, "CHAIR", 5), po_id="po-x")
    with pytest.raises(InvalidArgument, match="has no line 2"):
        receive(uow, "r-3", (1, "CHAIR", 1), (2, "DESK", 1))
    assert quantities(uow) == [(1, 10, 5, 0)] and set(uow.goods_receipts.rows) == {"r-1"}


def test_a_repeated_approval_keeps_what_was_received_and_an_older_one_is_ignored(uow):
    approve(uow, (1, "CHAIR", 10, "50.00"), version=2)
    receive(uow, "r-1", (1, "CHAIR", 5))
    approve(uow, (1, "CHAIR", 10, "50.00"), version=2)
    approve(uow, (1, "CHAIR", 99, "1.00"), terms=5, version=1)
    assert quantities(uow) == [(1, 10, 5, 0)] and uow.purchase_orders.rows["po-1"].payment_terms_days == 30


def test_recording_is_idempotent_by_request_id_and_a_bill_number_is_used_once(uow):
    approve(uow, (1, "CHAIR", 10, "50.00"))
    receive(uow, "r-1", (1, "CHAIR", 10))
    first = record(uow, "B-1", (1, 5, "50.00"), request_id="req-1")
    assert record(uow, "B-1", (1, 5, "50.0000"), request_id="req-1").bill_id == first.bill_id
    with pytest.raises(AlreadyExists, match="request_id req-1"):
        record(uow, "B-1", (1, 4, "50.00"), request_id="req-1")
    with pytest.raises(AlreadyExists, match="already has a bill numbered B-1"):
        record(uow, "B-1", (1, 5, "50.00"), request_id="req-2")
    with pytest.raises(FailedPrecondition, match="no approved purchase order po-x"):
        record(uow, "B-9", (1, 5, "50.00"), po_id="po-x")
    assert len(uow.supplier_bills.rows) == 1 and quantities(uow) == [(1, 10, 10, 5)]


def test_release_posts_a_held_bill_as_it_is_and_reject_closes_one(uow):
    approve(uow, (1, "CHAIR", 10, "10.00"))
    receive(uow, "r-1", (1, "CHAIR", 5))
    over = record(uow, "B-1", (1, 6, "10.00"))
    cheap = record(uow, "B-2", (1, 1, "5.00"))
    released = review(uow, over.bill_id, ReviewDecision.RELEASE, "alice", "sixth one is on its way")
    assert (released.status, released.reviewed_by, released.hold_reasons) == (
        BillStatus.POSTED, "alice", ["line 1: billed 6 exceeds received 5"])
    assert quantities(uow) == [(1, 10, 5, 6)]  # billed ahead of the goods, by a reviewer's decision
    assert balance(uow) == {"1200": D("50.00"), "2100": D("10.00"), "2000": D("-60.00")}
    assert review(uow, over.bill_id, ReviewDecision.RELEASE, "alice", "sixth one is on its way") == released
    with pytest.raises(FailedPrecondition, match="not held"):
        review(uow, over.bill_id, ReviewDecision.REJECT)
    rejected = review(uow, cheap.bill_id, ReviewDecision.REJECT, "bob", "no")
    assert rejected.status is BillStatus.REJECTED and quantities(uow) == [(1, 10, 5, 6)]
    assert [e.version for e in uow.events if isinstance(e.payload, ev.SupplierBillPosted)] == [1]
    receive(uow, "r-2", (1, "CHAIR", 1))  # the sixth arrives: goods received not invoiced is cleared
    assert balance(uow)["2100"] == 0
    with pytest.raises(NotFound):
        review(uow, "nope", ReviewDecision.RELEASE)


def test_payments_settle_a_posted_bill_once_per_request_and_never_beyond_it(uow):
    approve(uow, (1, "CHAIR", 10, "10.00"))
    receive(uow, "r-1", (1, "CHAIR", 10))
    bill = record(uow, "B-1", (1, 10, "10.00"))
    payment, after = pay(uow, bill.bill_id, "40.00", request_id="p-1")
    assert (after.status, after.amount_paid) == (BillStatus.PARTLY_PAID, D("40.00"))
    assert pay(uow, bill.bill_id, "40", request_id="p-1")[0].payment_id == payment.payment_id
    with pytest.raises(AlreadyExists):
        pay(uow, bill.bill_id, "41.00", request_id="p-1")
    with pytest.raises(FailedPrecondition, match="exceeds the 60.00 EUR open"):
        pay(uow, bill.bill_id, "60.01")
    assert pay(uow, bill.bill_id, "60.00")[1].status is BillStatus.PAID
    assert balance(uow) == {"1000": D("-100.00"), "1200": D("100.00"), "2000": D("0.00"), "2100": D("0.00")}
    with pytest.raises(NotFound):
        pay(uow, "nope", "1.00")


def test_list_supplier_bills_by_filter_and_page(uow):
    approve(uow, (1, "CHAIR", 10, "10.00"))
    approve(uow, (1, "DESK", 10, "10.00"), po_id="po-2")
    receive(uow, "r-1", (1, "CHAIR", 10))
    bills = [record(uow, "B-1", (1, 5, "10.00")), record(uow, "B-2", (1, 5, "10.00"), po_id="po-2"),
             record(uow, "B-3", (1, 5, "10.00"))]
    page, token = handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(), 2, "")
    assert [b.bill_id for b in page] == [b.bill_id for b in bills[:2]] and token
    page, token = handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(), 2, token)
    assert [b.bill_id for b in page] == [bills[2].bill_id] and token == ""
    held = handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(status=BillStatus.HELD), 0, "")[0]
    assert [b.supplier_bill_number for b in held] == ["B-2"]
    by_order = handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(purchase_order_id="po-1"), 0, "")[0]
    assert [b.supplier_bill_number for b in by_order] == ["B-1", "B-3"]
    with pytest.raises(InvalidArgument, match="page_token"):
        handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(supplier_id="sup-1"), 2,
                                     handlers.list_supplier_bills(uow, handlers.SupplierBillQuery(), 1, "")[1])
    assert handlers.get_supplier_bill(uow, bills[0].bill_id).supplier_bill_number == "B-1"
    with pytest.raises(NotFound):
        handlers.get_supplier_bill(uow, "nope")
