"""Finance's persistence: tables, repositories and its unit of work (SQLAlchemy Core).

Invoice and credit-note numbers come from a counter row per (kind, year), incremented
in the transaction that uses the number (INSERT ... ON CONFLICT DO UPDATE ... RETURNING):
the row lock serializes numbering, and a rollback takes the increment back with it, so
numbers have no gaps. Journal entries are only ever inserted; a deferred constraint
trigger refuses, at commit, an entry whose debits and credits differ, and another
trigger refuses any UPDATE or DELETE of a posted entry (see the initial migration).

The payables section keeps the purchase orders finance knows, goods receipts, supplier
bills and their payments (migration 0002). Every change to a purchase order's quantities,
and every bill recorded, released or matched against it, happens under the order's row
locks (PurchaseOrderRepository.get(for_update=True)), so two bills never bill the same
received quantity; lock order is purchase order, then bill.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh.errors import Aborted, AlreadyExists
from mesh.uow import UnitOfWork
from services.finance.domain import (
    AccountTotals,
    CreditNote,
    CustomerTerms,
    Invoice,
    InvoiceLine,
    JournalEntry,
    JournalLine,
    OpenItem,
    Payment,
    PaymentState,
)
from services.finance.payables import (
    BillLine,
    BillPayment,
    BillStage,
    BillStatus,
    GoodsReceipt,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierBill,
)

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


# ---------------------------------------------------------------- numbering


class NumberSequences:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def next(self, kind: str, year: int) -> int:
        """The next number of (kind, year); the counter row stays locked until the
        transaction ends, and a rollback undoes the increment (no gaps)."""
        return self.conn.execute(_NEXT_NUMBER, {"kind": kind, "year": year}).scalar_one()

    def lock(self, kind: str, year: int) -> None:
        """Takes the (kind, year) counter's row lock now, if the counter exists."""
        self.conn.execute(_LOCK_NUMBER, {"kind": kind, "year": year}).all()


# Built once (the invoice path runs them per order): SQLAlchemy reuses their compiled form.
_NEXT_NUMBER = (insert(number_sequences).values(kind=sa.bindparam("kind"), year=sa.bindparam("year"), last_value=1)
                .on_conflict_do_update(index_elements=[number_sequences.c.kind, number_sequences.c.year],
                                       set_={"last_value": number_sequences.c.last_value + 1})
                .returning(number_sequences.c.last_value))
_LOCK_NUMBER = (sa.select(number_sequences.c.last_value)
                .where(number_sequences.c.kind == sa.bindparam("kind"), number_sequences.c.year == sa.bindparam("year"))
                .with_for_update())


# ---------------------------------------------------------------- invoices


def _invoice_row(invoice: Invoice) -> dict:
    return {"invoice_id": invoice.invoice_id, "number": invoice.number, "number_year": invoice.year,
            "number_seq": invoice.seq, "order_id": invoice.order_id, "customer_id": invoice.customer_id,
            "currency_code": invoice.currency_code, "subtotal": invoice.subtotal, "tax": invoice.tax,
            "total": invoice.total, "tax_rate": invoice.tax_rate, "order_amount": invoice.order_amount,
            "amount_paid": invoice.amount_paid, "amount_credited": invoice.amount_credited,
            "state": str(invoice.state), "issued_at": invoice.issued_at, "due_at": invoice.due_at,
            "due_date": invoice.due_date, "journal_entry_id": invoice.journal_entry_id, "version": invoice.version}


_INVOICE_INSERT = invoices.insert()
_INVOICE_LINES_INSERT = invoice_lines.insert()
_INVOICE_LINES = (sa.select(invoice_lines).where(invoice_lines.c.invoice_id.in_(sa.bindparam("ids", expanding=True)))
                  .order_by(invoice_lines.c.invoice_id, invoice_lines.c.line_no))
_INVOICE_BY_ID = sa.select(invoices).where(invoices.c.invoice_id == sa.bindparam("key"))
_INVOICE_BY_ID_FOR_UPDATE = _INVOICE_BY_ID.with_for_update()
_INVOICE_BY_ORDER = sa.select(invoices).where(invoices.c.order_id == sa.bindparam("key"))
_INVOICE_BY_ORDER_FOR_UPDATE = _INVOICE_BY_ORDER.with_for_update()


class InvoiceRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, invoice: Invoice) -> None:
        self.conn.execute(_INVOICE_INSERT, _invoice_row(invoice))
        self.conn.execute(_INVOICE_LINES_INSERT, [
            {"invoice_id": invoice.invoice_id, "line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
             "unit_price": line.unit_price, "amount": line.amount} for line in invoice.lines])

    def get(self, invoice_id: str, for_update: bool = False) -> Invoice | None:
        return self._one(_INVOICE_BY_ID_FOR_UPDATE if for_update else _INVOICE_BY_ID, invoice_id)

    def by_order(self, order_id: str, for_update: bool = False) -> Invoice | None:
        return self._one(_INVOICE_BY_ORDER_FOR_UPDATE if for_update else _INVOICE_BY_ORDER, order_id)

    def save(self, invoice: Invoice) -> None:
        """Writes the payment state; the version check refuses a lost update."""
        updated = self.conn.execute(invoices.update().where(
            invoices.c.invoice_id == invoice.invoice_id, invoices.c.version == invoice.version - 1,
        ).values(amount_paid=invoice.amount_paid, amount_credited=invoice.amount_credited, state=str(invoice.state),
                 version=invoice.version)).rowcount
        if updated != 1:
            raise Aborted(f"invoice {invoice.invoice_id} was changed by another request at the same time; "
                          "read it again and retry")

    def list(self, *, customer_id: str, order_id: str, states: frozenset[PaymentState] | None,
             overdue: bool | None, today: dt.date, after: tuple[int, int] | None, limit: int) -> list[Invoice]:
        """Ordered by number (year, sequence); keyset paging after the given key."""
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

    def open_items(self, currency_code: str, as_of: dt.datetime) -> list[OpenItem]:
        """Each invoice issued by as_of with what was due on it at that moment."""
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
        loaded = self._load(self.conn.execute(query, {"key": key}).all())
        return loaded[0] if loaded else None

    def _load(self, rows: Sequence) -> list[Invoice]:
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
        try:
            self.conn.execute(payments.insert().values(
                payment_id=payment.payment_id, request_id=payment.request_id, invoice_id=payment.invoice_id,
                amount=payment.amount, currency_code=payment.currency_code, reference=payment.reference,
                received_at=payment.received_at, journal_entry_id=payment.journal_entry_id))
        except sa.exc.IntegrityError as exc:
            # Two first requests with one request_id for different invoices raced; the
            # transaction is lost either way, and the caller learns why.
            if "request_id" in str(exc.orig):
                raise AlreadyExists(f"request_id {payment.request_id} was used for another payment") from exc
            raise

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


_PAYMENT_TERMS = sa.select(customers.c.payment_terms_days).where(customers.c.customer_id == sa.bindparam("id"))


class CustomerRepository:
    """Payment terms per customer, a projection of CustomerUpdated events."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def payment_terms(self, customer_id: str) -> int | None:
        return self.conn.execute(_PAYMENT_TERMS, {"id": customer_id}).scalar()

    def upsert(self, terms: CustomerTerms) -> bool:
        """Stores the terms unless a newer version is already stored; returns whether it did."""
        stmt = insert(customers).values(customer_id=terms.customer_id, payment_terms_days=terms.payment_terms_days,
                                        version=terms.version)
        stmt = stmt.on_conflict_do_update(
            index_elements=[customers.c.customer_id],
            set_={"payment_terms_days": stmt.excluded.payment_terms_days, "version": stmt.excluded.version,
                  "updated_at": sa.func.now()},
            where=customers.c.version <= stmt.excluded.version)
        return self.conn.execute(stmt).rowcount == 1


_CANCELLED = sa.select(sa.literal(1)).where(cancelled_orders.c.order_id == sa.bindparam("id"))


class CancellationRepository:
    """Orders cancelled before finance invoiced them: a late OrderConfirmed is ignored."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, order_id: str, reason: str) -> None:
        self.conn.execute(insert(cancelled_orders).values(order_id=order_id, reason=reason).on_conflict_do_nothing())

    def exists(self, order_id: str) -> bool:
        return self.conn.execute(_CANCELLED, {"id": order_id}).first() is not None


