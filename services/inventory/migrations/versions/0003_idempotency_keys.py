"""Idempotency keys of the mutating RPCs, with their request's fingerprint (mesh/idempotency.py).

Revision ID: 0003
Revises: 0002
"""
from alembic import op

from mesh import idempotency

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    idempotency.create_table(op)


def downgrade() -> None:
    idempotency.drop_table(op)
