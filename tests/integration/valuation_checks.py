"""The valuation invariants, checked against a running mesh (shared by the valuation test and
the property-based order-to-cash and procure-to-pay tests):
- account 1200's balance equals the stock valuation report's total;
- every shipment's cost is its quantity times the moving average cost in force when it
  shipped (recomputed here from the stock ledger, entry by entry);
- revenue minus cost of goods sold per order (from the invoice and the journal) equals the
  gross margin the sales report shows for it."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import sqlalchemy as sa

from erp.common.v1 import paging_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from mesh.events.consumer import Consumer
from services.finance import events as finance_events
from services.finance.ledger.domain import FinanceConfig

CENT = Decimal("0.01")


def account_balance(client, account: str, currency: str = "EUR") -> Decimal:
    lines = client.trial_balance(currency).lines
    return next((Decimal(x.balance.amount) for x in lines if x.account == account), Decimal("0.00"))


def valuation(client, **filters) -> tuple[list[inv.StockValuationLine], Decimal]:
    """Every line of the stock valuation report (all pages), and its total value."""
    lines, token, total = [], "", None
    while True:
        page = client.inventory.GetStockValuation(inv.GetStockValuationRequest(
            page=paging_pb2.PageRequest(page_size=2, page_token=token), **filters))
        lines += page.lines
        total = Decimal(page.total_value.amount)
        token = page.next_page_token
        if not token:
            return lines, total


def assert_account_1200_is_the_valuation(client, timeout: float = 30.0) -> Decimal:
    """Waits for finance to have posted every movement, then checks the tie to the cent;
    returns the value."""
    def both():
        return account_balance(client, "1200"), valuation(client)

    balance, (lines, total) = client.wait_for(both, lambda b: b[0] == b[1][1], timeout=timeout)
    assert total == sum((Decimal(x.value.amount) for x in lines), Decimal(0)), "the total is the sum of the lines"
    return balance


def assert_shipments_cost_the_cost_in_force(started) -> int:
    """Replays the stock ledger per SKU and warehouse: each issue took out quantity x (value /
    quantity) before it, rounded half up to cents (all that was left for the last units), and
    the balances' values are the ledger's sums. Returns how many issues were checked."""
    checked = 0
    with started["inventory"].runtime.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sku, warehouse_code, kind, on_hand_delta, value_delta FROM stock_ledger "
                                    "ORDER BY id")).all()
        balances = {(r.sku, r.warehouse_code): (r.on_hand, r.value) for r in conn.execute(sa.text(
            "SELECT sku, warehouse_code, on_hand, value FROM stock_balances"))}
    running: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for row in rows:
        key = (row.sku, row.warehouse_code)
        quantity, value = running.get(key, (0, Decimal(0)))
        if row.kind == "issue":
            taken = -row.on_hand_delta
            expected = value if taken == quantity else (value * taken / quantity).quantize(CENT, ROUND_HALF_UP)
            assert -row.value_delta == expected, f"issue of {taken} {key} cost {-row.value_delta}, not {expected}"
            checked += 1
        running[key] = (quantity + row.on_hand_delta, value + row.value_delta)
        assert running[key][1] >= 0 and (running[key][0] > 0 or running[key][1] == 0), f"{key}: {running[key]}"
    for key, (on_hand, value) in balances.items():
        assert running.get(key, (0, Decimal(0))) == (on_hand, value), f"{key}'s balance is not its ledger's sum"
    return checked


def cost_posted(client, order_id: str) -> Decimal:
    entries = client.finance.ListJournalEntries(fin.ListJournalEntriesRequest(reference=order_id)).entries
    return sum((Decimal(line.debit.amount) for e in entries for line in e.lines if line.account == "5000"),
               Decimal(0))


def sales_for(client, **filters) -> fin.GetSalesReportResponse:
    return client.finance.GetSalesReport(fin.GetSalesReportRequest(**filters))


def assert_margin_per_order(client, order_ids) -> None:
    """Revenue (the invoice's subtotal, nothing once credited) minus the cost posted for
    the order's shipment is the gross margin the sales report shows for the order."""
    for order_id in order_ids:
        invoices = client.invoices_for_order(order_id)
        revenue = sum((Decimal(i.subtotal.amount) for i in invoices if i.status != fin.INVOICE_STATUS_CREDITED),
                      Decimal(0))
        report = sales_for(client, order_id=order_id, group_by=fin.SALES_GROUPING_SKU).totals
        cost = cost_posted(client, order_id)
        assert Decimal(report.revenue.amount) == revenue, order_id
        assert Decimal(report.cost_of_goods_sold.amount) == cost, order_id
        assert Decimal(report.gross_margin.amount) == revenue - cost, order_id


def finance_consumer(started) -> Consumer:
    running = started["finance"]
    config = FinanceConfig.from_settings(running.runtime.settings)
    return Consumer(finance_events.build(config), running.runtime.uow, 3, 20)


def outbox_events(started, event_type: str) -> list[bytes]:
    with started["inventory"].runtime.engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT envelope FROM outbox WHERE event_type = :t ORDER BY id"),
                                 {"t": event_type}).scalars())
