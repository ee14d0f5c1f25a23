"""What the stock's movements are worth in the books, and the reports built on them.

Inventory values stock at its moving weighted average cost and says what each movement
was worth in its events; finance posts those values (it never reads inventory's data):
- a goods receipt: Dr 1200 inventory / Cr 2100 goods received not invoiced, from
  GoodsReceived at the purchase order's prices (payables/handlers.on_goods_received, rounded per
  line as inventory rounds it, so both sides hold the same cents);
- a shipment (StockIssued): Dr 5000 cost of goods sold / Cr 1200 inventory, at the costs
  inventory took the goods out at; each line is kept in cost_of_sales for the sales report;
- a stock adjustment (StockAdjusted without a goods receipt): Dr 1200 / Cr 5200 inventory
  adjustments for stock found, Dr 5200 / Cr 1200 for stock lost.
Each movement is posted once: its posting row (stock_postings, keyed by the order for a
shipment, by the adjustment's request id for an adjustment) is written in the transaction
that posts it, under the aggregate's lock, so a duplicate, a replay from the dead letters or
the copy of the handler on the other replica finds it and posts nothing.

Reports: the sales report (revenue, cost of goods sold, gross margin by period, customer or
SKU) and the payables aging, both from finance's own tables.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as inventory_ev
from mesh import money, paging, protoconv
from mesh.errors import Violations
from services.finance.ledger.adapters import MONEY, journal_entries, metadata
from services.finance.ledger.domain import ZERO, Account, AgingRow, JournalEntry, OpenItem, aging, entry, round_money
from services.finance.payables.adapters import supplier_bills
from services.finance.receivables.adapters import invoice_lines, invoices

if TYPE_CHECKING:
    from services.finance.adapters import FinanceUnitOfWork

log = logging.getLogger("services.finance")

stock_postings = sa.Table(
    "stock_postings", metadata,
    sa.Column("reference", sa.Text, primary_key=True),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey(journal_entries.c.entry_id)),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

cost_of_sales = sa.Table(
    "cost_of_sales", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("warehouse_code", sa.Text, primary_key=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("cost", MONEY, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey(journal_entries.c.entry_id)),
)


# ---------------------------------------------------------------- commands and entries


@dataclasses.dataclass(frozen=True)
class IssuedLine:
    sku: str
    warehouse_code: str
    quantity: int
    cost: Decimal
    currency_code: str


@dataclasses.dataclass(frozen=True)
class StockIssued:
    order_id: str
    lines: tuple[IssuedLine, ...]


@dataclasses.dataclass(frozen=True)
class StockAdjusted:
    request_id: str
    sku: str
    warehouse_code: str
    quantity_delta: int
    value_delta: Decimal
    currency_code: str
    reason: str


def _cents(value: money_pb2.Money, what: str) -> Decimal:
    """An event's amount (unset: zero); one that does not parse, or is not in cents, is a
    fault (the event retries, then dead-letters) rather than a wrong posting."""
    amount = protoconv.amount_of(value)
    if round_money(amount) != amount:
        raise ValueError(f"{what} carries an amount that is not in cents: {value.amount!r}")
    return amount


def issued_command(event: inventory_ev.StockIssued) -> StockIssued:
    return StockIssued(event.order_id, tuple(
        IssuedLine(line.sku, line.warehouse_code, line.quantity, _cents(line.cost, "StockIssued"),
                   line.cost.currency_code) for line in event.lines))


def adjusted_command(event: inventory_ev.StockAdjusted) -> StockAdjusted:
    return StockAdjusted(event.request_id, event.sku, event.warehouse_code, event.quantity_delta,
                         _cents(event.value_delta, "StockAdjusted"), event.value_delta.currency_code,
                         event.reason)


def cogs_entry(cmd: StockIssued, currency: str) -> JournalEntry | None:
    """Dr cost of goods sold / Cr inventory for a shipment's cost; None when it cost nothing."""
    cost = sum((line.cost for line in cmd.lines), ZERO)
    return entry(f"cost of goods shipped for order {cmd.order_id}", cmd.order_id, currency,
                 [(Account.COST_OF_GOODS_SOLD, cost)], [(Account.INVENTORY, cost)])


def adjustment_entry(cmd: StockAdjusted, currency: str) -> JournalEntry | None:
    """Stock found: Dr inventory / Cr inventory adjustments; stock lost: the other way."""
    memo = f"stock adjustment {cmd.request_id} of {cmd.sku} in {cmd.warehouse_code}: {cmd.reason}"[:500]
    found, lost = max(cmd.value_delta, ZERO), max(-cmd.value_delta, ZERO)
    return entry(memo, cmd.request_id, currency,
                 [(Account.INVENTORY, found), (Account.INVENTORY_ADJUSTMENTS, lost)],
                 [(Account.INVENTORY_ADJUSTMENTS, found), (Account.INVENTORY, lost)])


# ---------------------------------------------------------------- repositories


class StockPostingRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def claim(self, reference: str) -> bool:
        """Records that a movement is being posted; False when it was posted already."""
        return self.conn.execute(insert(stock_postings).values(reference=reference).on_conflict_do_nothing()
                                 .returning(stock_postings.c.reference)).first() is not None

    def set_entry(self, reference: str, entry_id: int) -> None:
        self.conn.execute(stock_postings.update().where(stock_postings.c.reference == reference)
                          .values(journal_entry_id=entry_id))

    def add_cost_of_sales(self, cmd: StockIssued, currency: str, shipped_at: dt.datetime,
                          entry_id: int | None) -> None:
        totals: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for line in cmd.lines:
            qty, cost = totals.get((line.sku, line.warehouse_code), (0, ZERO))
            totals[(line.sku, line.warehouse_code)] = (qty + line.quantity, cost + line.cost)
        if totals:
            self.conn.execute(cost_of_sales.insert(), [
                {"order_id": cmd.order_id, "sku": sku, "warehouse_code": wh, "quantity": qty, "cost": cost,
                 "currency_code": currency, "shipped_at": shipped_at, "journal_entry_id": entry_id}
                for (sku, wh), (qty, cost) in sorted(totals.items())])


# ---------------------------------------------------------------- reactions to events


def on_stock_issued(uow: FinanceUnitOfWork, cmd: StockIssued, default_currency: str,
                    now: dt.datetime | None = None) -> bool:
    """Posts a shipment's cost once per order (the order's lock is held); False for a repeat.
    The cost counts in the sales report when it is posted, as in the journal: a shipment from
    a period already closed lands in the open one (services/finance/ledger/periods.py)."""
    if not cmd.lines or not uow.stock_postings.claim(f"issue:{cmd.order_id}"):
        return False
    currencies = {line.currency_code for line in cmd.lines if line.currency_code}
    if len(currencies) > 1:
        raise ValueError(f"StockIssued for order {cmd.order_id} mixes currencies {sorted(currencies)}")
    if any(line.quantity <= 0 or line.cost < 0 for line in cmd.lines):
        raise ValueError(f"StockIssued for order {cmd.order_id} has a line without a positive quantity")
    currency = next(iter(currencies), default_currency)
    posting = cogs_entry(cmd, currency)
    entry_id = uow.journal.post(posting) if posting is not None else None
    if entry_id is not None:
        uow.stock_postings.set_entry(f"issue:{cmd.order_id}", entry_id)
    uow.stock_postings.add_cost_of_sales(cmd, currency, now or dt.datetime.now(dt.UTC), entry_id)
    return True


def on_stock_adjusted(uow: FinanceUnitOfWork, cmd: StockAdjusted, default_currency: str) -> bool:
    """Posts an adjustment's value once per request id; False for a repeat or nothing to post.
    A StockAdjusted from before valuation (no request id, no value) has nothing to post."""
    if not cmd.request_id:
        if cmd.value_delta:
            raise ValueError(f"StockAdjusted of {cmd.sku} in {cmd.warehouse_code} has a value but no request id")
        return False
    reference = f"adjustment:{cmd.request_id}"
    if not uow.stock_postings.claim(reference):
        return False
    posting = adjustment_entry(cmd, cmd.currency_code or default_currency)
    if posting is not None:
        uow.stock_postings.set_entry(reference, uow.journal.post(posting))
    return True


# ---------------------------------------------------------------- the sales report


GROUPINGS = ("period", "customer", "sku")


@dataclasses.dataclass(frozen=True)
class SalesQuery:
    group_by: str = "period"
    from_time: dt.datetime | None = None
    to_time: dt.datetime | None = None
    customer_id: str = ""
    order_id: str = ""
    currency_code: str = ""


@dataclasses.dataclass(frozen=True)
class SalesRow:
    key: str
    revenue: Decimal
    cost: Decimal
    quantity: int

    @property
    def gross_margin(self) -> Decimal:
        return self.revenue - self.cost

    @property
    def margin_percent(self) -> str:
        if not self.revenue:
            return ""
        return str(round_money(self.gross_margin * 100 / self.revenue))


def _facts(query: SalesQuery, currency: str):
    """One row per invoice line (revenue, quantity) and per shipped line (cost), with the
    order, customer, SKU and moment each counts at."""
    i, line = invoices.c, invoice_lines.c
    revenue = (sa.select(i.order_id, i.customer_id, line.sku, line.quantity.label("quantity"),
                         line.amount.label("revenue"), sa.literal(0, MONEY).label("cost"), i.issued_at.label("at"))
               .select_from(invoice_lines.join(invoices, invoices.c.invoice_id == invoice_lines.c.invoice_id))
               .where(i.currency_code == currency, i.amount_credited == 0))
    c = cost_of_sales.c
    costs = (sa.select(c.order_id, sa.func.coalesce(i.customer_id, "").label("customer_id"), c.sku,
                       sa.literal(0, sa.BigInteger).label("quantity"), sa.literal(0, MONEY).label("revenue"),
                       c.cost.label("cost"), c.shipped_at.label("at"))
             .select_from(cost_of_sales.outerjoin(invoices, invoices.c.order_id == cost_of_sales.c.order_id))
             .where(c.currency_code == currency))
    facts = sa.union_all(revenue, costs).subquery("facts")
    conditions = []
    if query.from_time is not None:
        conditions.append(facts.c.at >= query.from_time)
    if query.to_time is not None:
        conditions.append(facts.c.at < query.to_time)
    if query.customer_id:
        conditions.append(facts.c.customer_id == query.customer_id)
    if query.order_id:
        conditions.append(facts.c.order_id == query.order_id)
    return facts, conditions


