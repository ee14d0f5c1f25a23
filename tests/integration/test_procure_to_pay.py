"""Procure to pay across the services, on every engine set: sales orders drive stock below
its reorder point, procurement raises the draft, it is approved and received in two
deliveries, finance matches and pays the supplier's bill; stock, the purchase order and
the trial balance agree at the end."""
from __future__ import annotations

from decimal import Decimal

from erp.finance.v1 import finance_pb2 as fin
from erp.orders.v1 import orders_pb2 as ord_pb
from erp.procurement.v1 import procurement_pb2 as pb
from erp_client.client import Line
from tests.integration import valuation_checks
from tests.integration.test_order_flow import assert_ledger_agrees, stock_up


def balances(client) -> dict[str, Decimal]:
    balance = client.trial_balance("EUR")
    assert balance.total_debit.amount == balance.total_credit.amount, "the journal balances"
    return {row.account: Decimal(row.balance.amount) for row in balance.lines}


def test_a_shortage_is_ordered_received_billed_and_paid(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 30})
    client.set_reorder_point("CHAIR", "MAIN", 25, 40)
    client.create_supplier("WOOD", "Nordic Wood", email="sales@wood.test", payment_terms_days=30)
    client.set_supplier_price("WOOD", "CHAIR", "40.00", preferred=True, min_quantity=10, lead_time_days=14)

    # Two sales orders take available stock from 30 to 24, below the reorder point of 25.
    for _ in range(2):
        order = client.wait_for_order(client.place_order("CUST-1", [Line("CHAIR", 3, "89.90")]).order_id)
        assert order.status in (ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_INVOICED)
    [draft] = client.wait_for(lambda: client.purchase_orders("WOOD"), lambda found: len(found) == 1)
    assert draft.origin == pb.PURCHASE_ORDER_ORIGIN_REPLENISHMENT and draft.status == pb.PURCHASE_ORDER_STATUS_DRAFT
    assert [(x.sku, x.quantity, x.unit_price.amount) for x in draft.lines] == [("CHAIR", 40, "40.00")]

    client.submit_purchase_order(draft.purchase_order_id, "buyer")
    approved = client.approve_purchase_order(draft.purchase_order_id, "manager")
    assert approved.status == pb.PURCHASE_ORDER_STATUS_APPROVED
    first = client.receive_goods(draft.purchase_order_id, [(1, 15)], "goods-in").purchase_order
    assert first.receipt_status == pb.RECEIPT_STATUS_PARTIAL
    second = client.receive_goods(draft.purchase_order_id, [(1, 25)], "goods-in").purchase_order
    assert second.receipt_status == pb.RECEIPT_STATUS_FULL
    stock = client.wait_for(lambda: client.get_stock("CHAIR", "MAIN"), lambda s: s.on_hand == 70)
    assert (stock.reserved, stock.available) == (6, 64)

    # Finance booked both receipts at the order's price: Dr inventory / Cr goods received not invoiced.
    client.wait_for(lambda: balances(client), lambda b: b.get("2100") == Decimal("-1600.00"))
    bill = client.record_supplier_bill(draft.purchase_order_id, "WOOD-INV-77", [(1, 40, "40.00")])
    assert bill.status == fin.SUPPLIER_BILL_STATUS_POSTED and bill.total.amount == "1600.00"
    after_bill = balances(client)
    assert after_bill["2100"] == 0 and after_bill["2000"] == Decimal("-1600.00")
    paid = client.pay_supplier_bill(bill.bill_id, "1600.00").bill
    assert paid.status == fin.SUPPLIER_BILL_STATUS_PAID

    done = client.wait_for(lambda: client.get_purchase_order(draft.purchase_order_id),
                           lambda po: po.billing_status == pb.BILLING_STATUS_FULL)
    assert [(x.received_quantity, x.billed_quantity) for x in done.lines] == [(40, 40)]
    final = balances(client)
    assert final["1200"] == Decimal("1600.00") and final["2000"] == 0 and final["2100"] == 0
    assert final["1000"] == Decimal("-1600.00")  # the cash paid to the supplier (no customer has paid yet)
    assert_ledger_agrees(started)
    # The opening 30 had no cost; the 40 received came in at 40.00: the valuation is the account.
    assert valuation_checks.assert_account_1200_is_the_valuation(client) == Decimal("1600.00")
    lines, _ = valuation_checks.valuation(client, sku_prefix="CHAIR")
    assert [(x.quantity, x.unit_cost.amount, x.value.amount) for x in lines] == [(70, "22.8571", "1600.00")]
