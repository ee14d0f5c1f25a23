"""Procurement's rules without I/O: the transition table, approvals, receipts and the
tolerance, replenishment lines, validation and configuration."""
from __future__ import annotations

import datetime as dt
import types
from decimal import Decimal

import pytest

from mesh.errors import Aborted, FailedPrecondition, InvalidArgument, Violations
from mesh.settings import Variables
from services.procurement import domain
from services.procurement.domain import (
    LineInput,
    Origin,
    POLine,
    POStatus,
    ProcurementConfig,
    PurchaseOrder,
    SupplierPrice,
)

T0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
CONFIG = ProcurementConfig(Decimal("10000.00"), Decimal("0.05"))


def order(*lines: tuple[str, int, str], status=POStatus.DRAFT) -> PurchaseOrder:
    po_lines = [POLine(i + 1, sku, q, Decimal(p), CONFIG.receivable(q)) for i, (sku, q, p) in enumerate(lines)]
    return PurchaseOrder("PO1", "R1", "PO-2026-000001", "ACME", "EUR", "MAIN", po_lines, status, Origin.MANUAL,
                         T0, T0)


def submitted(*lines, required=1) -> PurchaseOrder:
    po = order(*lines)
    po.submit("sam", required, T0)
    return po


def test_every_status_not_in_the_table_is_refused():
    every = set(POStatus)
    for source in every:
        for target in every:
            po = order(("BOLT", 1, "1"))
            po.status = source
            if target in domain.TRANSITIONS.get(source, frozenset()):
                po._move(target, T0)
                assert po.status is target and po.entered == [target]
            else:
                with pytest.raises(domain.InvalidTransition):
                    po._move(target, T0)
    assert not domain.TRANSITIONS.get(POStatus.REJECTED) and not domain.TRANSITIONS.get(POStatus.CLOSED)


def test_one_approval_approves_an_order_at_or_below_the_threshold():
    assert CONFIG.approvals_required(Decimal("10000.00")) == 1
    po = submitted(("BOLT", 4000, "2.50"))  # exactly 10,000.00
    po.approve("ada", "", T0)
    assert po.status is POStatus.APPROVED


def test_above_the_threshold_two_different_approvers_are_needed():
    assert CONFIG.approvals_required(Decimal("10000.01")) == 2
    po = submitted(("PUMP", 5, "2500"), required=2)
    po.approve("ada", "ok", T0)
    assert po.status is POStatus.SUBMITTED and po.approvers() == {"ada"}
    with pytest.raises(FailedPrecondition, match="different approver"):
        po.approve("ada", "again", T0)
    po.approve("bo", "", T0)
    assert po.status is POStatus.APPROVED and [a.approver for a in po.approvals] == ["ada", "bo"]


def test_only_a_submitted_order_is_approved_or_rejected():
    po = order(("BOLT", 1, "1"))
    with pytest.raises(domain.InvalidTransition):
        po.approve("ada", "", T0)
    with pytest.raises(domain.InvalidTransition):
        po.reject("ada", "no", T0)
    po = submitted(("BOLT", 1, "1"))
    po.reject("ada", "too dear", T0)
    po.reject("ada", "too dear", T0)  # a repeat changes nothing
    assert po.status is POStatus.REJECTED and len(po.approvals) == 1 and po.closing_reason == "too dear"


def test_whoever_submitted_an_order_cannot_approve_it():
    po = submitted(("BOLT", 4, "2.50"))
    with pytest.raises(FailedPrecondition, match="sam submitted purchase order PO1 and cannot also approve it"):
        po.approve("sam", "", T0)
    assert po.status is POStatus.SUBMITTED and po.approvals == []
    po.approve("ada", "", T0)
    assert po.status is POStatus.APPROVED


def test_neither_of_two_approvers_may_be_the_submitter():
    po = submitted(("BOLT", 8000, "2.50"), required=2)
    po.approve("ada", "", T0)
    with pytest.raises(FailedPrecondition, match="segregation of duties"):
        po.approve("sam", "", T0)
    po.approve("bo", "", T0)
    assert po.status is POStatus.APPROVED


def test_with_segregation_off_the_submitter_may_approve():
    po = submitted(("BOLT", 4, "2.50"))
    po.approve("sam", "", T0, segregate_duties=False)
    assert po.status is POStatus.APPROVED


