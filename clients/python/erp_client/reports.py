"""`erp report ...`: the mesh's reports as a table, JSON or CSV.

    erp report valuation [--as-of 2026-11-30T23:59:59Z] [--warehouse MAIN] [--sku-prefix CH]
    erp report sales [--by period|customer|sku] [--from ISO] [--to ISO] [--customer C] [--order O] [--top N]
    erp report payables-aging [--as-of ISO]
    erp report receivables-aging [--as-of ISO]
    erp report supplier-performance [--supplier S]
    erp report trial-balance [--period 2026-11]

Every report reads all its pages (--top N: only the first N rows, which for sales by customer
or SKU are the top ones by revenue) and ends with a totals row. --output table (the default
here), json (rows and totals, amounts as decimal strings) or csv (a header, the rows, then the
totals row), given after `report`.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
from decimal import Decimal

from google.protobuf import timestamp_pb2

from erp.common.v1 import paging_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv

OUTPUTS = ("table", "json", "csv")
GROUPINGS = {"period": fin.SALES_GROUPING_PERIOD, "customer": fin.SALES_GROUPING_CUSTOMER,
             "sku": fin.SALES_GROUPING_SKU}
BUCKETS = ("current", "days_1_30", "days_31_60", "days_61_90", "over_90", "total")
PAGE = 500


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an ISO 8601 date or time, e.g. 2026-11-30") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _stamp(moment: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    if moment is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(moment)
    return ts


def add_parser(sub, connection_options) -> None:
    """Registers `report` under the CLI's subcommands; connection_options(default_output)
    is the CLI's parent parser of the connection flags."""
    common = connection_options("table")
    for action in common._actions:  # the reports also speak CSV
        if "--output" in action.option_strings:
            action.choices = OUTPUTS
            action.help = "table (default), json, or csv"
    report = sub.add_parser("report", help="stock valuation, sales and margin, payables and receivables aging")
    kinds = report.add_subparsers(dest="action", required=True)
    valuation = kinds.add_parser("valuation", parents=[common],
                                 help="quantity, moving average unit cost and value per SKU and warehouse")
    valuation.add_argument("--as-of", type=_moment, help="value the stock as it was then (default: now)")
    valuation.add_argument("--warehouse", default="")
    valuation.add_argument("--sku-prefix", default="")
    valuation.add_argument("--top", type=int, default=0, help="only the first N lines")
    sales = kinds.add_parser("sales", parents=[common],
                             help="revenue, cost of goods sold and gross margin by period, customer or SKU")
    sales.add_argument("--by", choices=tuple(GROUPINGS), default="period")
    sales.add_argument("--from", dest="from_time", type=_moment, help="from this moment (inclusive)")
    sales.add_argument("--to", dest="to_time", type=_moment, help="before this moment (exclusive)")
    sales.add_argument("--customer", default="")
    sales.add_argument("--order", default="")
    sales.add_argument("--currency", default="")
    sales.add_argument("--top", type=int, default=0,
                       help="only the first N rows: the top customers or products by revenue")
    performance = kinds.add_parser("supplier-performance", parents=[common],
                                   help="receipts on time against promised dates, quantities and prices billed "
                                        "against ordered, per supplier")
    performance.add_argument("--supplier", default="")
    performance.add_argument("--currency", default="")
    balance = kinds.add_parser("trial-balance", parents=[common],
                               help="debits, credits and balance per account, now or at the end of a period")
    balance.add_argument("--period", default="", help="a closed or open month, YYYY-MM (default: now)")
    balance.add_argument("--currency", default="")
    for name, what in (("payables-aging", "what is owed to each supplier"),
                       ("receivables-aging", "what each customer owes")):
        aging = kinds.add_parser(name, parents=[common], help=f"{what}, by how long it is overdue")
        aging.add_argument("--as-of", type=_moment)
        aging.add_argument("--currency", default="")


# ---------------------------------------------------------------- reading the reports


def _amount(money) -> str:
    return money.amount or "0.00"


