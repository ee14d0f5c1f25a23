"""Finance's purchase-side rules (services/finance/payables/domain.py): the three-way match,
the postings of receipts, bills and bill payments, and the validation of requests and
events. Pure: no I/O, no fakes."""
from __future__ import annotations

import dataclasses
import datetime as dt
import types
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesh.errors import FailedPrecondition, InvalidArgument
from mesh.settings import Variables
from services.finance.ledger.domain import CHART, Account, FinanceConfig, OrderLineInput
from services.finance.payables import domain as payables
from services.finance.payables.domain import (
    ApprovePurchaseOrder,
    BillLineInput,
    BillStage,
    BillStatus,
    MatchTolerances,
    PurchaseOrder,
    PurchaseOrderLine,
    ReceivedLineInput,
    ReceiveGoods,
    RecordSupplierBill,
    ReviewDecision,
)
from tests.unit.fakes_finance import T0, finance_settings

D = Decimal
STRICT = MatchTolerances(quantity=D(0), price=D("0.02"))


def fields(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in exc.value.violations]


def order(*lines: tuple[int, int, str, int, int], terms: int = 30) -> PurchaseOrder:
    """Lines of (line_no, ordered, unit price, received, billed)."""
    return PurchaseOrder("po-1", "PO-2026-000001", "sup-1", "EUR", terms, {
        n: PurchaseOrderLine(n, f"SKU-{n}", ordered, D(price), received, billed)
        for n, ordered, price, received, billed in lines})


def request(*lines: tuple[int, int, str], currency: str = "EUR", number: str = "B-1") -> RecordSupplierBill:
    return RecordSupplierBill("req-1", "po-1", number, tuple(BillLineInput(n, q, p, currency) for n, q, p in lines))


def new_bill(po: PurchaseOrder, *lines: tuple[int, int, str]) -> payables.SupplierBill:
    cmd = request(*lines)
    return payables.new_bill("bill-1", cmd, po, payables.bill_lines(cmd, payables.validate_bill_request(cmd), po), T0)


def postings(entry) -> list[tuple[str, str, str]]:
    return [(line.account, str(line.debit), str(line.credit)) for line in entry.lines]


# ---------------------------------------------------------------- the three-way match


def test_a_bill_within_received_ordered_and_price_matches():
    po = order((1, 10, "50.00", 10, 0), (2, 4, "10.00", 4, 0))
    bill = new_bill(po, (1, 10, "51.00"), (2, 4, "9.80"))  # +2% and -2%: at the edge, inside
    assert payables.match(bill.lines, po, STRICT) == []


def test_billing_more_than_was_received_is_held_with_the_quantities():
    po = order((1, 12, "50.00", 10, 0), (2, 5, "10.00", 5, 0))
    bill = new_bill(po, (1, 2, "50.00"), (2, 12, "10.00"))
    assert payables.match(bill.lines, po, STRICT) == ["line 2: billed 12 exceeds received 5",
                                                      "line 2: billed 12 exceeds ordered 5"]


def test_quantities_on_earlier_posted_bills_count_against_a_new_one():
    po = order((1, 10, "50.00", 10, 8))
    assert payables.match(new_bill(po, (1, 2, "50.00")).lines, po, STRICT) == []
    assert payables.match(new_bill(po, (1, 3, "50.00")).lines, po, STRICT) == [
        "line 1: billed 11 (8 on earlier bills) exceeds received 10",
        "line 1: billed 11 (8 on earlier bills) exceeds ordered 10"]


def test_the_quantity_tolerance_allows_billing_that_much_over_received_and_ordered():
    po = order((1, 10, "50.00", 10, 0))
    five_percent = MatchTolerances(quantity=D("0.05"), price=D("0.02"))
    assert payables.match(new_bill(po, (1, 10, "50.00")).lines, po, five_percent) == []
    assert payables.match(new_bill(po, (1, 11, "50.00")).lines, po, five_percent) == [
        "line 1: billed 11 exceeds received 10 (+5%)", "line 1: billed 11 exceeds ordered 10 (+5%)"]
    ten_percent = MatchTolerances(quantity=D("0.1"), price=D("0.02"))
    assert payables.match(new_bill(po, (1, 11, "50.00")).lines, po, ten_percent) == []


def test_a_price_outside_tolerance_either_way_is_held():
    po = order((1, 10, "10.00", 10, 0), (2, 10, "10.00", 10, 0))
    bill = new_bill(po, (1, 1, "10.2001"), (2, 1, "9.7999"))
    assert payables.match(bill.lines, po, STRICT) == [
        "line 1: price 10.2001 differs from the ordered 10.00 by more than 2%",
        "line 2: price 9.7999 differs from the ordered 10.00 by more than 2%"]
    exact = MatchTolerances(quantity=D(0), price=D(0))
    assert payables.match(new_bill(po, (1, 1, "10.0001")).lines, po, exact) == [
        "line 1: price 10.0001 differs from the ordered 10.00 by more than 0%"]
    assert payables.match(new_bill(po, (1, 1, "10.00")).lines, po, exact) == []


