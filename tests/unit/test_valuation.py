"""Moving weighted average cost (services/inventory/domain.py) and the entries finance posts
for stock movements (services/finance/valuation.py): no I/O."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as ev
from mesh.errors import FailedPrecondition, InvalidArgument
from services.finance import valuation
from services.finance.ledger.domain import Account
from services.inventory import domain
from services.inventory.domain import AdjustStock, Valuation

D = Decimal
EMPTY = Valuation(0, D("0.00"), D(0))


def test_a_receipt_adds_its_purchase_value_and_moves_the_average():
    after, value = domain.receive_into(Valuation(10, D("50.00"), D(5)), 10, D("8.00"))
    assert (value, after) == (D("80.00"), Valuation(20, D("130.00"), D("6.5")))


def test_a_receipt_into_zero_stock_starts_again_at_its_price():
    emptied, _ = domain.take_out(Valuation(3, D("10.00"), D("3.3333333333")), 3)
    assert emptied == Valuation(0, D("0.00"), D("3.3333333333"))  # the last cost stays in force
    after, value = domain.receive_into(emptied, 4, D("2.50"))
    assert (value, after) == (D("10.00"), Valuation(4, D("10.00"), D("2.5")))


def test_an_issue_takes_the_cost_in_force_rounded_half_up_and_the_last_units_take_the_rest():
    val = Valuation(3, D("10.00"), D("3.3333333333"))
    after, cost = domain.take_out(val, 1)
    assert cost == D("3.33") and after.value == D("6.67")
    after, cost = domain.take_out(after, 1)
    assert cost == D("3.34")  # 6.67 / 2 = 3.335, half up
    after, cost = domain.take_out(after, 1)
    assert (cost, after.value) == (D("3.33"), D("0.00"))


def test_an_adjustment_in_comes_in_at_the_cost_in_force_or_the_last_one():
    assert domain.put_in(Valuation(4, D("10.00"), D("2.5")), 2)[1] == D("5.00")
    assert domain.put_in(Valuation(0, D("0.00"), D("2.5")), 2)[1] == D("5.00")
    assert domain.put_in(EMPTY, 2)[1] == D("0.00")


def test_an_opening_cost_is_taken_only_while_no_cost_is_in_force():
    cmd = AdjustStock("r", "SKU", "MAIN", 5, "opening", unit_cost="1.2345")
    assert domain.opening_cost(cmd, EMPTY) == D("1.2345")
    assert domain.put_in(EMPTY, 5, D("1.2345"))[1] == D("6.17")
    with pytest.raises(FailedPrecondition):
        domain.opening_cost(cmd, Valuation(5, D("5.00"), D(1)))
    with pytest.raises(InvalidArgument):
        domain.opening_cost(AdjustStock("r", "SKU", "MAIN", -5, "loss", unit_cost="1.00"), EMPTY)
    with pytest.raises(InvalidArgument):
        domain.opening_cost(AdjustStock("r", "SKU", "MAIN", 5, "opening", unit_cost="-1"), EMPTY)


movements = st.lists(st.one_of(
    st.tuples(st.just("receive"), st.integers(1, 50), st.decimals(D("0"), D("999.9999"), places=4)),
    st.tuples(st.just("out"), st.integers(1, 50)),
    st.tuples(st.just("in"), st.integers(1, 50)),
), max_size=40)


@given(movements)
def test_value_in_minus_value_out_is_what_is_left_and_empty_stock_is_worth_nothing(moves):
    val, value_in, value_out = EMPTY, D(0), D(0)
    for move in moves:
        if move[0] == "receive":
            val, value = domain.receive_into(val, move[1], move[2])
            value_in += value
        elif move[0] == "in":
            val, value = domain.put_in(val, move[1])
            value_in += value
        elif val.quantity:
            qty = min(move[1], val.quantity)
            before = val
            val, cost = domain.take_out(val, qty)
            expected = before.value if qty == before.quantity else domain.to_cents(before.value * qty / before.quantity)
            assert cost == expected
            value_out += cost
        assert val.value >= 0 and (val.quantity > 0 or val.value == 0)
        assert val.value == value_in - value_out


def test_finance_posts_a_shipment_as_cost_of_goods_sold():
    event = ev.StockIssued(order_id="o1", lines=[
        ev.ReservedLine(sku="A", warehouse_code="MAIN", quantity=2, cost=money_pb2.Money(currency_code="EUR",
                                                                                          amount="13.00")),
        ev.ReservedLine(sku="B", warehouse_code="MAIN", quantity=1, cost=money_pb2.Money(currency_code="EUR",
                                                                                          amount="0.50"))])
    entry = valuation.cogs_entry(valuation.issued_command(event), "EUR")
    assert [(x.account, x.debit, x.credit) for x in entry.lines] == [
        (Account.COST_OF_GOODS_SOLD, D("13.50"), D("0.00")), (Account.INVENTORY, D("0.00"), D("13.50"))]


@pytest.mark.parametrize(("amount", "debit", "credit"), [("6.50", Account.INVENTORY, Account.INVENTORY_ADJUSTMENTS),
                                                          ("-6.50", Account.INVENTORY_ADJUSTMENTS, Account.INVENTORY)])
def test_finance_posts_an_adjustment_against_the_inventory_adjustment_account(amount, debit, credit):
    event = ev.StockAdjusted(sku="A", warehouse_code="MAIN", quantity_delta=1, request_id="r1",
                             value_delta=money_pb2.Money(currency_code="EUR", amount=amount))
    entry = valuation.adjustment_entry(valuation.adjusted_command(event), "EUR")
    assert [(x.account, x.debit or x.credit) for x in entry.lines] == [(debit, D("6.50")), (credit, D("6.50"))]
    assert entry.lines[0].debit and entry.lines[1].credit


def test_an_event_amount_that_is_not_in_cents_is_a_fault():
    event = ev.StockAdjusted(sku="A", warehouse_code="MAIN", quantity_delta=1, request_id="r1",
                             value_delta=money_pb2.Money(currency_code="EUR", amount="6.505"))
    with pytest.raises(ValueError):
        valuation.adjusted_command(event)


def test_a_stock_adjusted_from_before_valuation_posts_nothing_and_is_not_a_fault():
    class NoPostings:
        def claim(self, reference):
            raise AssertionError("nothing to claim")

    class Uow:
        stock_postings = NoPostings()

    old = valuation.adjusted_command(ev.StockAdjusted(sku="A", warehouse_code="MAIN", quantity_delta=3))
    assert valuation.on_stock_adjusted(Uow(), old, "EUR") is False
    valued = valuation.adjusted_command(ev.StockAdjusted(sku="A", warehouse_code="MAIN", quantity_delta=3,
                                                         value_delta=money_pb2.Money(currency_code="EUR",
                                                                                     amount="1.00")))
    with pytest.raises(ValueError):
        valuation.on_stock_adjusted(Uow(), valued, "EUR")
