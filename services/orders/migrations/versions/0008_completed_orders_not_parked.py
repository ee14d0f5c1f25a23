"""OrderCompleted is sent whether or not a queue takes it (no service consumes it; an outside
integration may bind one): the rows the relay parked before are settled as sent, so that the
pruner (mesh/retention.py) deletes them with the other published rows.

Revision ID: 0008
Revises: 0007
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("UPDATE outbox SET parked_at = NULL, last_error = NULL"
               " WHERE parked_at IS NOT NULL AND event_type = 'erp.events.v1.OrderCompleted'")


def downgrade() -> None:
    pass  # which rows were parked is not kept; the older relay parks new ones again
