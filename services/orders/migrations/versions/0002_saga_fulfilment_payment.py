"""The saga's two checks, invoice and payment amounts, cancellation, shipped quantities.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

ORDER_COLUMNS = (
    ("stock_step", sa.Text, "pending"),
    ("credit_step", sa.Text, "pending"),
    ("invoice_id", sa.Text, ""),
    ("invoiced_amount", sa.Numeric(18, 4), "0"),
    ("amount_paid", sa.Numeric(18, 4), "0"),
    ("cancellation_reason", sa.Text, ""),
)


def upgrade() -> None:
    for name, type_, default in ORDER_COLUMNS:
        op.add_column("orders", sa.Column(name, type_, nullable=False, server_default=default))
    op.add_column("order_lines", sa.Column("shipped_quantity", sa.BigInteger, nullable=False, server_default="0"))
    op.create_check_constraint("shipped_within_ordered", "order_lines",
                               "shipped_quantity >= 0 AND shipped_quantity <= quantity")
    op.create_index("orders_by_created", "orders", [sa.text("created_at DESC"), sa.text("order_id DESC")])
    op.create_index("orders_by_status_created", "orders", ["status", sa.text("created_at DESC")])


def downgrade() -> None:
    op.drop_index("orders_by_status_created", "orders")
    op.drop_index("orders_by_created", "orders")
    op.drop_constraint("shipped_within_ordered", "order_lines")
    op.drop_column("order_lines", "shipped_quantity")
    for name, _, _ in ORDER_COLUMNS:
        op.drop_column("orders", name)