def sales_rows(conn: sa.Connection, query: SalesQuery, currency: str, offset: int, limit: int
               ) -> tuple[list[SalesRow], SalesRow]:
    facts, conditions = _facts(query, currency)
    key = {"period": sa.func.to_char(sa.func.timezone("UTC", facts.c.at), "YYYY-MM"),
           "customer": facts.c.customer_id, "sku": facts.c.sku}[query.group_by].label("key")
    revenue = sa.func.sum(facts.c.revenue).label("revenue")
    grouped = sa.select(key, revenue, sa.func.sum(facts.c.cost).label("cost"),
                        sa.func.sum(facts.c.quantity).label("quantity")).where(*conditions).group_by(key)
    order = (key,) if query.group_by == "period" else (revenue.desc(), key)
    rows = [SalesRow(r.key, r.revenue, r.cost, int(r.quantity))
            for r in conn.execute(grouped.order_by(*order).offset(offset).limit(limit))]
    total = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(facts.c.revenue), 0),
                                   sa.func.coalesce(sa.func.sum(facts.c.cost), 0),
                                   sa.func.coalesce(sa.func.sum(facts.c.quantity), 0)).where(*conditions)).one()
    return rows, SalesRow("", Decimal(total[0]), Decimal(total[1]), int(total[2]))


def sales_report(uow: FinanceUnitOfWork, query: SalesQuery, page_size: int, page_token: str, default_currency: str
                 ) -> tuple[str, list[SalesRow], SalesRow, str]:
    """(currency, rows, totals, next page token). Pages by position: rows by customer or SKU
    are ordered by revenue, which has no stable key to resume after."""
    v = Violations()
    v.check(query.group_by in GROUPINGS, "group_by", "must be PERIOD, CUSTOMER or SKU")
    v.check(len(query.customer_id) <= 64, "customer_id", "must be at most 64 characters")
    v.check(len(query.order_id) <= 64, "order_id", "must be at most 64 characters")
    v.check(not query.currency_code or money.valid_currency(query.currency_code), "currency_code",
            "must be an ISO 4217 code such as EUR, or empty for the default")
    v.check(query.from_time is None or query.to_time is None or query.from_time < query.to_time, "to_time",
            "must be after from_time")
    v.raise_if_any()
    currency = query.currency_code or default_currency
    size = paging.page_size(page_size)
    filters = {"group_by": query.group_by, "from": query.from_time.isoformat() if query.from_time else "",
               "to": query.to_time.isoformat() if query.to_time else "", "customer": query.customer_id,
               "order": query.order_id, "currency": currency}
    start = paging.decode(page_token, filters, (int,))
    offset = int(start[0]) if start else 0
    with uow:
        rows, totals = sales_rows(uow.connection, query, currency, offset, size + 1)
    token = paging.encode([offset + size], filters) if len(rows) > size else ""
    return currency, rows[:size], totals, token


# ---------------------------------------------------------------- payables aging


def payables_open_items(conn: sa.Connection, currency: str, as_of: dt.datetime) -> list[OpenItem]:
    """Each bill posted by as_of with what is still open on it (supplier id as the row's id)."""
    b = supplier_bills.c
    open_amount = b.total - b.amount_paid
    query = (sa.select(b.supplier_id, b.due_at, open_amount.label("open"))
             .where(b.currency_code == currency, b.posted_at.is_not(None), b.posted_at <= as_of, open_amount > 0)
             .order_by(b.supplier_id, b.due_at))
    return [OpenItem(r.supplier_id, r.due_at.astimezone(dt.UTC).date(), r.open) for r in conn.execute(query)]


def payables_aging(uow: FinanceUnitOfWork, currency_code: str, as_of: dt.datetime | None, default_currency: str
                   ) -> tuple[str, list[AgingRow], AgingRow]:
    """What finance owes each supplier, by age (the receivables aging's buckets). Amounts are
    what is open now on bills posted by as_of."""
    v = Violations()
    v.check(not currency_code or money.valid_currency(currency_code), "currency_code",
            "must be an ISO 4217 code such as EUR, or empty for the default")
    v.raise_if_any()
    currency = currency_code or default_currency
    moment = as_of or dt.datetime.now(dt.UTC)
    with uow:
        items = payables_open_items(uow.connection, currency, moment)
    rows, totals = aging(items, moment)
    return currency, rows, totals
