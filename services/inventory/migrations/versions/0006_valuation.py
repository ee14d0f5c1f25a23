"""Valuation: each balance's value and moving weighted average unit cost, and each ledger
entry's change in value and the unit cost after it (services/inventory/domain.py).

Existing stock starts at zero value and cost: it was received before purchase prices
reached inventory, and finance's account 1200 holds only what it posted for receipts.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("stock_balances", sa.Column("value", sa.Numeric(18, 2), nullable=False, server_default="0"))
    op.add_column("stock_balances", sa.Column("unit_cost", sa.Numeric(28, 10), nullable=False,
                                              server_default="0"))
    op.create_check_constraint("value_not_negative", "stock_balances", "value >= 0")
    op.add_column("stock_ledger", sa.Column("value_delta", sa.Numeric(18, 2), nullable=False, server_default="0"))
    op.add_column("stock_ledger", sa.Column("unit_cost", sa.Numeric(28, 10)))
    # The valuation as of a moment sums the ledger up to it.
    op.create_index("stock_ledger_by_time", "stock_ledger", ["created_at"])


def downgrade() -> None:
    op.drop_index("stock_ledger_by_time", "stock_ledger")
    op.drop_column("stock_ledger", "unit_cost")
    op.drop_column("stock_ledger", "value_delta")
    op.drop_constraint("value_not_negative", "stock_balances")
    op.drop_column("stock_balances", "unit_cost")
    op.drop_column("stock_balances", "value")
