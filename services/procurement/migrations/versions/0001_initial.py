"""Suppliers, prices, purchase orders with lines and approvals, goods receipts, the
shortages and bills already acted on, outbox and inbox.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from mesh.events.tables import create_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suppliers",
        sa.Column("supplier_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("payment_terms_days", sa.Integer, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("webhook_url", sa.Text, nullable=False),
        sa.Column("contacts", JSONB, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "supplier_prices",
        sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.supplier_id"), primary_key=True),
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
        sa.Column("min_quantity", sa.BigInteger, nullable=False),
        sa.Column("lead_time_days", sa.Integer, nullable=False),
        sa.Column("preferred", sa.Boolean, nullable=False),
    )
    # At most one preferred supplier per SKU, whatever two concurrent SetSupplierPrice calls do.
    op.create_index("supplier_prices_one_preferred", "supplier_prices", ["sku"], unique=True,
                    postgresql_where=sa.text("preferred"))
    op.execute("CREATE SEQUENCE purchase_order_number_seq")
    op.create_table(
        "purchase_orders",
        sa.Column("purchase_order_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("number", sa.Text, nullable=False, unique=True),
        sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.supplier_id"), nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("warehouse_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("approvals_required", sa.Integer, nullable=False),
        sa.Column("submitted_by", sa.Text, nullable=False),
        sa.Column("closing_reason", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("purchase_orders_by_supplier", "purchase_orders", ["supplier_id", "created_at"])
    op.create_index("purchase_orders_by_created", "purchase_orders", ["created_at", "purchase_order_id"])
    op.create_table(
        "purchase_order_lines",
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"),
                  primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
        sa.Column("receivable_quantity", sa.BigInteger, nullable=False),
        sa.Column("expected_date", sa.Text, nullable=False),
        sa.Column("received_quantity", sa.BigInteger, nullable=False),
        sa.Column("billed_quantity", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity > 0", name="po_quantity_positive"),
        sa.CheckConstraint("receivable_quantity >= quantity", name="po_receivable_covers_ordered"),
        sa.CheckConstraint("received_quantity >= 0 AND received_quantity <= receivable_quantity",
                           name="po_no_over_receipt"),
        sa.CheckConstraint("billed_quantity >= 0", name="po_billed_not_negative"),
    )
    op.create_table(
        "purchase_order_approvals",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"),
                  nullable=False, index=True),
        sa.Column("approver", sa.Text, nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "goods_receipts",
        sa.Column("receipt_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"),
                  nullable=False, index=True),
        sa.Column("warehouse_code", sa.Text, nullable=False),
        sa.Column("received_by", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "goods_receipt_lines",
        sa.Column("receipt_id", sa.Text, sa.ForeignKey("goods_receipts.receipt_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.CheckConstraint("quantity > 0", name="receipt_quantity_positive"),
    )
    op.create_table(
        "replenishments",
        sa.Column("shortage_key", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse_code", sa.Text, nullable=False),
        sa.Column("purchase_order_id", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "billed_bills",
        sa.Column("bill_id", sa.Text, primary_key=True),
        sa.Column("purchase_order_id", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    create_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "billed_bills", "replenishments", "goods_receipt_lines", "goods_receipts",
                  "purchase_order_approvals", "purchase_order_lines", "purchase_orders", "supplier_prices",
                  "suppliers"):
        op.drop_table(table)
    op.execute("DROP SEQUENCE purchase_order_number_seq")