def test_goods_ordered_free_only_match_a_free_bill():
    po = order((1, 10, "0", 10, 0))
    assert payables.match(new_bill(po, (1, 1, "0")).lines, po, STRICT) == []
    assert len(payables.match(new_bill(po, (1, 1, "0.01")).lines, po, STRICT)) == 1


def test_one_reason_per_problem_on_every_line():
    po = order((1, 10, "10.00", 0, 0), (2, 10, "10.00", 3, 0))
    bill = new_bill(po, (1, 1, "10.00"), (2, 20, "11.00"))
    assert payables.match(bill.lines, po, STRICT) == [
        "line 1: billed 1 exceeds received 0",
        "line 2: billed 20 exceeds received 3", "line 2: billed 20 exceeds ordered 10",
        "line 2: price 11.00 differs from the ordered 10.00 by more than 2%"]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50), st.integers(1, 50), st.integers(0, 50), st.integers(1, 60),
       st.decimals(min_value=0, max_value=D("0.5"), places=2))
def test_a_matched_bill_never_takes_billed_above_received_or_ordered_plus_tolerance(
        received, ordered, billed, quantity, tolerance):
    po = order((1, ordered, "10.00", received, billed))
    tolerances = MatchTolerances(quantity=tolerance, price=D("0.02"))
    matched = payables.match(new_bill(po, (1, quantity, "10.00")).lines, po, tolerances) == []
    limit = min(received, ordered) * (1 + tolerance)
    assert matched == (billed + quantity <= limit)


# ---------------------------------------------------------------- postings


def test_a_bill_above_the_ordered_prices_debits_the_variance():
    po = order((1, 10, "50.00", 10, 0), (2, 3, "16.665", 3, 0))
    bill = new_bill(po, (1, 10, "50.50"), (2, 3, "16.665"))
    assert [str(x.amount) for x in bill.lines] == ["505.00", "50.00"]  # 49.995 rounds half up
    assert bill.total == D("555.00")
    assert postings(payables.bill_entry(bill, po)) == [
        ("2100", "550.00", "0.00"), ("5100", "5.00", "0.00"), ("2000", "0.00", "555.00")]


def test_a_bill_below_the_ordered_prices_credits_the_variance_and_an_exact_one_posts_none():
    po = order((1, 10, "50.00", 10, 0))
    assert postings(payables.bill_entry(new_bill(po, (1, 10, "49.50")), po)) == [
        ("2100", "500.00", "0.00"), ("2000", "0.00", "495.00"), ("5100", "0.00", "5.00")]
    assert postings(payables.bill_entry(new_bill(po, (1, 10, "50.00")), po)) == [
        ("2100", "500.00", "0.00"), ("2000", "0.00", "500.00")]
    free = order((1, 10, "0", 10, 0))
    assert payables.bill_entry(new_bill(free, (1, 10, "0")), free) is None


def test_goods_received_are_valued_at_the_ordered_prices_line_by_line():
    po = order((1, 10, "16.665", 0, 0), (2, 10, "0.005", 0, 0))
    receipt = payables.receive(po, ReceiveGoods("r-1", "po-1", "sup-1", (
        ReceivedLineInput(1, "SKU-1", 3), ReceivedLineInput(2, "SKU-2", 1))))
    assert [(x.line_no, x.quantity, str(x.amount)) for x in receipt.lines] == [(1, 3, "50.00"), (2, 1, "0.01")]
    assert (po.lines[1].received, po.lines[2].received) == (3, 1)
    entry = payables.receipt_entry(receipt, po)
    assert postings(entry) == [("1200", "50.01", "0.00"), ("2100", "0.00", "50.01")]
    assert entry.reference == "r-1"


def test_a_receipt_that_does_not_fit_its_order_is_refused():
    po = order((1, 10, "1.00", 0, 0))
    with pytest.raises(InvalidArgument) as exc:
        payables.receive(po, ReceiveGoods("r-1", "po-1", "sup-2", (ReceivedLineInput(1, "OTHER", 1),
                                                                    ReceivedLineInput(9, "SKU-9", 1))))
    assert fields(exc) == ["supplier_id", "lines[0].sku", "lines[1].line_no"]
    assert po.lines[1].received == 0
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_receipt(ReceiveGoods("", "", "", (ReceivedLineInput(1, "A", 0), ReceivedLineInput(1, "A", 1))))
    assert fields(exc) == ["receipt_id", "purchase_order_id", "lines[0].quantity", "lines[1].line_no"]


