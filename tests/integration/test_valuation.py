"""Stock valuation at moving weighted average cost, the postings it drives in finance, and
the reports on top: one walk through opening stock, a goods receipt, a shipment and
adjustments, with account 1200 tied to the valuation after every step; replays post
nothing twice; the reports page and answer as of a moment."""
from __future__ import annotations

import datetime as dt
import io
import json
import threading
import time
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2

from erp.common.v1 import paging_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp_client.client import Line
from mesh.events.envelope import decode
from mesh.events.transport import Ack, Delivery
from tests import support
from tests.integration import valuation_checks as checks
from tests.integration.conftest import running_mesh


@pytest.fixture(scope="module")
def valued_mesh(embedded_pg, embedded_redis, tmp_path_factory):
    with support.fresh_database(embedded_pg) as url:
        engines = support.Engines(url, embedded_redis, "postgres", namespace="erptest-valuation")
        with running_mesh(engines, tmp_path_factory.mktemp("valuation")) as (client, started):
            yield client, started


def opening(client, sku: str, wh: str, qty: int, unit_cost: str, request_id: str) -> inv.StockLevel:
    return client.inventory.AdjustStock(inv.AdjustStockRequest(
        request_id=request_id, sku=sku, warehouse_code=wh, quantity_delta=qty, reason="opening stock",
        unit_cost=unit_cost)).stock


def line_of(client, sku: str, wh: str = "MAIN") -> tuple[int, str, str]:
    lines, _ = checks.valuation(client, sku_prefix=sku, warehouse_code=wh)
    [found] = [x for x in lines if x.sku == sku]
    return found.quantity, found.unit_cost.amount, found.value.amount


def stamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def test_receipts_shipments_and_adjustments_keep_1200_equal_to_the_valuation(valued_mesh):
    client, started = valued_mesh
    client.create_warehouse("MAIN", "Main")
    for sku in ("LAMP", "SOFA"):
        client.create_product(sku, sku)
    client.create_customer("CUST-V", "Valued customer", "100000.00", "EUR")

    # Opening stock names its cost once; then adjustments are valued at the cost in force.
    opening(client, "LAMP", "MAIN", 10, "5.00", "open-lamp")
    assert line_of(client, "LAMP") == (10, "5.00", "50.00")
    with pytest.raises(grpc.RpcError) as refused:
        opening(client, "LAMP", "MAIN", 1, "7.00", "open-lamp-again")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert checks.assert_account_1200_is_the_valuation(client) == Decimal("50.00")
    before_receipt = dt.datetime.now(dt.UTC)
    time.sleep(0.05)

    # A goods receipt adds its quantity at the purchase price: (50 + 10 x 8) / 20 = 6.50.
    client.create_supplier("LIGHTS", "Lights Ltd")
    client.set_supplier_price("LIGHTS", "LAMP", "8.00")
    order = client.create_purchase_order("LIGHTS", [("LAMP", 10, "8.00")])
    client.submit_purchase_order(order.purchase_order_id, "sam")
    client.approve_purchase_order(order.purchase_order_id, "ada")
    client.receive_goods(order.purchase_order_id, [(1, 10)], "goods-in")
    client.wait_for(lambda: line_of(client, "LAMP"), lambda x: x == (20, "6.50", "130.00"))
    assert checks.assert_account_1200_is_the_valuation(client) == Decimal("130.00")

    # A shipment takes 3 out at 6.50: cost 19.50, Dr 5000 / Cr 1200.
    sale = client.wait_for_order(client.place_order("CUST-V", [Line("LAMP", 3, "20.00")]).order_id)
    client.wait_for(lambda: client.invoices_for_order(sale.order_id), lambda found: len(found) == 1)
    client.mark_shipped(sale.order_id)
    client.wait_for(lambda: checks.cost_posted(client, sale.order_id), lambda cost: cost == Decimal("19.50"))
    assert line_of(client, "LAMP") == (17, "6.50", "110.50")
    assert checks.assert_account_1200_is_the_valuation(client) == Decimal("110.50")

    # A loss of 1 at 6.50: Dr 5200 / Cr 1200; a find of 2 at 6.50: Dr 1200 / Cr 5200.
    client.adjust_stock("LAMP", "MAIN", -1, reason="broken", request_id="lamp-broken")
    client.adjust_stock("LAMP", "MAIN", 2, reason="found", request_id="lamp-found")
    assert line_of(client, "LAMP") == (18, "6.50", "117.00")
    assert checks.assert_account_1200_is_the_valuation(client) == Decimal("117.00")
    # 5200: the opening stock's 50.00 and the find's 13.00 credited, the loss's 6.50 debited.
    client.wait_for(lambda: checks.account_balance(client, "5200"), lambda b: b == Decimal("-56.50"))

    # A SKU never valued comes in at zero, and stays out of the account.
    client.adjust_stock("SOFA", "MAIN", 4, reason="found in the back")
    assert line_of(client, "SOFA") == (4, "0.00", "0.00")
    assert checks.assert_account_1200_is_the_valuation(client) == Decimal("117.00")

    assert checks.assert_shipments_cost_the_cost_in_force(started) == 1
    checks.assert_margin_per_order(client, [sale.order_id])
    report = checks.sales_for(client, order_id=sale.order_id, group_by=fin.SALES_GROUPING_SKU)
    assert [(r.key, r.revenue.amount, r.cost_of_goods_sold.amount, r.gross_margin.amount, r.margin_percent)
            for r in report.rows] == [("LAMP", "60.00", "19.50", "40.50", "67.50")]

    # As of before the receipt, the valuation is the opening stock.
    earlier = client.inventory.GetStockValuation(inv.GetStockValuationRequest(as_of=stamp(before_receipt)))
    assert [(x.sku, x.quantity, x.unit_cost.amount, x.value.amount) for x in earlier.lines] == [
        ("LAMP", 10, "5.00", "50.00")]
    assert earlier.total_value.amount == "50.00"


