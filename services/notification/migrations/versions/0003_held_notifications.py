"""Notifications held because their customer's contact data had not arrived: waiting for
it, released when it came, or given up (no such customer).

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_notifications",
        # One row per event: a repeated event holds nothing more.
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("fields", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('waiting', 'released', 'no_such_customer')", name="known_hold_status"),
        sa.CheckConstraint("(status = 'waiting') = (settled_at IS NULL)", name="settled_when_not_waiting"),
    )
    # CustomerUpdated releases a customer's waiting rows; the dispatcher gives up the oldest.
    op.create_index("held_waiting_by_customer", "held_notifications", ["customer_id"],
                    postgresql_where=sa.text("status = 'waiting'"))
    op.create_index("held_waiting_since", "held_notifications", ["held_at"],
                    postgresql_where=sa.text("status = 'waiting'"))
    # ListHeldNotifications: newest first, overall or per customer.
    op.create_index("held_newest", "held_notifications", ["held_at", "event_id"])
    op.create_index("held_by_customer", "held_notifications", ["customer_id", "held_at", "event_id"])


def downgrade() -> None:
    op.drop_table("held_notifications")