def test_the_new_account_is_in_the_chart():
    assert Account.PURCHASE_PRICE_VARIANCE == "5100"
    assert CHART[Account.PURCHASE_PRICE_VARIANCE] == ("Purchase price variance", "expense")


# ---------------------------------------------------------------- bills: status, review, payment


def test_bill_status_is_derived_from_its_stage_and_amounts():
    po = order((1, 10, "10.00", 10, 0))
    bill = new_bill(po, (1, 10, "10.00"))
    assert bill.status is BillStatus.HELD and bill.amount_open == 0
    assert bill.due_at == T0 + dt.timedelta(days=30)
    bill.post(T0, 1)
    assert (bill.status, bill.amount_open) == (BillStatus.POSTED, D("100.00"))
    bill.pay(D("40.00"), "EUR")
    assert (bill.status, bill.amount_open) == (BillStatus.PARTLY_PAID, D("60.00"))
    bill.pay(D("60.00"), "EUR")
    assert (bill.status, bill.amount_open) == (BillStatus.PAID, D("0.00"))
    free = new_bill(order((1, 1, "0", 1, 0)), (1, 1, "0"))
    free.post(T0, None)
    assert free.status is BillStatus.PAID


def test_paying_a_bill_more_than_is_open_or_before_it_is_posted_is_refused():
    po = order((1, 10, "10.00", 10, 0))
    bill = new_bill(po, (1, 10, "10.00"))
    with pytest.raises(FailedPrecondition, match="only a posted bill"):
        bill.pay(D("1.00"), "EUR")
    bill.post(T0, 1)
    with pytest.raises(InvalidArgument) as exc:
        bill.pay(D("1.00"), "USD")
    assert fields(exc) == ["amount.currency_code"]
    with pytest.raises(FailedPrecondition, match="exceeds the 100.00 EUR open"):
        bill.pay(D("100.01"), "EUR")
    bill.pay(D("100.00"), "EUR")
    with pytest.raises(FailedPrecondition, match="already paid in full"):
        bill.pay(D("0.01"), "EUR")


def test_only_a_held_bill_is_reviewed_and_a_repeat_is_recognised():
    po = order((1, 10, "10.00", 0, 0))
    bill = new_bill(po, (1, 10, "10.00"))
    bill.review(ReviewDecision.REJECT, "bob", "wrong")
    assert (bill.stage, bill.status, bill.reviewed_by) == (BillStage.REJECTED, BillStatus.REJECTED, "bob")
    assert bill.reviewed_as(ReviewDecision.REJECT, "bob", "wrong")
    assert not bill.reviewed_as(ReviewDecision.REJECT, "bob", "other note")
    with pytest.raises(FailedPrecondition, match="not held"):
        bill.review(ReviewDecision.RELEASE, "bob", "changed my mind")


def test_posting_a_bill_counts_its_quantities_as_billed_and_versions_the_order():
    po = order((1, 10, "10.00", 10, 2), (2, 5, "1.00", 5, 0))
    payables.bill_order(po, new_bill(po, (1, 3, "10.00"), (2, 5, "1.00")))
    assert (po.lines[1].billed, po.lines[2].billed, po.bills_posted) == (5, 5, 1)


# ---------------------------------------------------------------- validation


def test_a_bill_request_is_validated_field_by_field():
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_bill_request(RecordSupplierBill("", "", "", ()))
    assert fields(exc) == ["request_id", "purchase_order_id", "supplier_bill_number", "lines"]
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_bill_request(request((1, 0, "1"), (1, 1, "1.00001"), (2, 10**9 + 1, "-1"), currency="eu"))
    assert fields(exc) == ["lines[0].quantity", "lines[0].unit_price.currency_code",
                           "lines[1].line_no", "lines[1].unit_price.amount", "lines[1].unit_price.currency_code",
                           "lines[2].quantity", "lines[2].unit_price.amount", "lines[2].unit_price.currency_code"]
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_bill_request(request(*((n, 1, "1") for n in range(1, 202))))
    assert fields(exc) == ["lines"]


def test_a_bill_for_lines_or_a_currency_the_order_does_not_have_is_refused_not_held():
    po = order((1, 10, "10.00", 10, 0))
    cmd = request((1, 1, "10.00"), (7, 1, "10.00"), currency="USD")
    with pytest.raises(InvalidArgument) as exc:
        payables.bill_lines(cmd, payables.validate_bill_request(cmd), po)
    assert fields(exc) == ["lines[0].unit_price.currency_code", "lines[1].line_no",
                           "lines[1].unit_price.currency_code"]
    huge = request((1, 10**9, "99999999999"))
    with pytest.raises(InvalidArgument) as exc:
        payables.bill_lines(huge, payables.validate_bill_request(huge), po)
    assert fields(exc) == ["lines"]


