"""A probe service for the event backbone tests: outbox, inbox and an effects table.

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


def upgrade() -> None:
    create_tables(op)
    op.create_table("effects", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
                    sa.Column("event_id", sa.Text, nullable=False))


def downgrade() -> None:
    pass
