"""The sales side's persistence: invoices, payments, credit notes, and the projections and
tombstones the invoicing reads (customers' payment terms, orders cancelled before their
invoice). Tables in finance's one metadata (services/finance/ledger/adapters.py)."""
from __future__ import annotations

import builtins
import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh import bulk, sql
from mesh.errors import Aborted
from services.finance.ledger.adapters import (
    ENTRY_LINE_COLUMNS,
    MONEY,
    PRICE,
    entry_lines,
    insert_for_request,
    journal_lines,
    metadata,
)
from services.finance.ledger.domain import JournalEntry, OpenItem
from services.finance.receivables.domain import (
    BeforeIssuing,
    CreditNote,
    CustomerTerms,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentState,
)

customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

cancelled_orders = sa.Table(
    "cancelled_orders", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

invoices = sa.Table(
    "invoices", metadata,
    sa.Column("invoice_id", sa.Text, primary_key=True),
    sa.Column("number", sa.Text, nullable=False, unique=True),
    sa.Column("number_year", sa.Integer, nullable=False),
    sa.Column("number_seq", sa.BigInteger, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False, unique=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("subtotal", MONEY, nullable=False),
    sa.Column("tax", MONEY, nullable=False),
    sa.Column("total", MONEY, nullable=False),
    sa.Column("tax_rate", sa.Numeric(9, 6), nullable=False),
    sa.Column("order_amount", PRICE, nullable=False),
    sa.Column("amount_paid", MONEY, nullable=False),
    sa.Column("amount_credited", MONEY, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
    sa.Column("version", sa.BigInteger, nullable=False),
)

invoice_lines = sa.Table(
    "invoice_lines", metadata,
    sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", PRICE, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
)

payments = sa.Table(
    "payments", metadata,
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), nullable=False),
)

credit_notes = sa.Table(
    "credit_notes", metadata,
    sa.Column("credit_note_id", sa.Text, primary_key=True),
    sa.Column("number", sa.Text, nullable=False, unique=True),
    sa.Column("number_year", sa.Integer, nullable=False),
    sa.Column("number_seq", sa.BigInteger, nullable=False),
    sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), nullable=False, unique=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("unpaid_amount", MONEY, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
)


# ---------------------------------------------------------------- invoices


def _invoice_row(invoice: Invoice) -> dict:
    return {"invoice_id": invoice.invoice_id, "number": invoice.number, "number_year": invoice.year,
            "number_seq": invoice.seq, "order_id": invoice.order_id, "customer_id": invoice.customer_id,
            "currency_code": invoice.currency_code, "subtotal": invoice.subtotal, "tax": invoice.tax,
            "total": invoice.total, "tax_rate": invoice.tax_rate, "order_amount": invoice.order_amount,
            "amount_paid": invoice.amount_paid, "amount_credited": invoice.amount_credited,
            "state": str(invoice.state), "issued_at": invoice.issued_at, "due_at": invoice.due_at,
            "due_date": invoice.due_date, "journal_entry_id": invoice.journal_entry_id, "version": invoice.version}


_INVOICE_LINE_COLUMNS = ["line_no", "sku", "quantity", "unit_price", "amount"]
# A transaction's invoices, each with its lines and its journal entry (and the entry's lines), in one
# statement at the commit (InvoiceRepository.flush): the entries' ids (an identity) go into the invoices.
_ISSUED = [c.name for c in invoices.c if c.name != "journal_entry_id"]
_PENDING = [*_ISSUED, "entry_memo", "entry_reference", "entry_currency", "entry_lines", "lines"]
_pending_fields = (bulk.fields(invoices, _ISSUED, _ISSUED)
                   + ", entry_memo text, entry_reference text, entry_currency text, entry_lines json, lines json")
_ISSUE_MANY = sa.text(
    f"WITH v AS MATERIALIZED (SELECT * FROM ROWS FROM (json_to_recordset(CAST(:{bulk.ROWS} AS json))"
    f"  AS ({_pending_fields})) WITH ORDINALITY AS v({', '.join(_PENDING)}, row_no)),"
    " entries AS (INSERT INTO journal_entries (memo, reference, currency_code)"
    "  SELECT entry_memo, entry_reference, entry_currency FROM v WHERE entry_memo IS NOT NULL ORDER BY row_no"
    "  RETURNING entry_id, reference),"
    " entry_lines AS (INSERT INTO journal_lines (entry_id, " + ", ".join(ENTRY_LINE_COLUMNS) + ")"
    "  SELECT e.entry_id, " + ", ".join(f"l.{c}" for c in ENTRY_LINE_COLUMNS) + " FROM entries e"
    "  JOIN v ON v.entry_reference = e.reference,"
    f"  json_to_recordset(v.entry_lines) AS l({bulk.fields(journal_lines, ENTRY_LINE_COLUMNS, ENTRY_LINE_COLUMNS)})"
    "  ORDER BY v.row_no, l.line_no),"
    f" issued AS (INSERT INTO invoices ({', '.join(_ISSUED)}, journal_entry_id)"
    f"  SELECT {', '.join(f'v.{c}' for c in _ISSUED)}, e.entry_id FROM v"
    "  LEFT JOIN entries e ON e.reference = v.entry_reference ORDER BY v.row_no"
    "  RETURNING invoice_id, journal_entry_id),"
    f" issued_lines AS (INSERT INTO invoice_lines (invoice_id, {', '.join(_INVOICE_LINE_COLUMNS)})"
    f"  SELECT v.invoice_id, {', '.join(f'l.{c}' for c in _INVOICE_LINE_COLUMNS)} FROM v,"
    f"  json_to_recordset(v.lines) AS l({bulk.fields(invoice_lines, _INVOICE_LINE_COLUMNS, _INVOICE_LINE_COLUMNS)})"
    "  ORDER BY v.row_no, l.line_no)"
    " SELECT invoice_id, journal_entry_id FROM issued")
_INVOICE_LINES = (sa.select(invoice_lines).where(invoice_lines.c.invoice_id.in_(sa.bindparam("ids", expanding=True)))
                  .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no))