def test_segregation_of_duties_is_on_unless_the_setting_says_false():
    assert CONFIG.segregate_duties is True
    assert configured().segregate_duties is True
    assert configured(ERP_PROCUREMENT_SEGREGATE_DUTIES=" TRUE ").segregate_duties is True
    assert configured(ERP_PROCUREMENT_SEGREGATE_DUTIES="false").segregate_duties is False
    with pytest.raises(ValueError, match="ERP_PROCUREMENT_SEGREGATE_DUTIES must be true or false"):
        configured(ERP_PROCUREMENT_SEGREGATE_DUTIES="maybe")


def configured(**env: str) -> ProcurementConfig:
    return ProcurementConfig.from_settings(types.SimpleNamespace(variables=Variables(env)))


def test_an_empty_draft_is_not_submitted_and_a_repeat_submit_changes_nothing():
    with pytest.raises(FailedPrecondition, match="no lines"):
        order().submit("sam", 1, T0)
    po = submitted(("BOLT", 1, "1"))
    version = po.version
    assert po.submit("sam", 1, T0) is False and po.version == version


def test_a_draft_is_edited_only_at_its_current_version_and_only_while_a_draft():
    po = order(("BOLT", 1, "1"))
    with pytest.raises(Aborted):
        po.replace(po.version + 1, "", po.lines, "", T0)
    po.replace(po.version, "EAST", po.lines, "note", T0)
    assert (po.warehouse_code, po.note, po.version) == ("EAST", "note", 2)
    po.submit("sam", 1, T0)
    with pytest.raises(domain.InvalidTransition):
        po.replace(po.version, "", po.lines, "", T0)


@pytest.mark.parametrize(("ordered", "tolerance", "receivable"), [
    (100, "0.05", 105), (19, "0.05", 19), (20, "0.05", 21), (1, "0", 1), (7, "1", 14), (10**9, "0.05", 1_050_000_000)])
def test_the_tolerance_is_whole_units_rounded_down(ordered, tolerance, receivable):
    assert ProcurementConfig(Decimal(0), Decimal(tolerance)).receivable(ordered) == receivable


def test_receipts_add_up_to_the_tolerance_and_a_receipt_past_it_changes_nothing():
    po = submitted(("BOLT", 100, "1"), ("NUT", 10, "1"))
    po.approve("ada", "", T0)
    po.receive({1: 60}, T0)
    assert po.receipt_status is domain.QuantityStatus.PARTIAL
    with pytest.raises(FailedPrecondition, match="line 1 .* 46 more would pass the 105 allowed"):
        po.receive({1: 46, 2: 10}, T0)
    assert [x.received_quantity for x in po.lines] == [60, 0], "all lines or none"
    po.receive({1: 45, 2: 10}, T0)
    assert po.receipt_status is domain.QuantityStatus.FULL
    assert [x.receipt_status for x in po.lines] == [domain.QuantityStatus.FULL] * 2


def test_goods_are_received_only_against_an_approved_order():
    po = submitted(("BOLT", 1, "1"))
    with pytest.raises(domain.InvalidTransition):
        po.receive({1: 1}, T0)


def test_an_order_with_goods_received_is_closed_not_cancelled():
    po = submitted(("BOLT", 10, "1"))
    po.approve("ada", "", T0)
    po.receive({1: 1}, T0)
    with pytest.raises(FailedPrecondition, match="close it"):
        po.cancel("no longer needed", T0)
    assert po.close("short delivery accepted", T0) and po.status is POStatus.CLOSED
    assert po.close("again", T0) is False


def test_billing_status_follows_billed_quantities():
    po = submitted(("BOLT", 10, "1"), ("NUT", 5, "1"))
    assert po.billing_status is domain.QuantityStatus.NONE
    po.billed({1: 10}, T0)
    assert po.billing_status is domain.QuantityStatus.PARTIAL
    po.billed({2: 5}, T0)
    assert po.billing_status is domain.QuantityStatus.FULL
    with pytest.raises(ValueError, match="no lines"):
        po.billed({9: 1}, T0)


def test_line_amounts_round_half_up_and_the_total_is_their_sum():
    po = order(("BOLT", 3, "0.3350"), ("NUT", 1, "0.0050"))
    assert [x.amount for x in po.lines] == [Decimal("1.01"), Decimal("0.01")]
    assert po.total == Decimal("1.02")


