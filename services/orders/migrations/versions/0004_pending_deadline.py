"""The saga's deadline: how often a PENDING order was driven again, and when last.

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("drives", sa.Integer, nullable=False, server_default="0"))
    op.add_column("orders", sa.Column("driven_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    op.drop_column("orders", "driven_at")
    op.drop_column("orders", "drives")