def valuation(erp, as_of: dt.datetime | None = None, warehouse: str = "", sku_prefix: str = "",
              top: int = 0) -> tuple[list[dict], dict]:
    rows, token, totals = [], "", {}
    while True:
        page = erp.inventory.GetStockValuation(inv.GetStockValuationRequest(
            page=paging_pb2.PageRequest(page_size=PAGE, page_token=token), as_of=_stamp(as_of),
            warehouse_code=warehouse, sku_prefix=sku_prefix), timeout=erp.timeout)
        rows += [{"warehouse": x.warehouse_code, "sku": x.sku, "quantity": x.quantity,
                  "unit_cost": _amount(x.unit_cost), "value": _amount(x.value)} for x in page.lines]
        totals = {"warehouse": "TOTAL", "sku": "", "quantity": page.total_quantity, "unit_cost": "",
                  "value": _amount(page.total_value)}
        token = page.next_page_token
        if not token or (top and len(rows) >= top):
            return rows[:top] if top else rows, totals


def _sales_row(key_name: str, row) -> dict:
    return {key_name: row.key, "quantity": row.quantity, "revenue": _amount(row.revenue),
            "cogs": _amount(row.cost_of_goods_sold), "gross_margin": _amount(row.gross_margin),
            "margin_percent": row.margin_percent}


def sales(erp, by: str = "period", from_time=None, to_time=None, customer: str = "", order: str = "",
          currency: str = "", top: int = 0) -> tuple[list[dict], dict]:
    rows, token, totals = [], "", {}
    while True:
        page = erp.finance.GetSalesReport(fin.GetSalesReportRequest(
            page=paging_pb2.PageRequest(page_size=min(top, PAGE) if top else PAGE, page_token=token),
            group_by=GROUPINGS[by], from_time=_stamp(from_time), to_time=_stamp(to_time), customer_id=customer,
            order_id=order, currency_code=currency), timeout=erp.timeout)
        rows += [_sales_row(by, x) for x in page.rows]
        totals = {**_sales_row(by, page.totals), by: "TOTAL"}
        token = page.next_page_token
        if not token or (top and len(rows) >= top):
            return rows[:top] if top else rows, totals


def _aging_rows(key_name: str, key_field: str, response) -> tuple[list[dict], dict]:
    def row(x, key: str) -> dict:
        return {key_name: key, **{name: _amount(getattr(x, name)) for name in BUCKETS}}

    return [row(x, getattr(x, key_field)) for x in response.rows], row(response.totals, "TOTAL")


def payables_aging(erp, as_of=None, currency: str = "") -> tuple[list[dict], dict]:
    response = erp.finance.GetPayablesAging(fin.GetPayablesAgingRequest(as_of=_stamp(as_of), currency_code=currency),
                                            timeout=erp.timeout)
    return _aging_rows("supplier", "supplier_id", response)


def receivables_aging(erp, as_of=None, currency: str = "") -> tuple[list[dict], dict]:
    response = erp.finance.GetReceivablesAging(fin.GetReceivablesAgingRequest(as_of=_stamp(as_of),
                                                                               currency_code=currency),
                                               timeout=erp.timeout)
    return _aging_rows("customer", "customer_id", response)


def supplier_performance(erp, supplier: str = "", currency: str = "") -> tuple[list[dict], dict]:
    rows, token = [], ""
    while True:
        page = erp.finance.GetSupplierPerformance(fin.GetSupplierPerformanceRequest(
            page=paging_pb2.PageRequest(page_size=PAGE, page_token=token), supplier_id=supplier,
            currency_code=currency), timeout=erp.timeout)
        rows += [{"supplier": x.supplier_id, "on_time": f"{x.receipt_lines_on_time}/{x.receipt_lines_promised}",
                  "on_time_percent": x.on_time_percent, "ordered": x.ordered_quantity,
                  "received": x.received_quantity, "billed": x.billed_quantity,
                  "billed_at_order_prices": _amount(x.billed_at_order_prices), "billed_amount": _amount(x.billed_amount),
                  "price_variance": _amount(x.price_variance)} for x in page.rows]
        token = page.next_page_token
        if not token:
            return rows, {}