_INVOICE_BY_ID = sa.select(invoices).where(invoices.c.invoice_id == sa.bindparam("key"))
_INVOICE_BY_ID_FOR_UPDATE = _INVOICE_BY_ID.with_for_update()
_INVOICE_BY_ORDER = sa.select(invoices).where(invoices.c.order_id == sa.bindparam("key"))
_INVOICE_BY_ORDER_FOR_UPDATE = _INVOICE_BY_ORDER.with_for_update()
# What issuing an order's invoice looks at first, in one round trip: a cancellation that came
# before it, an invoice already issued, and the customer's payment terms.
_BEFORE_ISSUING = sa.select(
    sa.exists().where(cancelled_orders.c.order_id == sa.bindparam("order")).label("cancelled"),
    sa.exists().where(invoices.c.order_id == sa.bindparam("order")).label("invoiced"),
    sa.select(customers.c.payment_terms_days).where(customers.c.customer_id == sa.bindparam("customer"))
    .scalar_subquery().label("payment_terms"))
# The same for a batch's orders (order, customer), in one statement.
_ASKED = ["order_id", "customer_id"]
_BEFORE_ISSUING_MANY = sa.text(
    "SELECT v.order_id, EXISTS (SELECT FROM cancelled_orders c WHERE c.order_id = v.order_id) AS cancelled,"
    " EXISTS (SELECT FROM invoices i WHERE i.order_id = v.order_id) AS invoiced,"
    " (SELECT c.payment_terms_days FROM customers c WHERE c.customer_id = v.customer_id) AS payment_terms"
    f" FROM {bulk.recordset(invoices, _ASKED, _ASKED)} AS v")

# What a batch's invoices will look at first (InvoiceRepository.read_before_issuing), by order:
# (customer, what was read). Each is used once; a cancellation or a change of payment terms
# in the batch drops what it makes stale (CancellationRepository, CustomerRepository).
BeforeIssuingRead = dict[str, tuple[str, BeforeIssuing]]


