"""CRM's persistence: tables, repositories and its unit of work (SQLAlchemy Core).

The credit check locks the customer's row (SELECT ... FOR UPDATE) before it reads the
exposure, and every change to the exposure takes the same lock first, so two checks
for one customer run one after the other and the second sees what the first counted.
"""
from __future__ import annotations

import builtins
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert

from mesh import sql
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
_DECISION_INSERT = credit_decisions.insert().values({c: sa.bindparam(f"d_{c}") for c in _DECISION_COLUMNS})
# An approval and the order it opens in the exposure, in one statement.
_APPROVAL_INSERT = open_orders.insert().values(
    order_id=sa.bindparam("d_order_id"), customer_id=sa.bindparam("d_customer_id"),
    currency_code=sa.bindparam("d_currency_code"), amount=sa.bindparam("d_order_total"),
).add_cte(_DECISION_INSERT.cte("decided"))
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
# What a credit decision looks at first, in one round trip: a decision already made, the order's
# tombstone (closed before it was decided), and the customer's exposure.
_BEFORE_DECIDING = sa.select(
    sa.exists().where(credit_decisions.c.order_id == sa.bindparam("order")).label("decided"),
    sa.select(open_orders.c.closed_by).where(open_orders.c.order_id == sa.bindparam("order"))
    .scalar_subquery().label("closed_by"),
    _OPEN_TOTAL.label("open"), _UNPAID_TOTAL.label("unpaid"))
_close = insert(open_orders).values(order_id=sa.bindparam("p_order"), customer_id=sa.bindparam("p_customer"),
                                    currency_code="", amount=None, closed_by=sa.bindparam("p_closed_by"),
                                    closed_at=sa.func.now())
_CLOSE_ORDER = _close.on_conflict_do_update(
    index_elements=["order_id"], set_={"closed_by": _close.excluded.closed_by, "closed_at": sa.func.now()},
    where=open_orders.c.closed_by.is_(None)).returning(open_orders.c.order_id)
_invoice_new = insert(unpaid_invoices).values(
    invoice_id=sa.bindparam("p_invoice"), customer_id=sa.bindparam("p_customer"), order_id=sa.bindparam("p_order"),
    currency_code=sa.bindparam("p_currency"), credited=0, amount_due=0)
# Created empty, or the one there already, locked, in one statement: an upsert whose update
# changes nothing locks the row it meets and returns it as it is (its latest version).
_INVOICE_LOCKED = _invoice_new.on_conflict_do_update(
    index_elements=["invoice_id"], set_={"invoice_id": _invoice_new.excluded.invoice_id},
).returning(*unpaid_invoices.c)
_INVOICE_SAVE = unpaid_invoices.update().where(unpaid_invoices.c.invoice_id == sa.bindparam("id")).values(
    updated_at=sa.func.now())
# An invoice replacing its order in the exposure: the order closed (the first closure wins) and the
# invoice's balance saved, in one statement.
_INVOICE_REPLACES_ORDER = _INVOICE_SAVE.add_cte(_CLOSE_ORDER.cte("closed"))


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


class CreditRepository:
    """One decision per order, ever (the primary key makes it so)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def decision(self, order_id: str) -> CreditDecision | None:
        row = self.conn.execute(_DECISION, {"id": order_id}).first()
        if row is None:
            return None
        return CreditDecision(row.order_id, row.customer_id, row.approved, row.reason, row.currency_code,
                              row.order_total, row.exposure_after, row.credit_limit)

    def add(self, decision: CreditDecision) -> None:
        """Records the decision; an approval also opens its order in the exposure (open_orders, its
        total), in the same statement: an approved order counts from the moment it is decided."""
        sql.run(self.conn, _APPROVAL_INSERT if decision.approved else _DECISION_INSERT,
                           {f"d_{c}": getattr(decision, c) for c in _DECISION_COLUMNS})


class ExposureRepository:
    """Open orders and unpaid invoices per customer: crm's projection of order and
    finance events."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def totals(self, customer_id: str, currency_code: str) -> Exposure:
        row = self.conn.execute(_TOTALS, {"customer": customer_id, "currency": currency_code}).one()
        return Exposure(Decimal(row.open), Decimal(row.unpaid))

    def before_deciding(self, order_id: str, customer_id: str, currency_code: str) -> BeforeDeciding:
        row = sql.run(self.conn, _BEFORE_DECIDING, {"order": order_id, "customer": customer_id,
                                                    "currency": currency_code}).one()
        return BeforeDeciding(row.decided, ClosedBy(row.closed_by) if row.closed_by else None,
                              Exposure(Decimal(row.open), Decimal(row.unpaid)))

    # open orders (an approval opens one: CreditRepository.add)
    def close_order(self, order_id: str, customer_id: str, closed_by: ClosedBy) -> bool:
        """Closes an open order, or leaves a tombstone for one not seen yet; the first
        closure wins. Returns whether anything changed."""
        return self.conn.execute(_CLOSE_ORDER, {"p_order": order_id, "p_customer": customer_id,
                                                "p_closed_by": str(closed_by)}).first() is not None

    # invoices
    def invoice(self, invoice_id: str, customer_id: str, order_id: str, currency_code: str) -> InvoiceBalance:
        """The invoice's balance, locked; created empty when this is the first event about it."""
        row = sql.run(self.conn, _INVOICE_LOCKED, {"p_invoice": invoice_id, "p_customer": customer_id,
                                                   "p_order": order_id, "p_currency": currency_code}).one()
        return InvoiceBalance(row.invoice_id, row.customer_id, row.order_id, row.currency_code, row.total,
                              row.lowest_due, row.credited)

    def save_invoice(self, balance: InvoiceBalance) -> None:
        self.conn.execute(_INVOICE_SAVE, _balance_row(balance))

    def invoice_replaces_order(self, balance: InvoiceBalance) -> None:
        """The invoice's order closes (INVOICED; the first closure wins) and its balance is saved:
        one statement."""
        sql.run(self.conn, _INVOICE_REPLACES_ORDER, {**_balance_row(balance), "p_order": balance.order_id,
                                                     "p_customer": balance.customer_id,
                                                     "p_closed_by": str(ClosedBy.INVOICED)})

    def add_credit_note(self, credit_note_id: str, invoice_id: str, customer_id: str, unpaid_amount: Decimal) -> bool:
        """Records a credit note; False when it was recorded already."""
        return self.conn.execute(insert(credit_notes).values(
            credit_note_id=credit_note_id, invoice_id=invoice_id, customer_id=customer_id,
            unpaid_amount=unpaid_amount).on_conflict_do_nothing(index_elements=["credit_note_id"])
            .returning(credit_notes.c.credit_note_id)).first() is not None


class CrmUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.customers = CustomerRepository(self.connection)
        self.credit = CreditRepository(self.connection)
        self.exposure = ExposureRepository(self.connection)
