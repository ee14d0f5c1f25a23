"""Finance's shared persistence: the chart of accounts, the journal and document numbering
(SQLAlchemy Core). Every finance table is in this module's metadata, in finance's own schema
(one Alembic history, services/finance/migrations).

Invoice and credit-note numbers come from a counter row per (kind, year), incremented
in the transaction that uses the number (INSERT ... ON CONFLICT DO UPDATE ... RETURNING):
the row lock serializes numbering, and a rollback takes the increment back with it, so
numbers have no gaps. Journal entries are only ever inserted; a deferred constraint
trigger refuses, at commit, an entry whose debits and credits differ, and another
trigger refuses any UPDATE or DELETE of a posted entry (see the initial migration).
"""
from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh import bulk, sql
from mesh.errors import AlreadyExists
from services.finance.ledger.domain import AccountTotals, JournalEntry, JournalLine

metadata = sa.MetaData()
MONEY = sa.Numeric(18, 2)
PRICE = sa.Numeric(18, 4)

accounts = sa.Table(
    "accounts", metadata,
    sa.Column("code", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
)

journal_entries = sa.Table(
    "journal_entries", metadata,
    sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("reverses_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), unique=True),
)

journal_lines = sa.Table(
    "journal_lines", metadata,
    sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("account", sa.Text, sa.ForeignKey("accounts.code"), nullable=False),
    sa.Column("debit", MONEY, nullable=False),
    sa.Column("credit", MONEY, nullable=False),
)

number_sequences = sa.Table(
    "number_sequences", metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("year", sa.Integer, primary_key=True),
    sa.Column("last_value", sa.BigInteger, nullable=False),
)


# ---------------------------------------------------------------- numbering


class NumberSequences:
    """Gap-free counters. A counter this transaction holds (locked by lock() or by its first
    next()) counts on in memory, and its new value is written once, at the commit (flush): a
    batch of invoices takes its numbers with no statement per number."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._held: dict[tuple[str, int], int] = {}  # (kind, year) locked: its value in this transaction
        self._unwritten: set[tuple[str, int]] = set()

    def next(self, kind: str, year: int) -> int:
        """The next number of (kind, year); the counter row stays locked until the
        transaction ends, and a rollback undoes the increment (no gaps)."""
        key = (kind, year)
        if key in self._held:
            self._held[key] += 1
            self._unwritten.add(key)
        else:
            self._held[key] = sql.run(self.conn, _NEXT_NUMBER, {"kind": kind, "year": year}).scalar_one()
        return self._held[key]

    def lock(self, kind: str, year: int) -> None:
        """Takes the (kind, year) counter's row lock now, if the counter exists."""
        row = sql.run(self.conn, _LOCK_NUMBER, {"kind": kind, "year": year}).first()
        if row is not None:
            self._held[(kind, year)] = row.last_value

    def flush(self) -> None:
        """Writes the counters next() moved in memory."""
        if self._unwritten:
            sql.run(self.conn, _SET_NUMBERS, bulk.rows([{"kind": kind, "year": year, "last_value": self._held[kind, year]}
                                                       for kind, year in sorted(self._unwritten)]))
            self._unwritten = set()


# Built once (the invoice path runs them per order): SQLAlchemy reuses their compiled form.
_NEXT_NUMBER = (insert(number_sequences).values(kind=sa.bindparam("kind"), year=sa.bindparam("year"), last_value=1)
                .on_conflict_do_update(index_elements=[number_sequences.c.kind, number_sequences.c.year],
                                       set_={"last_value": number_sequences.c.last_value + 1})
                .returning(number_sequences.c.last_value))
_LOCK_NUMBER = (sa.select(number_sequences.c.last_value)
                .where(number_sequences.c.kind == sa.bindparam("kind"), number_sequences.c.year == sa.bindparam("year"))
                .with_for_update())
_SET_NUMBERS = bulk.update_many(number_sequences, {"kind": "kind", "year": "year"}, ["last_value"])


# ---------------------------------------------------------------- the journal


# An entry and its lines in one statement; its id (an identity) comes back.
ENTRY_LINE_COLUMNS = ["line_no", "account", "debit", "credit"]
_ENTRY_INSERT = bulk.insert_with_rows(journal_entries, ["memo", "reference", "currency_code", "reverses_entry_id"],
                                      journal_lines, ENTRY_LINE_COLUMNS, "entry_id")


def entry_lines(entry: JournalEntry) -> list[dict[str, object]]:
    """A checked entry's lines as rows of journal_lines (ENTRY_LINE_COLUMNS), numbered from 1."""
    entry.check()
    return [{"line_no": i + 1, "account": line.account, "debit": line.debit, "credit": line.credit}
            for i, line in enumerate(entry.lines)]


def insert_for_request(conn: sa.Connection, statement: sa.Insert, request_id: str, what: str) -> None:
    """Inserts the row a request idempotent by its request_id records (the column is UNIQUE).
    Two first requests with one request_id for different things raced when it is taken: this
    transaction is lost either way, and the caller learns why (ALREADY_EXISTS)."""
    try:
        conn.execute(statement)
    except sa.exc.IntegrityError as exc:
        if "request_id" in str(exc.orig):
            raise AlreadyExists(f"request_id {request_id} was used for another {what}") from exc
        raise


class JournalRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def post(self, entry: JournalEntry) -> int:
        """Inserts a checked entry and its lines; returns its id. Never updates anything."""
        lines = bulk.rows(entry_lines(entry))
        return sql.run(self.conn, _ENTRY_INSERT, {
            "memo": entry.memo, "reference": entry.reference, "currency_code": entry.currency_code,
            "reverses_entry_id": entry.reverses_entry_id, **lines}).scalar_one()

    def get(self, entry_id: int) -> JournalEntry | None:
        loaded = self._load(self.conn.execute(sa.select(journal_entries)
                                              .where(journal_entries.c.entry_id == entry_id)).all())
        return loaded[0] if loaded else None

    def list(self, *, reference: str, after: int | None, limit: int) -> builtins.list[JournalEntry]:
        query = sa.select(journal_entries)
        if reference:
            query = query.where(journal_entries.c.reference == reference)
        if after is not None:
            query = query.where(journal_entries.c.entry_id > after)
        return self._load(self.conn.execute(query.order_by(journal_entries.c.entry_id).limit(limit)).all())

    def trial_balance(self, currency_code: str, until: dt.datetime | None = None) -> builtins.list[AccountTotals]:
        """Totals per account over the entries posted before `until` (all of them when None)."""
        query = (sa.select(accounts.c.code, accounts.c.name, sa.func.sum(journal_lines.c.debit).label("debit"),
                           sa.func.sum(journal_lines.c.credit).label("credit"))
                 .select_from(journal_lines.join(journal_entries).join(accounts))
                 .where(journal_entries.c.currency_code == currency_code,
                        *([journal_entries.c.posted_at < until] if until is not None else []))
                 .group_by(accounts.c.code, accounts.c.name).order_by(accounts.c.code))
        return [AccountTotals(r.code, r.name, r.debit, r.credit) for r in self.conn.execute(query)]

    def _load(self, rows: Sequence) -> builtins.list[JournalEntry]:
        if not rows:
            return []
        lines: dict[int, list[JournalLine]] = {}
        for r in self.conn.execute(sa.select(journal_lines)
                                   .where(journal_lines.c.entry_id.in_([row.entry_id for row in rows]))
                                   .order_by(journal_lines.c.entry_id, journal_lines.c.line_no)):
            lines.setdefault(r.entry_id, []).append(JournalLine(r.account, r.debit, r.credit))
        return [JournalEntry(row.memo, row.reference, row.currency_code, tuple(lines.get(row.entry_id, [])),
                             reverses_entry_id=row.reverses_entry_id, entry_id=row.entry_id, posted_at=row.posted_at)
                for row in rows]