def test_lines_take_the_supplier_price_and_report_every_problem():
    prices = {"BOLT": SupplierPrice("ACME", "BOLT", Decimal("2.5000"))}
    v = Violations()
    lines = domain.validate_lines(v, (LineInput("BOLT", 4, "", ""), LineInput("NUT", 1, "0.75", "EUR", "2026-12-24")),
                                  "EUR", prices, CONFIG)
    assert not v.items
    assert [(x.line_no, x.unit_price, x.expected_date) for x in lines] == [
        (1, Decimal("2.5000"), ""), (2, Decimal("0.7500"), "2026-12-24")]
    v = Violations()
    domain.validate_lines(v, (LineInput("BOLT", 0, "", ""), LineInput("BOLT", 1, "1.00001", "USD"),
                              LineInput("GHOST", 1, "", "", "2026-02-30"), LineInput("bad sku!", 1, "-1", "EUR")),
                          "EUR", prices, CONFIG)
    assert [x.field for x in v.items] == [
        "lines[0].quantity", "lines[1].sku", "lines[1].unit_price.amount", "lines[1].unit_price.currency_code",
        "lines[2].expected_date", "lines[2].unit_price", "lines[3].sku", "lines[3].unit_price.amount"]


def test_a_shortage_orders_the_reorder_quantity_at_least_the_supplier_minimum():
    price = SupplierPrice("ACME", "BOLT", Decimal("2.5"), min_quantity=100, lead_time_days=3)
    line = domain.replenishment_line(price, 40, dt.date(2026, 12, 30), CONFIG)
    assert (line.quantity, line.receivable_quantity, line.expected_date) == (100, 105, "2027-01-02")
    assert domain.replenishment_line(price, 250, dt.date(2026, 12, 1), CONFIG).quantity == 250


def test_a_second_shortage_adds_to_the_line_of_its_sku_or_a_new_line():
    po = order(("BOLT", 50, "2.5"))
    po.add_quantity(POLine(1, "BOLT", 50, Decimal("2.5"), 52), T0)
    po.add_quantity(POLine(1, "NUT", 10, Decimal("1"), 10), T0)
    assert [(x.line_no, x.sku, x.quantity, x.receivable_quantity) for x in po.lines] == [
        (1, "BOLT", 100, 104), (2, "NUT", 10, 10)]


def test_a_new_supplier_is_validated_whole_and_starts_active():
    good = domain.new_supplier(domain.Supplier(" ACME ".strip(), " Acme ", domain.SupplierStatus.BLOCKED, "EUR", 30,
                                               email="orders@acme.test", contacts=(domain.Contact(" Ann "),)))
    assert (good.name, good.status, good.version, good.contacts[0].name) == ("Acme", domain.SupplierStatus.ACTIVE, 1,
                                                                              "Ann")
    with pytest.raises(InvalidArgument) as bad:
        domain.new_supplier(domain.Supplier("a b", "", domain.SupplierStatus.ACTIVE, "eur", 400, email="x",
                                            webhook_url="ftp://x", contacts=(domain.Contact("", email="y"),)))
    assert [v.field for v in bad.value.violations] == [
        "supplier.supplier_id", "supplier.name", "supplier.currency_code", "supplier.payment_terms_days",
        "supplier.email", "supplier.webhook_url", "supplier.contacts[0].name", "supplier.contacts[0].email"]


@pytest.mark.parametrize(("above", "tolerance", "message"), [
    ("lots", "0.05", "SECOND_APPROVAL_ABOVE"), ("-1", "0.05", "SECOND_APPROVAL_ABOVE"),
    ("100", "five", "OVER_RECEIPT_TOLERANCE"), ("100", "1.5", "OVER_RECEIPT_TOLERANCE"),
    ("100", "NaN", "OVER_RECEIPT_TOLERANCE")])
def test_a_bad_setting_stops_the_service_with_its_name(above, tolerance, message):
    with pytest.raises(ValueError, match=message):
        configured(ERP_PROCUREMENT_SECOND_APPROVAL_ABOVE=above, ERP_PROCUREMENT_OVER_RECEIPT_TOLERANCE=tolerance)