class InvoiceRepository:
    """Invoices. New ones (add) are written together at the commit, or before any other statement
    of this repository (flush): a batch's invoices and their journal entries in one statement."""

    def __init__(self, conn: sa.Connection, read_first: BeforeIssuingRead | None = None) -> None:
        self.conn = conn
        self.read_first: BeforeIssuingRead = {} if read_first is None else read_first
        self._pending: list[tuple[Invoice, JournalEntry | None, list[dict[str, object]]]] = []  # with the entry's lines

    def add(self, invoice: Invoice, entry: JournalEntry | None = None) -> None:
        """A new invoice, and the journal entry that posts it (checked now; its id is the invoice's
        journal_entry_id once written)."""
        lines = entry_lines(entry) if entry is not None else []  # checks the entry
        if entry is not None and any(e is not None and e.reference == entry.reference for _, e, _ in self._pending):
            self.flush()  # the statement finds each entry's invoice by the entry's reference
        self._pending.append((invoice, entry, lines))

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        rows = [{**{c: value for c, value in _invoice_row(invoice).items() if c != "journal_entry_id"},
                 "entry_memo": entry.memo if entry else None, "entry_reference": entry.reference if entry else None,
                 "entry_currency": entry.currency_code if entry else None,
                 "entry_lines": posted,
                 "lines": [{c: getattr(line, c) for c in _INVOICE_LINE_COLUMNS} for line in invoice.lines]}
                for invoice, entry, posted in pending]
        entry_ids = dict(sql.run(self.conn, _ISSUE_MANY, bulk.rows(rows)).all())
        for invoice, _, _ in pending:
            invoice.journal_entry_id = entry_ids[invoice.invoice_id]

    def get(self, invoice_id: str, for_update: bool = False) -> Invoice | None:
        return self._one(_INVOICE_BY_ID_FOR_UPDATE if for_update else _INVOICE_BY_ID, invoice_id)

    def by_order(self, order_id: str, for_update: bool = False) -> Invoice | None:
        return self._one(_INVOICE_BY_ORDER_FOR_UPDATE if for_update else _INVOICE_BY_ORDER, order_id)

    def before_issuing(self, order_id: str, customer_id: str) -> BeforeIssuing:
        found = self.read_first.pop(order_id, None)
        if found is not None and found[0] == customer_id:
            return found[1]
        self.flush()
        row = sql.run(self.conn, _BEFORE_ISSUING, {"order": order_id, "customer": customer_id}).one()
        return BeforeIssuing(row.cancelled, row.invoiced, row.payment_terms)

    def read_before_issuing(self, asked: Sequence[tuple[str, str]]) -> None:
        """What issuing these (order, customer) invoices looks at, in one statement; before_issuing
        then answers each once from it."""
        self.flush()
        customer_of = dict(asked)
        rows = [{"order_id": order_id, "customer_id": customer_id} for order_id, customer_id in customer_of.items()]
        for row in sql.run(self.conn, _BEFORE_ISSUING_MANY, bulk.rows(rows)):
            self.read_first[row.order_id] = (customer_of[row.order_id], BeforeIssuing(
                row.cancelled, row.invoiced, row.payment_terms))

    def save(self, invoice: Invoice) -> None:
        """Writes the payment state; the version check refuses a lost update."""
        self.flush()
        updated = self.conn.execute(invoices.update().where(
            invoices.c.invoice_id == invoice.invoice_id, invoices.c.version == invoice.version - 1,
        ).values(amount_paid=invoice.amount_paid, amount_credited=invoice.amount_credited, state=str(invoice.state),
                 version=invoice.version)).rowcount
        if updated != 1:
            raise Aborted(f"invoice {invoice.invoice_id} was changed by another request at the same time; "
                          "read it again and retry")

    def list(self, *, customer_id: str, order_id: str, states: frozenset[PaymentState] | None,
             overdue: bool | None, today: dt.date, after: tuple[int, int] | None, limit: int) -> builtins.list[Invoice]:
        """Ordered by number (year, sequence); keyset paging after the given key."""
        self.flush()
        query = sa.select(invoices)
        if customer_id:
            query = query.where(invoices.c.customer_id == customer_id)
        if order_id:
            query = query.where(invoices.c.order_id == order_id)
        if states is not None:
            query = query.where(invoices.c.state.in_(sorted(str(s) for s in states)))
        if overdue is True:
            query = query.where(invoices.c.due_date < today)
        elif overdue is False:
            query = query.where(invoices.c.due_date >= today)
        if after is not None:
            query = query.where(sa.tuple_(invoices.c.number_year, invoices.c.number_seq) > sa.tuple_(*after))
        rows = self.conn.execute(query.order_by(invoices.c.number_year, invoices.c.number_seq).limit(limit)).all()
        return self._load(rows)

    def open_items(self, currency_code: str, as_of: dt.datetime) -> builtins.list[OpenItem]:
        """Each invoice issued by as_of with what was due on it at that moment."""
        self.flush()
        paid = (sa.select(payments.c.invoice_id, sa.func.sum(payments.c.amount).label("amount"))
                .where(payments.c.received_at <= as_of).group_by(payments.c.invoice_id).subquery())
        credited = (sa.select(credit_notes.c.invoice_id, sa.func.sum(credit_notes.c.amount).label("amount"))
                    .where(credit_notes.c.issued_at <= as_of).group_by(credit_notes.c.invoice_id).subquery())
        due = (invoices.c.total - sa.func.coalesce(paid.c.amount, 0) - sa.func.coalesce(credited.c.amount, 0))
        query = (sa.select(invoices.c.customer_id, invoices.c.due_date, due.label("due"))
                 .select_from(invoices.outerjoin(paid, paid.c.invoice_id == invoices.c.invoice_id)
                              .outerjoin(credited, credited.c.invoice_id == invoices.c.invoice_id))
                 .where(invoices.c.currency_code == currency_code, invoices.c.issued_at <= as_of, due > 0)
                 .order_by(invoices.c.customer_id, invoices.c.due_date))
        return [OpenItem(r.customer_id, r.due_date, r.due) for r in self.conn.execute(query)]

    def _one(self, query, key: str) -> Invoice | None:
        self.flush()
        loaded = self._load(self.conn.execute(query, {"key": key}).all())
        return loaded[0] if loaded else None

    def _load(self, rows: Sequence) -> builtins.list[Invoice]:
        if not rows:
            return []
        lines: dict[str, list[InvoiceLine]] = {}
        for r in self.conn.execute(_INVOICE_LINES, {"ids": [row.invoice_id for row in rows]}):
            lines.setdefault(r.invoice_id, []).append(InvoiceLine(r.line_no, r.sku, r.quantity, r.unit_price, r.amount))
        return [Invoice(
            invoice_id=row.invoice_id, year=row.number_year, seq=row.number_seq, order_id=row.order_id,
            customer_id=row.customer_id, currency_code=row.currency_code, lines=lines.get(row.invoice_id, []),
            subtotal=row.subtotal, tax=row.tax, total=row.total, tax_rate=row.tax_rate, order_amount=row.order_amount,
            issued_at=row.issued_at, due_at=row.due_at, amount_paid=row.amount_paid,
            amount_credited=row.amount_credited, journal_entry_id=row.journal_entry_id, version=row.version,
        ) for row in rows]


class PaymentRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, payment: Payment) -> None:
        insert_for_request(self.conn, payments.insert().values(
            payment_id=payment.payment_id, request_id=payment.request_id, invoice_id=payment.invoice_id,
            amount=payment.amount, currency_code=payment.currency_code, reference=payment.reference,
            received_at=payment.received_at, journal_entry_id=payment.journal_entry_id), payment.request_id, "payment")

    def by_request(self, request_id: str) -> Payment | None:
        row = self.conn.execute(sa.select(payments).where(payments.c.request_id == request_id)).first()
        if row is None:
            return None
        return Payment(row.payment_id, row.request_id, row.invoice_id, row.amount, row.currency_code, row.reference,
                       row.received_at, row.journal_entry_id)


class CreditNoteRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, note: CreditNote) -> None:
        self.conn.execute(credit_notes.insert().values(
            credit_note_id=note.credit_note_id, number=note.number, number_year=note.year, number_seq=note.seq,
            invoice_id=note.invoice_id, order_id=note.order_id, customer_id=note.customer_id,
            currency_code=note.currency_code, amount=note.amount, unpaid_amount=note.unpaid_amount,
            reason=note.reason, issued_at=note.issued_at, journal_entry_id=note.journal_entry_id))

    def by_invoice(self, invoice_id: str) -> CreditNote | None:
        row = self.conn.execute(sa.select(credit_notes).where(credit_notes.c.invoice_id == invoice_id)).first()
        if row is None:
            return None
        return CreditNote(row.credit_note_id, row.number_year, row.number_seq, row.invoice_id, row.order_id,
                          row.customer_id, row.currency_code, row.amount, row.unpaid_amount, row.reason,
                          row.issued_at, row.journal_entry_id)


# ---------------------------------------------------------------- projections and tombstones




class CustomerRepository:
    """Payment terms per customer, a projection of CustomerUpdated events."""

    def __init__(self, conn: sa.Connection, read_first: BeforeIssuingRead | None = None) -> None:
        self.conn = conn
        self.read_first: BeforeIssuingRead = {} if read_first is None else read_first

    def upsert(self, terms: CustomerTerms) -> bool:
        """Stores the terms unless a newer version is already stored; returns whether it did."""
        self.read_first.clear()
        stmt = insert(customers).values(customer_id=terms.customer_id, payment_terms_days=terms.payment_terms_days,
                                        version=terms.version)
        stmt = stmt.on_conflict_do_update(
            index_elements=[customers.c.customer_id],
            set_={"payment_terms_days": stmt.excluded.payment_terms_days, "version": stmt.excluded.version,
                  "updated_at": sa.func.now()},
            where=customers.c.version <= stmt.excluded.version)
        return self.conn.execute(stmt).rowcount == 1




class CancellationRepository:
    """Orders cancelled before finance invoiced them: a late OrderConfirmed is ignored."""

    def __init__(self, conn: sa.Connection, read_first: BeforeIssuingRead | None = None) -> None:
        self.conn = conn
        self.read_first: BeforeIssuingRead = {} if read_first is None else read_first

    def add(self, order_id: str, reason: str) -> None:
        self.read_first.pop(order_id, None)
        self.conn.execute(insert(cancelled_orders).values(order_id=order_id, reason=reason).on_conflict_do_nothing())
