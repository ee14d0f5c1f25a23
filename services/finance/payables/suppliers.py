"""Supplier performance, from finance's own projection of the purchase orders it approved
(PurchaseOrderApproved, with each line's promised date), their goods receipts (GoodsReceived,
dated when finance posted them) and posted supplier bills:
- on time: receipt lines of lines with a promised date, received on or before it (UTC dates);
- quantities received and billed against ordered;
- the amount posted bills charge against what the quantities billed cost at the orders'
  prices (the purchase price variance three-way matching posts to 5100).
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh import money, paging
from mesh.errors import Violations
from services.finance.ledger.adapters import metadata
from services.finance.ledger.domain import ZERO, round_money
from services.finance.payables.adapters import (
    goods_receipt_lines,
    goods_receipts,
    purchase_order_lines,
    purchase_orders,
    supplier_bill_lines,
    supplier_bills,
)

if TYPE_CHECKING:
    from services.finance.adapters import FinanceUnitOfWork

purchase_order_promises = sa.Table(
    "purchase_order_promises", metadata,
    sa.Column("purchase_order_id", sa.Text, primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("expected_date", sa.Date, nullable=False),
)


def record_promises(uow: FinanceUnitOfWork, purchase_order_id: str, lines: Iterable[tuple[int, str]]) -> None:
    """Keeps each line's promised date (lines: (line_no, "YYYY-MM-DD" or "")); called after the
    approval was stored, under the purchase order's lock. A date that does not parse is left out."""
    rows = []
    for line_no, text in lines:
        try:
            rows.append({"purchase_order_id": purchase_order_id, "line_no": line_no,
                         "expected_date": dt.date.fromisoformat(text)})
        except ValueError:
            continue
    if rows:
        stmt = insert(purchase_order_promises).values(rows)
        uow.connection.execute(stmt.on_conflict_do_update(
            index_elements=[purchase_order_promises.c.purchase_order_id, purchase_order_promises.c.line_no],
            set_={"expected_date": stmt.excluded.expected_date}))


@dataclasses.dataclass(frozen=True)
class SupplierPerformance:
    supplier_id: str
    promised: int
    on_time: int
    ordered: int
    received: int
    billed: int
    billed_at_order_prices: Decimal
    billed_amount: Decimal

    @property
    def on_time_percent(self) -> str:
        return str(round_money(Decimal(self.on_time * 100) / self.promised)) if self.promised else ""

    @property
    def price_variance(self) -> Decimal:
        return self.billed_amount - self.billed_at_order_prices


def supplier_performance(uow: FinanceUnitOfWork, supplier_id: str, currency_code: str, page_size: int, page_token: str,
                         default_currency: str) -> tuple[str, list[SupplierPerformance], str]:
    v = Violations()
    v.check(len(supplier_id) <= 64, "supplier_id", "must be at most 64 characters")
    v.check(not currency_code or money.valid_currency(currency_code), "currency_code",
            "must be an ISO 4217 code such as EUR, or empty for the default")
    v.raise_if_any()
    currency = currency_code or default_currency
    size = paging.page_size(page_size)
    filters = {"supplier": supplier_id, "currency": currency}
    after = paging.decode(page_token, filters, (str,))
    po, pol = purchase_orders.c, purchase_order_lines.c
    orders = sa.select(po.supplier_id).where(po.currency_code == currency)
    if supplier_id:
        orders = orders.where(po.supplier_id == supplier_id)
    if after:
        orders = orders.where(po.supplier_id > after[0])
    suppliers = orders.distinct().order_by(po.supplier_id).limit(size + 1).subquery()
    mine = po.supplier_id.in_(sa.select(suppliers.c.supplier_id))
    quantities = (sa.select(po.supplier_id, sa.func.sum(pol.ordered_quantity).label("ordered"),
                            sa.func.sum(pol.received_quantity).label("received"),
                            sa.func.sum(pol.billed_quantity).label("billed"))
                  .select_from(purchase_order_lines.join(purchase_orders))
                  .where(mine, po.currency_code == currency).group_by(po.supplier_id))
    gr, grl, promise = goods_receipts.c, goods_receipt_lines.c, purchase_order_promises.c
    received_on = sa.func.date(sa.func.timezone("UTC", gr.received_at))
    timeliness = (sa.select(po.supplier_id, sa.func.count().label("promised"),
                            sa.func.count().filter(received_on <= promise.expected_date).label("on_time"))
                  .select_from(goods_receipt_lines.join(goods_receipts)
                               .join(purchase_orders, po.purchase_order_id == gr.purchase_order_id)
                               .join(purchase_order_promises, sa.and_(
                                   promise.purchase_order_id == gr.purchase_order_id,
                                   promise.line_no == grl.line_no)))
                  .where(mine, po.currency_code == currency).group_by(po.supplier_id))
    sb, sbl = supplier_bills.c, supplier_bill_lines.c
    posted = sb.posted_at.is_not(None)
    billing = (sa.select(sb.supplier_id, sa.func.sum(sbl.amount).label("billed_amount"),
                         sa.func.sum(sa.func.round(sbl.quantity * pol.unit_price, 2)).label("at_order_prices"))
               .select_from(supplier_bill_lines.join(supplier_bills)
                            .join(purchase_order_lines, sa.and_(pol.purchase_order_id == sb.purchase_order_id,
                                                                pol.line_no == sbl.line_no)))
               .where(posted, sb.currency_code == currency,
                      sb.supplier_id.in_(sa.select(suppliers.c.supplier_id)))
               .group_by(sb.supplier_id))
    with uow:
        conn = uow.connection
        ids = [r.supplier_id for r in conn.execute(sa.select(suppliers.c.supplier_id).order_by(suppliers.c.supplier_id))]
        qty = {r.supplier_id: r for r in conn.execute(quantities)}
        times = {r.supplier_id: r for r in conn.execute(timeliness)}
        bills = {r.supplier_id: r for r in conn.execute(billing)}
    rows = []
    for sid in ids:
        q, t, b = qty.get(sid), times.get(sid), bills.get(sid)
        rows.append(SupplierPerformance(
            sid, t.promised if t else 0, t.on_time if t else 0, int(q.ordered) if q else 0,
            int(q.received) if q else 0, int(q.billed) if q else 0,
            Decimal(b.at_order_prices) if b else ZERO, Decimal(b.billed_amount) if b else ZERO))
    return currency, rows[:size], paging.next_token(rows, size, lambda r: [r.supplier_id], filters)
