"""Customers, contacts, status history, credit decisions, the exposure projection
(open orders, unpaid invoices, credit notes), outbox and inbox.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from mesh.events.tables import create_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _updated():
    return sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "customers",
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
        sa.CheckConstraint("status IN ('active', 'on_hold', 'blocked')", name="status_known"),
        sa.CheckConstraint("credit_limit >= 0", name="credit_limit_not_negative"),
        sa.CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="payment_terms_in_range"),
    )
    # ListCustomers with a status filter walks this index in id order.
    op.create_index("customers_by_status", "customers", ["status", "customer_id"])
    op.create_table(
        "customer_contacts",
        sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.customer_id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
    )
    op.create_table(
        "customer_status_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("customer_id", sa.Text, sa.ForeignKey("customers.customer_id"), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("from_status", sa.Text, nullable=False),
        sa.Column("to_status", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        _created(),
    )
    op.create_index("customer_status_changes_by_customer", "customer_status_changes", ["customer_id", "id"])
    op.create_table(
        "credit_decisions",
        sa.Column("order_id", sa.Text, primary_key=True),  # one decision per order, ever
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("approved", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("order_total", sa.Numeric(18, 4)),
        sa.Column("exposure_after", sa.Numeric(18, 4)),
        sa.Column("credit_limit", sa.Numeric(18, 4)),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("approved = (reason = '')", name="reason_iff_rejected"),
    )
    op.create_index("credit_decisions_by_customer", "credit_decisions", ["customer_id", "decided_at"])
    op.create_table(
        "open_orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("closed_by", sa.Text),
        _created(),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
        sa.CheckConstraint("closed_by IS NOT NULL OR amount IS NOT NULL", name="open_orders_have_an_amount"),
        sa.CheckConstraint("closed_by IS NULL OR closed_by IN ('rejected', 'cancelled', 'invoiced')",
                           name="closed_by_known"),
    )
    # The credit check sums a customer's open orders.
    op.create_index("open_orders_by_customer", "open_orders", ["customer_id"],
                    postgresql_where=sa.text("closed_by IS NULL"))
    op.create_table(
        "unpaid_invoices",
        sa.Column("invoice_id", sa.Text, primary_key=True),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("total", sa.Numeric(18, 4)),
        sa.Column("lowest_due", sa.Numeric(18, 4)),
        sa.Column("credited", sa.Numeric(18, 4), nullable=False),
        sa.Column("amount_due", sa.Numeric(18, 4), nullable=False),
        _updated(),
        sa.CheckConstraint("amount_due >= 0", name="amount_due_not_negative"),
    )
    # ...and the invoices it still owes on.
    op.create_index("unpaid_invoices_by_customer", "unpaid_invoices", ["customer_id"],
                    postgresql_where=sa.text("amount_due > 0"))
    op.create_table(
        "credit_notes",
        sa.Column("credit_note_id", sa.Text, primary_key=True),
        sa.Column("invoice_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("unpaid_amount", sa.Numeric(18, 4), nullable=False),
        _created(),
    )
    create_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "credit_notes", "unpaid_invoices", "open_orders", "credit_decisions",
                  "customer_status_changes", "customer_contacts", "customers"):
        op.drop_table(table)
