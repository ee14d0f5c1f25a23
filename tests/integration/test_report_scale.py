"""The reports over a year of a 100,000-order data set answer in seconds: finance and inventory
run as services on the embedded engines, their tables are filled straight by SQL (100,000
invoices of 2 lines each over 2025, their shipments' costs; a stock ledger of 100,000
receipts and 200,000 issues), and each report is timed through gRPC, every page read.
The figures are printed (pytest -s shows them)."""
from __future__ import annotations

import datetime as dt
import time

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import timestamp_pb2

from erp.common.v1 import paging_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.finance.v1 import finance_pb2_grpc
from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc
from mesh import service
from services.finance.service import spec as finance_spec
from services.inventory.service import spec as inventory_spec
from tests import support

ORDERS = 100_000
CUSTOMERS = 2_000
SKUS = 500
BUDGET_SECONDS = 10.0

SEED_FINANCE = f"""
INSERT INTO invoices (invoice_id, number, number_year, number_seq, order_id, customer_id, currency_code, subtotal,
                      tax, total, tax_rate, order_amount, amount_paid, amount_credited, state, issued_at, due_at,
                      due_date, version)
SELECT 'inv-' || n, 'INV-2025-' || lpad(n::text, 6, '0'), 2025, n, 'ord-' || n, 'CUST-' || (n % {CUSTOMERS}), 'EUR',
       30.00, 6.00, 36.00, 0.20, 30.00, 0, 0, 'unpaid', at, at + interval '30 days', (at + interval '30 days')::date, 1
FROM (SELECT n, timestamptz '2025-01-01 00:00:00+00' + (n * interval '315 seconds') AS at
      FROM generate_series(1, {ORDERS}) AS n) s;
INSERT INTO invoice_lines (invoice_id, line_no, sku, quantity, unit_price, amount)
SELECT 'inv-' || n, l, 'SKU-' || ((n * 7 + l) % {SKUS}), l, 10.00, 10.00 * l
FROM generate_series(1, {ORDERS}) AS n, generate_series(1, 2) AS l;
INSERT INTO cost_of_sales (order_id, sku, warehouse_code, quantity, cost, currency_code, shipped_at)
SELECT 'ord-' || n, 'SKU-' || ((n * 7 + l) % {SKUS}), 'MAIN', l, 6.50 * l, 'EUR',
       timestamptz '2025-01-01 00:00:00+00' + (n * interval '315 seconds') + interval '1 day'
FROM generate_series(1, {ORDERS}) AS n, generate_series(1, 2) AS l;
ANALYZE invoices; ANALYZE invoice_lines; ANALYZE cost_of_sales;
"""

SEED_INVENTORY = f"""
INSERT INTO products (sku, name, unit_of_measure) SELECT 'SKU-' || n, 'Product ' || n, 'EA'
FROM generate_series(0, {SKUS - 1}) AS n;
INSERT INTO warehouses (code, name) VALUES ('MAIN', 'Main');
INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, reason, reference, value_delta,
                          unit_cost, created_at)
SELECT 'SKU-' || (n % {SKUS}), 'MAIN', 'receipt', 10, 0, 'goods received', 'r-' || n, 65.00, 6.5,
       timestamptz '2025-01-01 00:00:00+00' + (n * interval '300 seconds')
FROM generate_series(1, {ORDERS}) AS n;
INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, reason, reference, value_delta,
                          unit_cost, created_at)
SELECT 'SKU-' || (n % {SKUS}), 'MAIN', 'issue', -3, 0, 'shipped', 'ord-' || n, -19.50, 6.5,
       timestamptz '2025-01-01 00:00:00+00' + (n * interval '150 seconds') + interval '1 day'
FROM generate_series(1, {2 * ORDERS}) AS n;
INSERT INTO stock_balances (sku, warehouse_code, on_hand, reserved, version, value, unit_cost)
SELECT sku, warehouse_code, sum(on_hand_delta), 0, count(*), sum(value_delta), 6.5
FROM stock_ledger GROUP BY sku, warehouse_code;
ANALYZE stock_ledger; ANALYZE stock_balances;
"""


def stamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def timed(read) -> tuple[float, int]:
    """(seconds, rows) to read every page of a report."""
    start, rows, token = time.perf_counter(), 0, ""
    while True:
        count, token = read(token)
        rows += count
        if not token:
            return time.perf_counter() - start, rows


@pytest.fixture(scope="module")
def seeded(embedded_pg, embedded_redis, tmp_path_factory):
    with support.fresh_database(embedded_pg) as url:
        engines = support.Engines(url, embedded_redis, "postgres", namespace="erptest-report-scale")
        started = []
        try:
            for spec, seed in ((finance_spec(), SEED_FINANCE), (inventory_spec(), SEED_INVENTORY)):
                running = service.start(spec, support.settings_for(spec.name, engines,
                                                                   tmp_path_factory.mktemp(spec.name)))
                started.append(running)
                with running.runtime.engine.begin() as conn:
                    for statement in seed.split(";"):
                        if statement.strip():
                            conn.execute(sa.text(statement))
            finance_channel = grpc.insecure_channel(f"127.0.0.1:{started[0].port}")
            inventory_channel = grpc.insecure_channel(f"127.0.0.1:{started[1].port}")
            yield (finance_pb2_grpc.FinanceServiceStub(finance_channel),
                   inventory_pb2_grpc.InventoryServiceStub(inventory_channel))
            finance_channel.close()
            inventory_channel.close()
        finally:
            support.stop_all(started)


YEAR = {"from_time": stamp(dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        "to_time": stamp(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))}


@pytest.mark.parametrize("grouping", ["PERIOD", "CUSTOMER", "SKU"])
def test_a_years_sales_report_over_100000_orders_answers_in_seconds(seeded, grouping):
    finance, _ = seeded
    totals = {}

    def read(token: str) -> tuple[int, str]:
        page = finance.GetSalesReport(fin.GetSalesReportRequest(
            group_by=fin.SalesGrouping.Value(f"SALES_GROUPING_{grouping}"),
            page=paging_pb2.PageRequest(page_size=1000, page_token=token), **YEAR), timeout=60)
        totals["revenue"], totals["margin"] = page.totals.revenue.amount, page.totals.gross_margin.amount
        return len(page.rows), page.next_page_token

    seconds, rows = timed(read)
    print(f"\nsales report by {grouping.lower()}, a year of {ORDERS} orders: {rows} rows in {seconds:.2f} s")
    assert rows == {"PERIOD": 12, "CUSTOMER": CUSTOMERS, "SKU": SKUS}[grouping]
    # 100,000 orders x 30.00; the last orders of the year ship (cost) in the next one.
    assert totals["revenue"].startswith("30") and totals["margin"]
    assert seconds < BUDGET_SECONDS


@pytest.mark.parametrize("as_of", [None, dt.datetime(2025, 7, 1, tzinfo=dt.UTC)])
def test_the_stock_valuation_over_300000_ledger_entries_answers_in_seconds(seeded, as_of):
    _, inventory = seeded

    def read(token: str) -> tuple[int, str]:
        page = inventory.GetStockValuation(inv.GetStockValuationRequest(
            as_of=stamp(as_of) if as_of else None, page=paging_pb2.PageRequest(page_size=1000, page_token=token)),
            timeout=60)
        return len(page.lines), page.next_page_token

    seconds, rows = timed(read)
    print(f"\nstock valuation {'as of ' + as_of.date().isoformat() if as_of else 'now'}, "
          f"{3 * ORDERS} ledger entries: {rows} lines in {seconds:.2f} s")
    assert rows == SKUS and seconds < BUDGET_SECONDS