def trial_balance(erp, period: str = "", currency: str = "") -> tuple[list[dict], dict]:
    response = erp.finance.GetTrialBalance(fin.GetTrialBalanceRequest(period=period, currency_code=currency),
                                           timeout=erp.timeout)
    rows = [{"account": x.account, "name": x.name, "debit": _amount(x.debit), "credit": _amount(x.credit),
             "balance": _amount(x.balance)} for x in response.lines]
    return rows, {"account": "TOTAL", "name": "", "debit": _amount(response.total_debit),
                  "credit": _amount(response.total_credit), "balance": ""}


def account_balance(erp, account: str, currency: str = "") -> Decimal:
    lines = erp.finance.GetTrialBalance(fin.GetTrialBalanceRequest(currency_code=currency),
                                        timeout=erp.timeout).lines
    return next((Decimal(x.balance.amount) for x in lines if x.account == account), Decimal("0.00"))


# ---------------------------------------------------------------- rendering


def render(rows: list[dict], totals: dict, output: str) -> str:
    if output == "json":
        return json.dumps({"rows": rows, "totals": totals}, indent=2)
    columns = list(totals) if totals else list(rows[0]) if rows else []
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, totals] if totals else rows)
        return buffer.getvalue().rstrip("\n")
    body = [[str(row.get(c, "")) for c in columns] for row in rows]
    last = [str(totals.get(c, "")) for c in columns] if totals else []
    widths = [max([len(c), *(len(r[i]) for r in [*body, last] if r)]) for i, c in enumerate(columns)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.rjust(w) if _numeric(cell) else cell.ljust(w)
                         for cell, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(columns), line(["-" * w for w in widths]), *(line(r) for r in body)]
    if last:
        out += [line(["-" * w for w in widths]), line(last)]
    return "\n".join(out)


def _numeric(cell: str) -> bool:
    try:
        Decimal(cell)
    except ArithmeticError:
        return False
    return bool(cell)


def run(erp, args: argparse.Namespace, output: str = "table") -> int:
    if args.action == "valuation":
        rows, totals = valuation(erp, args.as_of, args.warehouse, args.sku_prefix, args.top)
    elif args.action == "sales":
        rows, totals = sales(erp, args.by, args.from_time, args.to_time, args.customer, args.order, args.currency,
                             args.top)
    elif args.action == "trial-balance":
        rows, totals = trial_balance(erp, args.period, args.currency)
    elif args.action == "supplier-performance":
        rows, totals = supplier_performance(erp, args.supplier, args.currency)
    elif args.action == "payables-aging":
        rows, totals = payables_aging(erp, args.as_of, args.currency)
    else:
        rows, totals = receivables_aging(erp, args.as_of, args.currency)
    print(render(rows, totals, output))
    return 0


def demo(erp, out=None) -> bool:
    """The demo's last act: the stock valuation, the sales report with margin, both agings,
    and whether account 1200 equals the valuation (waiting a little for finance to post the
    last movements). Returns whether they tie."""
    import time

    out = out or sys.stdout
    deadline = time.monotonic() + 10
    while True:
        rows, totals = valuation(erp)
        balance = account_balance(erp, "1200")
        if Decimal(totals["value"]) == balance or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    for title, (report_rows, report_totals) in (
            ("Stock valuation (moving weighted average cost)", (rows, totals)),
            ("Sales by SKU: revenue, cost of goods sold, gross margin", sales(erp, "sku")),
            ("Receivables aging", receivables_aging(erp)),
            ("Payables aging", payables_aging(erp))):
        print(f"\n== {title}\n{render(report_rows, report_totals, 'table')}", file=out)
    ties = Decimal(totals["value"]) == balance
    print(f"\nAccount 1200 (inventory) {balance} {'equals' if ties else 'DIFFERS FROM'} the stock valuation "
          f"{totals['value']}", file=out)
    return ties