def test_a_repeated_bill_request_is_recognised_by_its_content():
    po = order((1, 10, "10.00", 10, 0))
    bill = new_bill(po, (1, 10, "10.00"))
    assert bill.same_request(request((1, 10, "10.0000")), [(1, 10, D("10.0000"))])
    assert not bill.same_request(request((1, 9, "10.00")), [(1, 9, D("10.00"))])
    assert not bill.same_request(request((1, 10, "10.00"), number="B-2"), [(1, 10, D("10.00"))])


def test_a_purchase_order_approved_is_validated_field_by_field():
    good = ApprovePurchaseOrder("po-1", "PO-1", "sup-1", 45, (OrderLineInput(1, "A", 2, "3.50", "EUR"),), "EUR")
    po = payables.approved_order(good)
    assert (po.currency_code, po.payment_terms_days, po.lines[1]) == ("EUR", 45, PurchaseOrderLine(1, "A", 2, D("3.50")))
    bad = ApprovePurchaseOrder("", "x" * 65, "", 3651, (
        OrderLineInput(0, "", 0, "-1", "EUR"), OrderLineInput(2, "B", 1, "1.00", "USD")), "EUR")
    with pytest.raises(InvalidArgument) as exc:
        payables.approved_order(bad)
    assert fields(exc) == ["purchase_order_id", "supplier_id", "number", "payment_terms_days", "lines[0].line_no",
                           "lines[0].sku", "lines[0].quantity", "lines[0].unit_price.amount",
                           "lines[1].unit_price.currency_code"]
    with pytest.raises(InvalidArgument) as exc:
        payables.approved_order(dataclasses.replace(good, lines=(), total_currency=""))
    assert fields(exc) == ["lines", "total.currency_code"]


def test_review_and_payment_requests_are_validated_field_by_field():
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_review(payables.ReviewSupplierBill("", None, "", "x" * 501))
    assert fields(exc) == ["bill_id", "decision", "reviewer", "note"]
    with pytest.raises(InvalidArgument) as exc:
        payables.validate_bill_payment(payables.PaySupplierBill("", "", "0", "eur", "x" * 201))
    assert fields(exc) == ["request_id", "bill_id", "amount.amount", "amount.currency_code", "reference"]
    for amount, why in [("-5", "more than zero"), ("1.005", "at most 2 decimals"), ("1e3", "decimal")]:
        with pytest.raises(InvalidArgument, match=why):
            payables.validate_bill_payment(payables.PaySupplierBill("r", "b", amount, "EUR", ""))
    assert payables.validate_bill_payment(payables.PaySupplierBill("r", "b", "12.5", "EUR", "")) == D("12.5")


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(("quantity", "price", "problem"), [
    ("x", "0.02", "ERP_FINANCE_BILL_QUANTITY_TOLERANCE"), ("-0.01", "0.02", "ERP_FINANCE_BILL_QUANTITY_TOLERANCE"),
    ("1.5", "0.02", "ERP_FINANCE_BILL_QUANTITY_TOLERANCE"), ("0", "NaN", "ERP_FINANCE_BILL_PRICE_TOLERANCE"),
    ("0", "2%", "ERP_FINANCE_BILL_PRICE_TOLERANCE"), ("0", "0.0000001", "ERP_FINANCE_BILL_PRICE_TOLERANCE"),
])
def test_bad_tolerances_stop_the_service_naming_the_variable(quantity, price, problem):
    with pytest.raises(ValueError, match=problem):
        FinanceConfig.from_settings(finance_settings("0.20", "30", "EUR", quantity, price))


def test_the_tolerances_come_from_the_settings_with_their_defaults():
    def Settings(env):  # noqa: N802 - what the config reads of mesh's Settings
        return types.SimpleNamespace(variables=Variables(env))

    defaults = FinanceConfig.from_settings(Settings({}))
    assert (defaults.bill_quantity_tolerance, defaults.bill_price_tolerance) == (D(0), D("0.02"))
    chosen = FinanceConfig.from_settings(Settings({"ERP_FINANCE_BILL_QUANTITY_TOLERANCE": "0.05",
                                      "ERP_FINANCE_BILL_PRICE_TOLERANCE": "0"}))
    assert (chosen.bill_quantity_tolerance, chosen.bill_price_tolerance) == (D("0.05"), D(0))
    with pytest.raises(ValueError, match="ERP_FINANCE_BILL_PRICE_TOLERANCE"):
        FinanceConfig.from_settings(Settings({"ERP_FINANCE_BILL_PRICE_TOLERANCE": "lots"}))
