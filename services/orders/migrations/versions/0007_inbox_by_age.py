"""The inbox's index by age, which the pruner (mesh/retention.py) deletes the oldest rows by.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

from mesh.events.tables import add_inbox_age_index, drop_inbox_age_index

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_inbox_age_index(op)


def downgrade() -> None:
    drop_inbox_age_index(op)
