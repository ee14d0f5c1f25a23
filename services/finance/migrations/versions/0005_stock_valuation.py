"""Stock valuation postings: the inventory adjustment account, the cost of every shipment
(cost of goods sold per order, SKU and warehouse, for the sales report), and one row per
stock movement finance has posted, so a movement is posted once however often its event
arrives (services/finance/valuation.py).

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2)

# A snapshot, not an import: migrations never change when the code does.
CHART = [
    ("5200", "Inventory adjustments", "expense"),
]


def upgrade() -> None:
    accounts = sa.table("accounts", sa.column("code"), sa.column("name"), sa.column("kind"))
    op.bulk_insert(accounts, [{"code": code, "name": name, "kind": kind} for code, name, kind in CHART])
    op.create_table(
        "stock_postings",
        sa.Column("reference", sa.Text, primary_key=True),  # "issue:<order>" or "adjustment:<request id>"
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "cost_of_sales",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, primary_key=True),
        sa.Column("warehouse_code", sa.Text, primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("cost", MONEY, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("shipped_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.CheckConstraint("quantity > 0 AND cost >= 0", name="cost_of_sales_positive"),
    )
    op.create_index("cost_of_sales_by_time", "cost_of_sales", ["currency_code", "shipped_at"])
    op.create_index("invoices_by_issue_time", "invoices", ["currency_code", "issued_at"])


def downgrade() -> None:
    op.drop_index("invoices_by_issue_time", "invoices")
    op.drop_table("cost_of_sales")
    op.drop_table("stock_postings")
    op.execute("DELETE FROM accounts WHERE code = '5200'")
