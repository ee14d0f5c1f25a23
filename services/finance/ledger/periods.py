"""Accounting periods: calendar months (UTC). A period is closed once it has ended, and
nothing posts into a closed period.

The declared rule: a journal entry is dated when it is posted (journal_entries.posted_at, the
transaction's time), so an event about something that happened in a closed period, such as a
shipment whose OrderShipped arrives after the month was closed, posts into the open period it
arrives in; its cost of sales counts in that period too (valuation.on_stock_issued). A period
can only be closed after it has ended, so no posting in flight is dated in it: ClosePeriod
takes the journal's table lock in SHARE mode first, which waits for every posting transaction
still running to end and holds new ones back until the period is recorded. A trigger refuses
any entry dated in a closed period (migration 0006), whatever inserts it.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh import paging
from mesh.errors import FailedPrecondition, Violations
from services.finance.ledger.adapters import metadata

if TYPE_CHECKING:
    from services.finance.adapters import FinanceUnitOfWork

PERIOD_RE = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
MAX_CLOSED_BY = 200

accounting_periods = sa.Table(
    "accounting_periods", metadata,
    sa.Column("period", sa.Text, primary_key=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("closed_by", sa.Text, nullable=False),
)


@dataclasses.dataclass(frozen=True)
class ClosedPeriod:
    period: str
    closed_at: dt.datetime
    closed_by: str


def check_period(v: Violations, field: str, period: str) -> None:
    v.check(bool(PERIOD_RE.fullmatch(period)), field, "must be a month as YYYY-MM, for example 2026-11")


def period_end(period: str) -> dt.datetime:
    """The first moment after the period (UTC)."""
    year, month = (int(x) for x in period.split("-"))
    return dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=dt.UTC)


def period_of(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m")


def close_period(uow: FinanceUnitOfWork, period: str, closed_by: str, now: dt.datetime | None = None
                 ) -> ClosedPeriod:
    v = Violations()
    check_period(v, "period", period)
    v.check(0 < len(closed_by.strip()) <= MAX_CLOSED_BY, "closed_by", f"must be 1-{MAX_CLOSED_BY} characters")
    v.raise_if_any()
    moment = now or dt.datetime.now(dt.UTC)
    if period_end(period) > moment:
        raise FailedPrecondition(f"period {period} has not ended yet; it can be closed from "
                                 f"{period_end(period).isoformat()}")
    with uow:
        # Postings still running finish first, and none starts until the period is recorded.
        uow.connection.execute(sa.text("LOCK TABLE journal_entries IN SHARE MODE"))
        uow.connection.execute(insert(accounting_periods).values(period=period, closed_by=closed_by.strip())
                               .on_conflict_do_nothing())
        row = uow.connection.execute(sa.select(accounting_periods)
                                     .where(accounting_periods.c.period == period)).one()
        uow.commit()
    return ClosedPeriod(row.period, row.closed_at, row.closed_by)


def list_closed(uow: FinanceUnitOfWork, page_size: int, page_token: str) -> tuple[list[ClosedPeriod], str]:
    size = paging.page_size(page_size)
    after = paging.decode(page_token, {}, (str,))
    query = sa.select(accounting_periods).order_by(accounting_periods.c.period.desc()).limit(size + 1)
    if after:
        query = query.where(accounting_periods.c.period < after[0])
    with uow:
        rows = [ClosedPeriod(r.period, r.closed_at, r.closed_by) for r in uow.connection.execute(query)]
    return rows[:size], paging.next_token(rows, size, lambda p: [p.period], {})
