"""The delivery date each approved purchase order line promised (PurchaseOrderApproved's
expected_date), for the supplier performance report (services/finance/payables/suppliers.py).

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "purchase_order_promises",
        sa.Column("purchase_order_id", sa.Text, primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("expected_date", sa.Date, nullable=False),
        sa.ForeignKeyConstraint(["purchase_order_id", "line_no"],
                                ["purchase_order_lines.purchase_order_id", "purchase_order_lines.line_no"]),
    )


def downgrade() -> None:
    op.drop_table("purchase_order_promises")