# ---------------------------------------------------------------- the journal


_ENTRY_INSERT = journal_entries.insert().returning(journal_entries.c.entry_id)
_ENTRY_LINES_INSERT = journal_lines.insert()


class JournalRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def post(self, entry: JournalEntry) -> int:
        """Inserts a checked entry and its lines; returns its id. Never updates anything."""
        entry.check()
        entry_id = self.conn.execute(_ENTRY_INSERT, {
            "memo": entry.memo, "reference": entry.reference, "currency_code": entry.currency_code,
            "reverses_entry_id": entry.reverses_entry_id}).scalar_one()
        self.conn.execute(_ENTRY_LINES_INSERT, [
            {"entry_id": entry_id, "line_no": i + 1, "account": line.account, "debit": line.debit,
             "credit": line.credit} for i, line in enumerate(entry.lines)])
        return entry_id

    def get(self, entry_id: int) -> JournalEntry | None:
        loaded = self._load(self.conn.execute(sa.select(journal_entries)
                                              .where(journal_entries.c.entry_id == entry_id)).all())
        return loaded[0] if loaded else None

    def list(self, *, reference: str, after: int | None, limit: int) -> list[JournalEntry]:
        query = sa.select(journal_entries)
        if reference:
            query = query.where(journal_entries.c.reference == reference)
        if after is not None:
            query = query.where(journal_entries.c.entry_id > after)
        return self._load(self.conn.execute(query.order_by(journal_entries.c.entry_id).limit(limit)).all())

    def trial_balance(self, currency_code: str, until: dt.datetime | None = None) -> list[AccountTotals]:
        """Totals per account over the entries posted before `until` (all of them when None)."""
        query = (sa.select(accounts.c.code, accounts.c.name, sa.func.sum(journal_lines.c.debit).label("debit"),
                           sa.func.sum(journal_lines.c.credit).label("credit"))
                 .select_from(journal_lines.join(journal_entries).join(accounts))
                 .where(journal_entries.c.currency_code == currency_code,
                        *([journal_entries.c.posted_at < until] if until is not None else []))
                 .group_by(accounts.c.code, accounts.c.name).order_by(accounts.c.code))
        return [AccountTotals(r.code, r.name, r.debit, r.credit) for r in self.conn.execute(query)]

    def _load(self, rows: Sequence) -> list[JournalEntry]:
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


# ---------------------------------------------------------------- payables (migration 0002)

