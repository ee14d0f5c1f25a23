"""Reorder points on balances, and tombstones of orders closed before they reserved.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stock_balances", sa.Column("reorder_point", sa.BigInteger, nullable=False, server_default="0"))
    op.add_column("stock_balances", sa.Column("reorder_quantity", sa.BigInteger, nullable=False,
                                              server_default="0"))
    op.add_column("stock_balances", sa.Column("reorder_alerted", sa.Boolean, nullable=False,
                                              server_default=sa.false()))
    op.create_check_constraint("reorder_point_not_negative", "stock_balances", "reorder_point >= 0")
    op.create_table(
        "closed_orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("reservations_by_order_status", "reservations", ["order_id", "status"])


def downgrade() -> None:
    op.drop_index("reservations_by_order_status", "reservations")
    op.drop_table("closed_orders")
    op.drop_constraint("reorder_point_not_negative", "stock_balances")
    for column in ("reorder_alerted", "reorder_quantity", "reorder_point"):
        op.drop_column("stock_balances", column)