def test_replayed_and_duplicated_movements_post_nothing_twice(valued_mesh):
    client, started = valued_mesh
    before = {x.account: (x.debit.amount, x.credit.amount) for x in client.trial_balance("EUR").lines}
    consumer = checks.finance_consumer(started)
    replayed = 0
    for event_type in ("erp.events.v1.StockIssued", "erp.events.v1.StockAdjusted"):
        for body in checks.outbox_events(started, event_type):
            event = decode(body)
            # The same event again (a redelivery), then the same fact under a new event id (a replay).
            assert consumer.handle(Delivery(bytes(body), 0, None)) == Ack()
            again = type(event.envelope)()
            again.CopyFrom(event.envelope)
            again.event_id = f"{event.envelope.event_id[:-4]}beef"
            assert consumer.handle(Delivery(again.SerializeToString(), 0, None)) == Ack()
            replayed += 1
    assert replayed >= 4
    after = {x.account: (x.debit.amount, x.credit.amount) for x in client.trial_balance("EUR").lines}
    assert after == before
    checks.assert_account_1200_is_the_valuation(client)


def test_the_reports_page_and_total_over_every_page(valued_mesh):
    client, _ = valued_mesh
    first = client.inventory.GetStockValuation(inv.GetStockValuationRequest(page=paging_pb2.PageRequest(page_size=1)))
    assert len(first.lines) == 1 and first.next_page_token
    lines, total = checks.valuation(client)
    assert [x.sku for x in lines] == ["LAMP", "SOFA"] and first.total_value.amount == f"{total:.2f}"
    by_customer = checks.sales_for(client, group_by=fin.SALES_GROUPING_CUSTOMER)
    assert [r.key for r in by_customer.rows][:1] == ["CUST-V"]
    by_period = checks.sales_for(client, group_by=fin.SALES_GROUPING_PERIOD)
    assert [r.key for r in by_period.rows] == [dt.datetime.now(dt.UTC).strftime("%Y-%m")]
    assert by_period.totals.gross_margin.amount == by_customer.totals.gross_margin.amount
    aging = client.finance.GetPayablesAging(fin.GetPayablesAgingRequest())
    assert aging.totals.total.amount == "0.00"  # nothing billed yet
    with pytest.raises(grpc.RpcError) as bad:
        checks.sales_for(client, currency_code="euro")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_erp_report_prints_tables_json_and_csv_and_the_demo_ties_1200(valued_mesh, monkeypatch, capsys):
    client, started = valued_mesh
    from erp_client import cli, reports

    for name in ("TARGET", "TOKEN", "TOKEN_FILE", "TOKEN_URL"):
        monkeypatch.delenv(f"ERP_{name}", raising=False)
    for name in ("inventory", "finance"):
        monkeypatch.setenv(f"ERP_{name.upper()}_TARGET", f"127.0.0.1:{started[name].port}")
    capsys.readouterr()
    assert cli.main(["report", "valuation", "--output", "csv"]) == cli.OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "warehouse,sku,quantity,unit_cost,value"
    assert lines[-1].startswith("TOTAL,,") and lines[-1].endswith(f",{checks.valuation(client)[1]:.2f}")
    assert cli.main(["report", "sales", "--by", "customer", "--top", "1", "-o", "json"]) == cli.OK
    data = json.loads(capsys.readouterr().out)
    assert [row["customer"] for row in data["rows"]] == ["CUST-V"] and data["totals"]["customer"] == "TOTAL"
    assert cli.main(["report", "payables-aging"]) == cli.OK
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["supplier", "current", "days_1_30", "days_31_60", "days_61_90", "over_90", "total"]
    assert cli.main(["report", "receivables-aging", "--as-of", "2026-01-01"]) == cli.OK
    capsys.readouterr()
    assert cli.main(["report", "trial-balance", "-o", "json"]) == cli.OK
    balance = json.loads(capsys.readouterr().out)
    assert {row["account"] for row in balance["rows"]} >= {"1200", "5000", "5200"}
    assert balance["totals"]["debit"] == balance["totals"]["credit"]
    with pytest.raises(SystemExit) as bad:
        cli.main(["report", "valuation", "--as-of", "yesterday"])
    assert bad.value.code == cli.USAGE
    out = io.StringIO()
    assert reports.demo(client, out=out)
    assert "equals the stock valuation" in out.getvalue() and "Payables aging" in out.getvalue()


