"""Dead letters kept in the service's own schema, and the outbox's parked (unrouted) rows.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

from mesh.events.tables import add_dead_letters_and_parking, drop_dead_letters_and_parking

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_dead_letters_and_parking(op)


def downgrade() -> None:
    drop_dead_letters_and_parking(op)
