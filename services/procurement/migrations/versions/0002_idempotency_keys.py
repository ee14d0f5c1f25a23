"""Idempotency keys of the mutating RPCs, with their request's fingerprint (mesh/idempotency.py).

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from mesh import idempotency

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    idempotency.create_table(op)


def downgrade() -> None:
    idempotency.drop_table(op)