def test_supplier_performance_counts_receipts_against_promised_dates_and_bills_against_order_prices(valued_mesh):
    from erp.common.v1 import money_pb2
    from erp.procurement.v1 import procurement_pb2 as proc

    client, _ = valued_mesh
    client.create_supplier("SLOW", "Slow Supply")
    today = dt.datetime.now(dt.UTC).date()
    order = client.procurement.CreatePurchaseOrder(proc.CreatePurchaseOrderRequest(
        request_id="po-slow-1", supplier_id="SLOW", warehouse_code="MAIN", lines=[
            proc.PurchaseOrderLine(sku="LAMP", quantity=4, expected_date=(today - dt.timedelta(days=1)).isoformat(),
                                   unit_price=money_pb2.Money(currency_code="EUR", amount="6.50")),
            proc.PurchaseOrderLine(sku="SOFA", quantity=2, expected_date=(today + dt.timedelta(days=1)).isoformat(),
                                   unit_price=money_pb2.Money(currency_code="EUR", amount="100.00"))])).purchase_order
    client.submit_purchase_order(order.purchase_order_id, "sam")
    client.approve_purchase_order(order.purchase_order_id, "ada")
    client.receive_goods(order.purchase_order_id, [(1, 4), (2, 2)], "goods-in")
    client.wait_for(lambda: checks.account_balance(client, "2100"), lambda b: b == Decimal("-306.00"))
    bill = client.record_supplier_bill(order.purchase_order_id, "SLOW-1", [(1, 4, "6.60"), (2, 2, "100.00")])
    assert bill.status == fin.SUPPLIER_BILL_STATUS_POSTED  # within the 2% price tolerance

    [row] = client.finance.GetSupplierPerformance(fin.GetSupplierPerformanceRequest(supplier_id="SLOW")).rows
    assert (row.receipt_lines_promised, row.receipt_lines_on_time, row.on_time_percent) == (2, 1, "50.00")
    assert (row.ordered_quantity, row.received_quantity, row.billed_quantity) == (6, 6, 6)
    assert (row.billed_at_order_prices.amount, row.billed_amount.amount, row.price_variance.amount) == (
        "226.00", "226.40", "0.40")
    everyone = client.finance.GetSupplierPerformance(fin.GetSupplierPerformanceRequest()).rows
    assert [r.supplier_id for r in everyone] == ["LIGHTS", "SLOW"]
    assert checks.assert_account_1200_is_the_valuation(client)
    from erp_client import reports

    rows, _ = reports.supplier_performance(client, "SLOW")
    assert rows[0]["on_time"] == "1/2" and rows[0]["price_variance"] == "0.40"
    assert reports.render(rows, {}, "csv").splitlines()[0].startswith("supplier,on_time,on_time_percent,")