purchase_orders = sa.Table(
    "purchase_orders", metadata,
    sa.Column("purchase_order_id", sa.Text, primary_key=True),
    sa.Column("number", sa.Text, nullable=False),
    sa.Column("supplier_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("approved_version", sa.BigInteger, nullable=False),
    sa.Column("bills_posted", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

purchase_order_lines = sa.Table(
    "purchase_order_lines", metadata,
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("ordered_quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", PRICE, nullable=False),
    sa.Column("received_quantity", sa.BigInteger, nullable=False),
    sa.Column("billed_quantity", sa.BigInteger, nullable=False),
)

goods_receipts = sa.Table(
    "goods_receipts", metadata,
    sa.Column("receipt_id", sa.Text, primary_key=True),
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

goods_receipt_lines = sa.Table(
    "goods_receipt_lines", metadata,
    sa.Column("receipt_id", sa.Text, sa.ForeignKey("goods_receipts.receipt_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
)

supplier_bills = sa.Table(
    "supplier_bills", metadata,
    sa.Column("bill_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("supplier_bill_number", sa.Text, nullable=False),
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False),
    sa.Column("supplier_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("total", MONEY, nullable=False),
    sa.Column("amount_paid", MONEY, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True)),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
    sa.Column("reviewed_by", sa.Text, nullable=False),
    sa.Column("review_note", sa.Text, nullable=False),
    sa.Column("review_decision", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

supplier_bill_lines = sa.Table(
    "supplier_bill_lines", metadata,
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", PRICE, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
)

supplier_bill_hold_reasons = sa.Table(
    "supplier_bill_hold_reasons", metadata,
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
)

supplier_bill_payments = sa.Table(
    "supplier_bill_payments", metadata,
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), nullable=False),
)


class PurchaseOrderRepository:
    """The purchase orders finance knows, with ordered, received and billed quantities."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def upsert(self, order: PurchaseOrder, version: int) -> bool:
        """Stores an approved order unless a newer approval is stored; keeps what was
        received and billed against lines it already has. Returns whether it stored."""
        stmt = insert(purchase_orders).values(
            purchase_order_id=order.purchase_order_id, number=order.number, supplier_id=order.supplier_id,
            currency_code=order.currency_code, payment_terms_days=order.payment_terms_days,
            approved_version=version, bills_posted=0)
        stmt = stmt.on_conflict_do_update(
            index_elements=[purchase_orders.c.purchase_order_id],
            set_={name: stmt.excluded[name] for name in ("number", "supplier_id", "currency_code",
                                                         "payment_terms_days", "approved_version")}
            | {"updated_at": sa.func.now()},
            where=purchase_orders.c.approved_version <= stmt.excluded.approved_version)
        if self.conn.execute(stmt.returning(purchase_orders.c.purchase_order_id)).first() is None:
            return False
        lines = insert(purchase_order_lines).values([
            {"purchase_order_id": order.purchase_order_id, "line_no": line.line_no, "sku": line.sku,
             "ordered_quantity": line.ordered, "unit_price": line.unit_price, "received_quantity": 0,
             "billed_quantity": 0} for line in order.lines.values()])
        self.conn.execute(lines.on_conflict_do_update(
            index_elements=[purchase_order_lines.c.purchase_order_id, purchase_order_lines.c.line_no],
            set_={name: lines.excluded[name] for name in ("sku", "ordered_quantity", "unit_price")}))
        return True

    def get(self, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder | None:
        """With for_update, the order's row and its lines stay locked until the transaction ends."""
        query = sa.select(purchase_orders).where(purchase_orders.c.purchase_order_id == purchase_order_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        lines_query = (sa.select(purchase_order_lines)
                       .where(purchase_order_lines.c.purchase_order_id == purchase_order_id)
                       .order_by(purchase_order_lines.c.line_no))
        lines = {r.line_no: PurchaseOrderLine(r.line_no, r.sku, r.ordered_quantity, r.unit_price, r.received_quantity,
                                              r.billed_quantity)
                 for r in self.conn.execute(lines_query.with_for_update() if for_update else lines_query)}
        return PurchaseOrder(row.purchase_order_id, row.number, row.supplier_id, row.currency_code,
                             row.payment_terms_days, lines, row.bills_posted)

    def save_quantities(self, order: PurchaseOrder) -> None:
        """Writes received and billed quantities; call it with the order locked."""
        self.conn.execute(purchase_orders.update()
                          .where(purchase_orders.c.purchase_order_id == order.purchase_order_id)
                          .values(bills_posted=order.bills_posted, updated_at=sa.func.now()))
        self.conn.execute(
            purchase_order_lines.update().where(
                purchase_order_lines.c.purchase_order_id == sa.bindparam("po"),
                purchase_order_lines.c.line_no == sa.bindparam("n"),
            ).values(received_quantity=sa.bindparam("received"), billed_quantity=sa.bindparam("billed")),
            [{"po": order.purchase_order_id, "n": line.line_no, "received": line.received, "billed": line.billed}
             for line in order.lines.values()])


class GoodsReceiptRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def exists(self, receipt_id: str) -> bool:
        return self.conn.execute(sa.select(sa.literal(1)).where(goods_receipts.c.receipt_id == receipt_id)).first() \
            is not None

    def add(self, receipt: GoodsReceipt) -> None:
        self.conn.execute(goods_receipts.insert().values(
            receipt_id=receipt.receipt_id, purchase_order_id=receipt.purchase_order_id, amount=receipt.amount,
            journal_entry_id=receipt.journal_entry_id))
        self.conn.execute(goods_receipt_lines.insert(), [
            {"receipt_id": receipt.receipt_id, "line_no": line.line_no, "quantity": line.quantity,
             "amount": line.amount} for line in receipt.lines])


def _bill_row(bill: SupplierBill) -> dict:
    return {"status": str(bill.status), "total": bill.total, "amount_paid": bill.amount_paid,
            "posted_at": bill.posted_at, "journal_entry_id": bill.journal_entry_id, "reviewed_by": bill.reviewed_by,
            "review_note": bill.review_note, "review_decision": bill.review_decision, "version": bill.version}


def _stage(status: str) -> BillStage:
    return BillStage(status) if status in (BillStage.HELD, BillStage.REJECTED) else BillStage.POSTED


class SupplierBillRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, bill: SupplierBill) -> None:
        try:
            bill.seq = self.conn.execute(supplier_bills.insert().values(
                bill_id=bill.bill_id, request_id=bill.request_id, supplier_bill_number=bill.supplier_bill_number,
                purchase_order_id=bill.purchase_order_id, supplier_id=bill.supplier_id,
                currency_code=bill.currency_code, recorded_at=bill.recorded_at, due_at=bill.due_at, **_bill_row(bill),
            ).returning(supplier_bills.c.seq)).scalar_one()
        except sa.exc.IntegrityError as exc:
            # A twin request (same request_id, or the same supplier's bill number) on another
            # purchase order committed first; this transaction is lost, the caller learns why.
            if "request_id" in str(exc.orig):
                raise AlreadyExists(f"request_id {bill.request_id} was used for another supplier bill") from exc
            if "supplier_bill_number_unique" in str(exc.orig):
                raise AlreadyExists(f"supplier {bill.supplier_id} already has a bill numbered "
                                    f"{bill.supplier_bill_number}") from exc
            raise
        self.conn.execute(supplier_bill_lines.insert(), [
            {"bill_id": bill.bill_id, "line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
             "unit_price": line.unit_price, "amount": line.amount} for line in bill.lines])
        self._write_reasons(bill)

    def save(self, bill: SupplierBill) -> None:
        """Writes the bill's state and hold reasons; the version check refuses a lost update."""
        updated = self.conn.execute(supplier_bills.update().where(
            supplier_bills.c.bill_id == bill.bill_id, supplier_bills.c.version < bill.version,
        ).values(**_bill_row(bill))).rowcount
        if updated != 1:
            raise Aborted(f"supplier bill {bill.bill_id} was changed by another request at the same time; "
                          "read it again and retry")
        self.conn.execute(supplier_bill_hold_reasons.delete().where(supplier_bill_hold_reasons.c.bill_id == bill.bill_id))
        self._write_reasons(bill)

    def _write_reasons(self, bill: SupplierBill) -> None:
        if bill.hold_reasons:
            self.conn.execute(supplier_bill_hold_reasons.insert(), [
                {"bill_id": bill.bill_id, "position": i, "reason": reason}
                for i, reason in enumerate(bill.hold_reasons, start=1)])

    def get(self, bill_id: str, for_update: bool = False) -> SupplierBill | None:
        found = self._select(supplier_bills.c.bill_id == bill_id, for_update=for_update)
        return found[0] if found else None

    def by_request(self, request_id: str) -> SupplierBill | None:
        found = self._select(supplier_bills.c.request_id == request_id)
        return found[0] if found else None

    def by_number(self, supplier_id: str, supplier_bill_number: str) -> SupplierBill | None:
        found = self._select(supplier_bills.c.supplier_id == supplier_id,
                             supplier_bills.c.supplier_bill_number == supplier_bill_number)
        return found[0] if found else None

    def held_for(self, purchase_order_id: str) -> list[SupplierBill]:
        """The order's held bills, oldest first, locked (take the order's lock first)."""
        return self._select(supplier_bills.c.purchase_order_id == purchase_order_id,
                            supplier_bills.c.status == str(BillStatus.HELD), for_update=True)

    def list(self, *, supplier_id: str, purchase_order_id: str, status: BillStatus | None, after: int | None,
             limit: int) -> list[SupplierBill]:
        conditions = []
        if supplier_id:
            conditions.append(supplier_bills.c.supplier_id == supplier_id)
        if purchase_order_id:
            conditions.append(supplier_bills.c.purchase_order_id == purchase_order_id)
        if status is not None:
            conditions.append(supplier_bills.c.status == str(status))
        if after is not None:
            conditions.append(supplier_bills.c.seq > after)
        return self._select(*conditions, limit=limit)

    def _select(self, *conditions, for_update: bool = False, limit: int | None = None) -> list[SupplierBill]:
        query = sa.select(supplier_bills).where(*conditions).order_by(supplier_bills.c.seq).limit(limit)
        rows = self.conn.execute(query.with_for_update() if for_update else query).all()
        if not rows:
            return []
        ids = [row.bill_id for row in rows]
        lines: dict[str, list[BillLine]] = {}
        for r in self.conn.execute(sa.select(supplier_bill_lines).where(supplier_bill_lines.c.bill_id.in_(ids))
                                   .order_by(supplier_bill_lines.c.bill_id, supplier_bill_lines.c.line_no)):
            lines.setdefault(r.bill_id, []).append(BillLine(r.line_no, r.sku, r.quantity, r.unit_price, r.amount))
        reasons: dict[str, list[str]] = {}
        for r in self.conn.execute(sa.select(supplier_bill_hold_reasons)
                                   .where(supplier_bill_hold_reasons.c.bill_id.in_(ids))
                                   .order_by(supplier_bill_hold_reasons.c.bill_id,
                                             supplier_bill_hold_reasons.c.position)):
            reasons.setdefault(r.bill_id, []).append(r.reason)
        return [SupplierBill(
            bill_id=row.bill_id, request_id=row.request_id, supplier_bill_number=row.supplier_bill_number,
            purchase_order_id=row.purchase_order_id, supplier_id=row.supplier_id, currency_code=row.currency_code,
            lines=lines.get(row.bill_id, []), recorded_at=row.recorded_at, due_at=row.due_at,
            stage=_stage(row.status), hold_reasons=reasons.get(row.bill_id, []), amount_paid=row.amount_paid,
            reviewed_by=row.reviewed_by, review_note=row.review_note, review_decision=row.review_decision,
            posted_at=row.posted_at, journal_entry_id=row.journal_entry_id, seq=row.seq, version=row.version,
        ) for row in rows]


class BillPaymentRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, payment: BillPayment) -> None:
        try:
            self.conn.execute(supplier_bill_payments.insert().values(
                payment_id=payment.payment_id, request_id=payment.request_id, bill_id=payment.bill_id,
                amount=payment.amount, currency_code=payment.currency_code, reference=payment.reference,
                paid_at=payment.paid_at, journal_entry_id=payment.journal_entry_id))
        except sa.exc.IntegrityError as exc:
            # Two first requests with one request_id for different bills raced.
            if "request_id" in str(exc.orig):
                raise AlreadyExists(f"request_id {payment.request_id} was used for another bill payment") from exc
            raise

    def by_request(self, request_id: str) -> BillPayment | None:
        row = self.conn.execute(sa.select(supplier_bill_payments)
                                .where(supplier_bill_payments.c.request_id == request_id)).first()
        if row is None:
            return None
        return BillPayment(row.payment_id, row.request_id, row.bill_id, row.amount, row.currency_code, row.reference,
                           row.paid_at, row.journal_entry_id)


class FinanceUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.numbers = NumberSequences(self.connection)
        self.invoices = InvoiceRepository(self.connection)
        self.payments = PaymentRepository(self.connection)
        self.credit_notes = CreditNoteRepository(self.connection)
        self.customers = CustomerRepository(self.connection)
        self.cancellations = CancellationRepository(self.connection)
        self.journal = JournalRepository(self.connection)
        self.purchase_orders = PurchaseOrderRepository(self.connection)
        self.goods_receipts = GoodsReceiptRepository(self.connection)
        self.supplier_bills = SupplierBillRepository(self.connection)
        self.bill_payments = BillPaymentRepository(self.connection)
        from services.finance.valuation import StockPostingRepository  # it builds on this module's tables

        self.stock_postings = StockPostingRepository(self.connection)

