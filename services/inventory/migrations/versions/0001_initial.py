"""Products, warehouses, stock ledger and balances, reservations, outbox and inbox.

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


def _now():
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table("products", sa.Column("sku", sa.Text, primary_key=True),
                    sa.Column("name", sa.Text, nullable=False),
                    sa.Column("unit_of_measure", sa.Text, nullable=False), _now())
    op.create_table("warehouses", sa.Column("code", sa.Text, primary_key=True),
                    sa.Column("name", sa.Text, nullable=False), _now())
    op.create_table(
        "stock_balances",
        sa.Column("sku", sa.Text, sa.ForeignKey("products.sku"), primary_key=True),
        sa.Column("warehouse_code", sa.Text, sa.ForeignKey("warehouses.code"), primary_key=True),
        sa.Column("on_hand", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        sa.CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        sa.CheckConstraint("reserved <= on_hand", name="no_oversell"),
    )
    op.create_table(
        "stock_ledger",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("warehouse_code", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("on_hand_delta", sa.BigInteger, nullable=False),
        sa.Column("reserved_delta", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("request_id", sa.Text, unique=True),
        _now(),
    )
    # Lookups and rebuilds go by (sku, warehouse); nothing on the hot path scans the ledger.
    op.create_index("stock_ledger_by_key", "stock_ledger", ["sku", "warehouse_code", "id"])
    op.create_table(
        "reservations",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("warehouse_code", sa.Text, primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _now(),
    )
    create_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "reservations", "stock_ledger", "stock_balances", "warehouses", "products"):
        op.drop_table(table)