def test_a_balance_whose_value_drifted_from_the_ledger_is_found_and_rebuilt(valued_mesh):
    from services.inventory.adapters import ledger_mismatches, rebuild_balances

    client, started = valued_mesh
    before = line_of(client, "LAMP")
    with started["inventory"].runtime.engine.begin() as conn:
        conn.execute(sa.text("UPDATE stock_balances SET value = value + 1 WHERE sku = 'LAMP'"))
        assert [row[:2] for row in ledger_mismatches(conn)] == [("LAMP", "MAIN")]
        assert rebuild_balances(conn) == 1
        assert ledger_mismatches(conn) == []
    assert line_of(client, "LAMP") == before


def test_one_shipment_handled_by_both_replicas_at_once_posts_its_cost_once(valued_mesh):
    """Forced interleaving: the order's advisory lock is held while two consumers (the two
    replicas) take the same StockIssued under two event ids (a redelivery racing the first);
    both wait, then one posts and the other finds the posting. Last in this module: the cost
    posted here has no stock behind it."""
    from erp.common.v1 import money_pb2
    from erp.events.v1 import inventory_events_pb2 as inv_ev
    from mesh import locks
    from mesh.events import envelope

    _, started = valued_mesh
    engine = started["finance"].runtime.engine
    payload = inv_ev.StockIssued(order_id="race-1", lines=[inv_ev.ReservedLine(
        sku="LAMP", warehouse_code="MAIN", quantity=2, cost=money_pb2.Money(currency_code="EUR", amount="13.00"),
        unit_cost="6.50")])
    bodies = [envelope.build(source="inventory", aggregate_type="reservation", aggregate_id="race-1",
                             aggregate_version=3, payload=payload).SerializeToString() for _ in range(2)]
    replicas = [checks.finance_consumer(started) for _ in range(2)]
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": locks.aggregate_key("finance", "order",
                                                                                          "race-1")})
    outcomes: list = []
    threads = [threading.Thread(target=lambda c=c, b=b: outcomes.append(c.handle(Delivery(b, 0, None))))
               for c, b in zip(replicas, bodies, strict=True)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert outcomes == []  # both wait for the order's lock
    holder.rollback()
    holder.close()
    for thread in threads:
        thread.join(20)
    assert outcomes == [Ack(), Ack()]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM journal_entries WHERE reference = 'race-1'")).scalar() == 1
        assert conn.execute(sa.text("SELECT quantity, cost FROM cost_of_sales WHERE order_id = 'race-1'")).all() == [
            (2, Decimal("13.00"))]
