"""CRM's persistence: tables, repositories and its unit of work (SQLAlchemy Core).

The credit check locks the customer's row (SELECT ... FOR UPDATE) before it reads the
exposure, and every change to the exposure takes the same lock first, so two checks
for one customer run one after the other and the second sees what the first counted.
"""
from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from mesh import bulk, sql
from mesh.errors import Aborted
from mesh.uow import UnitOfWork
from services.crm.domain import (
    BeforeDeciding,
    ClosedBy,
    Contact,
    CreditDecision,
    Customer,
    CustomerStatus,
    Exposure,
    InvoiceBalance,
    SecretRef,
    WebhookSigning,
)

metadata = sa.MetaData()


def _created():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _updated():
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


customers = sa.Table(
    "customers", metadata,
    sa.Column("customer_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("status_reason", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("credit_limit", sa.Numeric(18, 4), nullable=False),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_as", sa.Text, nullable=False),
    _created(), _updated(),
    # The webhook's signing secrets by reference (migration 0003): ids, never a secret.
    sa.Column("webhook_secret_id", sa.Text, nullable=False, server_default=""),  # "" with a URL: legacy
    sa.Column("webhook_key_id", sa.Text, nullable=False, server_default=""),
    sa.Column("webhook_secret_version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("webhook_secret_created_at", sa.DateTime(timezone=True)),
    sa.Column("webhook_previous_secret_id", sa.Text),
    sa.Column("webhook_previous_key_id", sa.Text),
    sa.Column("webhook_previous_expires_at", sa.DateTime(timezone=True)),  # NULL: no previous secret
)

customer_contacts = sa.Table(
    "customer_contacts", metadata,
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.customer_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("phone", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
)

status_changes = sa.Table(
    "customer_status_changes", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.customer_id"), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("from_status", sa.Text, nullable=False),
    sa.Column("to_status", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    _created(),
)

credit_decisions = sa.Table(
    "credit_decisions", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("approved", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("order_total", sa.Numeric(18, 4)),
    sa.Column("exposure_after", sa.Numeric(18, 4)),
    sa.Column("credit_limit", sa.Numeric(18, 4)),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

open_orders = sa.Table(
    "open_orders", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("amount", sa.Numeric(18, 4)),  # NULL: a tombstone (closed before it was approved)
    sa.Column("closed_by", sa.Text),  # NULL while open
    _created(),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
)

unpaid_invoices = sa.Table(
    "unpaid_invoices", metadata,
    sa.Column("invoice_id", sa.Text, primary_key=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("total", sa.Numeric(18, 4)),
    sa.Column("lowest_due", sa.Numeric(18, 4)),
    sa.Column("credited", sa.Numeric(18, 4), nullable=False),
    sa.Column("amount_due", sa.Numeric(18, 4), nullable=False),  # domain.InvoiceBalance.amount_due
    _updated(),
)

credit_notes = sa.Table(
    "credit_notes", metadata,
    sa.Column("credit_note_id", sa.Text, primary_key=True),
    sa.Column("invoice_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("unpaid_amount", sa.Numeric(18, 4), nullable=False),
    _created(),
)


# The statements of the credit check and the invoice projection, built once: SQLAlchemy reuses their
# compiled form instead of building and hashing a new statement per event.
_CUSTOMER = sa.select(customers).where(customers.c.customer_id == sa.bindparam("id"))
_CUSTOMER_FOR_UPDATE = _CUSTOMER.with_for_update()
# = ANY(array), not IN (...): one statement text for any number of customers, prepared once.
_LOCK_CUSTOMERS = (sa.select(customers)
                   .where(customers.c.customer_id == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.Text))))
                   .order_by(customers.c.customer_id).with_for_update())
_CONTACTS = (sa.select(customer_contacts).where(customer_contacts.c.customer_id.in_(sa.bindparam("ids", expanding=True)))
             .order_by(customer_contacts.c.customer_id, customer_contacts.c.position))
_DECISION = sa.select(credit_decisions).where(credit_decisions.c.order_id == sa.bindparam("id"))
_DECISION_COLUMNS = ["order_id", "customer_id", "approved", "reason", "currency_code", "order_total", "exposure_after",
                     "credit_limit"]
_OPEN_TOTAL = sa.select(sa.func.coalesce(sa.func.sum(open_orders.c.amount), 0)).where(
    open_orders.c.customer_id == sa.bindparam("customer"), open_orders.c.currency_code == sa.bindparam("currency"),
    open_orders.c.closed_by.is_(None)).scalar_subquery()
# "amount_due > 0" is written into the SQL, not bound, so that a prepared statement's generic plan
# can still use the partial index unpaid_invoices_by_customer (WHERE amount_due > 0).
_UNPAID_TOTAL = sa.select(sa.func.coalesce(sa.func.sum(unpaid_invoices.c.amount_due), 0)).where(
    unpaid_invoices.c.customer_id == sa.bindparam("customer"),
    unpaid_invoices.c.currency_code == sa.bindparam("currency"),
    unpaid_invoices.c.amount_due > sa.literal_column("0")).scalar_subquery()
_TOTALS = sa.select(_OPEN_TOTAL.label("open"), _UNPAID_TOTAL.label("unpaid"))

# A transaction's statements (_Batch), each for any number of rows. What credit checks look at
# first: a decision already made, the order's tombstone (closed before it was decided), and the
# customer's exposure ("amount_due > 0" written into the SQL as in _UNPAID_TOTAL).
_ASKED = ["order_id", "customer_id", "currency_code"]
_BEFORE_DECIDING_MANY = sa.text(
    "SELECT v.order_id,"
    " EXISTS (SELECT FROM credit_decisions d WHERE d.order_id = v.order_id) AS decided,"
    " (SELECT o.closed_by FROM open_orders o WHERE o.order_id = v.order_id) AS closed_by,"
    " (SELECT coalesce(sum(o.amount), 0) FROM open_orders o WHERE o.customer_id = v.customer_id"
    "  AND o.currency_code = v.currency_code AND o.closed_by IS NULL) AS open,"
    " (SELECT coalesce(sum(u.amount_due), 0) FROM unpaid_invoices u WHERE u.customer_id = v.customer_id"
    "  AND u.currency_code = v.currency_code AND u.amount_due > 0) AS unpaid"
    f" FROM {bulk.recordset(open_orders, _ASKED, _ASKED)} AS v")
# Created empty, or the ones there already, locked: an upsert whose update changes nothing locks the
# row it meets and returns it as it is (its latest version).
_INVOICE_KEYS = ["invoice_id", "customer_id", "order_id", "currency_code"]
_INVOICES_LOCKED = sa.text(
    f"INSERT INTO unpaid_invoices ({', '.join(_INVOICE_KEYS)}, credited, amount_due)"
    f" SELECT {', '.join(_INVOICE_KEYS)}, 0, 0 FROM {bulk.recordset(unpaid_invoices, _INVOICE_KEYS, _INVOICE_KEYS)}"
    " AS v ORDER BY invoice_id"
    " ON CONFLICT (invoice_id) DO UPDATE SET invoice_id = excluded.invoice_id RETURNING *")
_decisions = ", ".join(_DECISION_COLUMNS)
_decided = bulk.recordset(credit_decisions, _DECISION_COLUMNS, _DECISION_COLUMNS, numbered=True)
# Decisions, and the orders the approvals open in the exposure.
_DECISIONS_WITH_APPROVALS = sa.text(
    f"WITH v AS MATERIALIZED (SELECT * FROM {_decided} AS v({_decisions}, row_no)),"
    f" decided AS (INSERT INTO credit_decisions ({_decisions}) SELECT {_decisions} FROM v ORDER BY row_no)"
    " INSERT INTO open_orders (order_id, customer_id, currency_code, amount)"
    " SELECT order_id, customer_id, currency_code, order_total FROM v WHERE approved ORDER BY row_no")
# Open orders closed, or tombstones for orders not seen yet; the first closure wins.
_CLOSED = ["order_id", "customer_id", "closed_by"]
_CLOSE_ORDERS = sa.text(
    "INSERT INTO open_orders (order_id, customer_id, currency_code, amount, closed_by, closed_at)"
    f" SELECT order_id, customer_id, '', NULL, closed_by, now() FROM {bulk.recordset(open_orders, _CLOSED, _CLOSED)}"
    " AS v ON CONFLICT (order_id) DO UPDATE SET closed_by = excluded.closed_by, closed_at = now()"
    " WHERE open_orders.closed_by IS NULL")
_INVOICES_SAVE = bulk.update_many(unpaid_invoices, {"invoice_id": "id"}, ["total", "lowest_due", "credited",
                                                                           "amount_due"], also={"updated_at": "now()"})


class CustomerRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._locked: dict[str, Customer | None] = {}  # read by lock_all (None: no such customer), no contacts

    def get(self, customer_id: str, for_update: bool = False) -> Customer | None:
        row = self.conn.execute(_CUSTOMER_FOR_UPDATE if for_update else _CUSTOMER, {"id": customer_id}).first()
        return self._load([row])[0] if row else None

    def lock_all(self, customer_ids: list[str]) -> None:
        """Locks these customers in id order (a batch's customers, before its handlers run); their
        handlers' lock_for_exposure then answers from what this read, with no query of its own."""
        if customer_ids:
            self._locked.update(dict.fromkeys(customer_ids))
            for row in sql.run(self.conn, _LOCK_CUSTOMERS, {"ids": customer_ids}):
                self._locked[row.customer_id] = _customer(row, ())

    def lock_for_exposure(self, customer_id: str) -> Customer | None:
        """The customer, locked, without its contacts (one query less): what the credit check
        and the exposure projection read. Not for saving."""
        if customer_id in self._locked:
            return self._locked[customer_id]
        row = self.conn.execute(_CUSTOMER_FOR_UPDATE, {"id": customer_id}).first()
        return _customer(row, ()) if row else None

    def list(self, after: str | None, status: CustomerStatus | None, limit: int) -> list[Customer]:
        query = sa.select(customers).order_by(customers.c.customer_id).limit(limit)
        if after is not None:
            query = query.where(customers.c.customer_id > after)
        if status is not None:
            query = query.where(customers.c.status == str(status))
        return self._load(self.conn.execute(query).all())

    def add(self, customer: Customer) -> bool:
        """Inserts the customer; False when the id exists (a concurrent create won)."""
        inserted = self.conn.execute(
            insert(customers).values(**_row(customer), created_as=customer.created_as)
            .on_conflict_do_nothing(index_elements=["customer_id"]).returning(customers.c.customer_id)
        ).first()
        if inserted is None:
            return False
        if customer.contacts:
            self.conn.execute(customer_contacts.insert(), [
                {"customer_id": customer.customer_id, "position": i, "name": c.name, "email": c.email,
                 "phone": c.phone, "role": c.role} for i, c in enumerate(customer.contacts)])
        return True

    def save(self, customer: Customer) -> None:
        """Writes status, credit limit and webhook; the version check refuses a lost update."""
        self._locked.pop(customer.customer_id, None)
        updated = self.conn.execute(customers.update().where(
            customers.c.customer_id == customer.customer_id, customers.c.version == customer.version - 1,
        ).values(status=str(customer.status), status_reason=customer.status_reason,
                 credit_limit=customer.credit_limit, webhook_url=customer.webhook_url,
                 **_signing_row(customer.webhook_signing), version=customer.version,
                 updated_at=sa.func.now())).rowcount
        if updated != 1:
            raise Aborted(f"customer {customer.customer_id} was changed by another request at the same time; "
                          "read it again and retry")

    def record_status_change(self, before: Customer, after: Customer) -> None:
        self.conn.execute(status_changes.insert().values(
            customer_id=after.customer_id, version=after.version, from_status=str(before.status),
            to_status=str(after.status), reason=after.status_reason))

    def _load(self, rows: Sequence[sa.Row[Any]]) -> builtins.list[Customer]:
        if not rows:
            return []
        contacts: dict[str, list[Contact]] = {}
        for c in self.conn.execute(_CONTACTS, {"ids": [r.customer_id for r in rows]}):
            contacts.setdefault(c.customer_id, []).append(Contact(c.name, c.email, c.phone, c.role))
        return [_customer(r, tuple(contacts.get(r.customer_id, ()))) for r in rows]


def _customer(r, contacts: tuple[Contact, ...]) -> Customer:
    return Customer(
        customer_id=r.customer_id, name=r.name, status=CustomerStatus(r.status), currency_code=r.currency_code,
        credit_limit=r.credit_limit, payment_terms_days=r.payment_terms_days, email=r.email, contacts=contacts,
        webhook_url=r.webhook_url, version=r.version, status_reason=r.status_reason, created_as=r.created_as,
        webhook_signing=_signing(r))


def _signing(r) -> WebhookSigning:
    """A URL with no secret id is one set before per-customer secrets: LEGACY."""
    current = SecretRef(r.webhook_secret_id, r.webhook_key_id) if r.webhook_url else None
    previous = None
    if r.webhook_previous_expires_at is not None:
        previous = SecretRef(r.webhook_previous_secret_id or "", r.webhook_previous_key_id or "")
    return WebhookSigning(current=current, version=r.webhook_secret_version, created_at=r.webhook_secret_created_at,
                          previous=previous, previous_expires_at=r.webhook_previous_expires_at)


def _signing_row(s: WebhookSigning) -> dict:
    current = s.current or SecretRef("", "")
    previous = s.previous if s.previous_expires_at is not None else None
    return {"webhook_secret_id": current.secret_id, "webhook_key_id": current.key_id,
            "webhook_secret_version": s.version, "webhook_secret_created_at": s.created_at,
            "webhook_previous_secret_id": previous.secret_id if previous else None,
            "webhook_previous_key_id": previous.key_id if previous else None,
            "webhook_previous_expires_at": s.previous_expires_at if previous else None}


def _row(customer: Customer) -> dict:
    return {"customer_id": customer.customer_id, "name": customer.name, "status": str(customer.status),
            "status_reason": customer.status_reason, "currency_code": customer.currency_code,
            "credit_limit": customer.credit_limit, "payment_terms_days": customer.payment_terms_days,
            "email": customer.email, "webhook_url": customer.webhook_url, "version": customer.version,
            **_signing_row(customer.webhook_signing)}


def _balance_row(balance: InvoiceBalance) -> dict[str, object]:
    return {"id": balance.invoice_id, "total": balance.total, "lowest_due": balance.lowest_due,
            "credited": balance.credited, "amount_due": balance.amount_due}


def _invoice(row) -> InvoiceBalance:
    return InvoiceBalance(row.invoice_id, row.customer_id, row.order_id, row.currency_code, row.total, row.lowest_due,
                          row.credited)


class _Batch:
    """A transaction's exposure as its credit checks and invoice events see it, and its writes.

    A consumer batch reads what all its events will look at in one statement per kind (read_all):
    each credit check's view (a decision already made, a tombstone, the customer's totals) and the
    invoices, created or locked. The writes are gathered and sent one statement per kind (flush):
    at the commit, or before any statement that reads what they change. A credit check's view is
    kept while the batch only approves orders of its customer (their totals are known: added to
    it); any other change of the customer's exposure drops the customer's views, and the check
    that needs one reads it again after a flush. Events name their order's or invoice's customer,
    as the customer locks already rely on."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.views: dict[str, tuple[tuple[str, str], BeforeDeciding]] = {}  # order -> (customer, currency), view
        self.invoices: dict[str, InvoiceBalance] = {}  # locked, as this transaction has them
        self.decisions: list[CreditDecision] = []
        self.closes: dict[str, dict[str, str]] = {}  # by order: its first closure wins
        self.saves: dict[str, InvoiceBalance] = {}  # by invoice: its last balance

    def read_views(self, asked: list[tuple[str, str, str]]) -> None:
        """The views of these (order, customer, currency) checks."""
        self.flush()
        keys = {order_id: (customer_id, currency) for order_id, customer_id, currency in asked}
        rows = [{"order_id": o, "customer_id": c, "currency_code": cur} for o, (c, cur) in keys.items()]
        for row in sql.run(self.conn, _BEFORE_DECIDING_MANY, bulk.rows(rows)):
            self.views[row.order_id] = (keys[row.order_id], BeforeDeciding(
                row.decided, ClosedBy(row.closed_by) if row.closed_by else None,
                Exposure(Decimal(row.open), Decimal(row.unpaid))))

    def read_invoices(self, asked: list[tuple[str, str, str, str]]) -> None:
        """These (invoice, customer, order, currency) invoices, locked; created empty when new."""
        self.flush()
        rows = {invoice_id: {"invoice_id": invoice_id, "customer_id": c, "order_id": o, "currency_code": cur}
                for invoice_id, c, o, cur in reversed(asked)}  # the first event of an invoice creates it
        for row in sql.run(self.conn, _INVOICES_LOCKED, bulk.rows(list(rows.values()))):
            self.invoices[row.invoice_id] = _invoice(row)

    def changed(self, customer_id: str) -> None:
        """The customer's exposure changed in a way its views cannot follow: they are read again."""
        for order_id in [o for o, (key, _) in self.views.items() if key[0] == customer_id]:
            del self.views[order_id]

    def approved(self, decision: CreditDecision) -> None:
        for order_id, ((customer_id, currency), view) in list(self.views.items()):
            if customer_id == decision.customer_id:
                if currency != decision.currency_code or decision.order_total is None:
                    self.changed(customer_id)
                    return
                opened = dataclasses.replace(view.exposure, open_orders=view.exposure.open_orders
                                             + decision.order_total)
                self.views[order_id] = ((customer_id, currency), dataclasses.replace(view, exposure=opened))

    def flush(self) -> None:
        if self.decisions:
            sql.run(self.conn, _DECISIONS_WITH_APPROVALS, bulk.rows(
                [{c: getattr(d, c) for c in _DECISION_COLUMNS} for d in self.decisions]))
            self.decisions = []
        if self.closes:
            sql.run(self.conn, _CLOSE_ORDERS, bulk.rows(list(self.closes.values())))
            self.closes = {}
        if self.saves:
            sql.run(self.conn, _INVOICES_SAVE, bulk.rows([_balance_row(b) for b in self.saves.values()]))
            self.saves = {}


class CreditRepository:
    """One decision per order, ever (the primary key makes it so)."""

    def __init__(self, conn: sa.Connection, batch: _Batch) -> None:
        self.conn = conn
        self.batch = batch

    def decision(self, order_id: str) -> CreditDecision | None:
        self.batch.flush()
        row = self.conn.execute(_DECISION, {"id": order_id}).first()
        if row is None:
            return None
        return CreditDecision(row.order_id, row.customer_id, row.approved, row.reason, row.currency_code,
                              row.order_total, row.exposure_after, row.credit_limit)

    def add(self, decision: CreditDecision) -> None:
        """Records the decision; an approval also opens its order in the exposure (open_orders, its
        total), in the same statement: an approved order counts from the moment it is decided.
        Written with the batch's other decisions (flush)."""
        self.batch.decisions.append(decision)
        if decision.approved:
            self.batch.approved(decision)


class ExposureRepository:
    """Open orders and unpaid invoices per customer: crm's projection of order and
    finance events."""

    def __init__(self, conn: sa.Connection, batch: _Batch) -> None:
        self.conn = conn
        self.batch = batch

    def read_all(self, checks: list[tuple[str, str, str]], invoices: list[tuple[str, str, str, str]]) -> None:
        """What a batch's events will read: the views of its credit checks (order, customer,
        currency) and its invoices (invoice, customer, order, currency), locked."""
        if checks:
            self.batch.read_views(checks)
        if invoices:
            self.batch.read_invoices(invoices)

    def totals(self, customer_id: str, currency_code: str) -> Exposure:
        self.batch.flush()
        row = self.conn.execute(_TOTALS, {"customer": customer_id, "currency": currency_code}).one()
        return Exposure(Decimal(row.open), Decimal(row.unpaid))

    def before_deciding(self, order_id: str, customer_id: str, currency_code: str) -> BeforeDeciding:
        """What the order's credit check looks at, with this transaction's changes; read once
        (the check that reads it decides the order)."""
        found = self.batch.views.pop(order_id, None)
        if found is None or found[0] != (customer_id, currency_code):
            self.batch.read_views([(order_id, customer_id, currency_code)])
            found = self.batch.views.pop(order_id)
        return found[1]

    # open orders (an approval opens one: CreditRepository.add)
    def close_order(self, order_id: str, customer_id: str, closed_by: ClosedBy) -> None:
        """Closes an open order, or leaves a tombstone for one not seen yet; the first
        closure wins. Written with the batch's other closures (flush)."""
        self.batch.closes.setdefault(order_id, {"order_id": order_id, "customer_id": customer_id,
                                                "closed_by": str(closed_by)})
        self.batch.views.pop(order_id, None)
        self.batch.changed(customer_id)

    # invoices
    def invoice(self, invoice_id: str, customer_id: str, order_id: str, currency_code: str) -> InvoiceBalance:
        """The invoice's balance, locked; created empty when this is the first event about it."""
        if invoice_id not in self.batch.invoices:
            self.batch.read_invoices([(invoice_id, customer_id, order_id, currency_code)])
        return self.batch.invoices[invoice_id]

    def save_invoice(self, balance: InvoiceBalance) -> None:
        """Written with the batch's other balances (flush)."""
        self.batch.saves[balance.invoice_id] = self.batch.invoices[balance.invoice_id] = balance
        self.batch.changed(balance.customer_id)

    def invoice_replaces_order(self, balance: InvoiceBalance) -> None:
        """The invoice's order closes (INVOICED; the first closure wins) and its balance is saved."""
        self.close_order(balance.order_id, balance.customer_id, ClosedBy.INVOICED)
        self.save_invoice(balance)

    def add_credit_note(self, credit_note_id: str, invoice_id: str, customer_id: str, unpaid_amount: Decimal) -> bool:
        """Records a credit note; False when it was recorded already."""
        self.batch.flush()
        return self.conn.execute(insert(credit_notes).values(
            credit_note_id=credit_note_id, invoice_id=invoice_id, customer_id=customer_id,
            unpaid_amount=unpaid_amount).on_conflict_do_nothing(index_elements=["credit_note_id"])
            .returning(credit_notes.c.credit_note_id)).first() is not None


class CrmUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.customers = CustomerRepository(self.connection)
        batch = _Batch(self.connection)  # fresh after a rollback too: what it gathered is dropped
        self.credit = CreditRepository(self.connection, batch)
        self.exposure = ExposureRepository(self.connection, batch)

    def flush(self) -> None:
        self.exposure.batch.flush()
