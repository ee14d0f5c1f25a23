"""Contacts (projection of CustomerUpdated), deliveries and their attempts, outbox and inbox.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from mesh.events.tables import create_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.Text, nullable=False),
        sa.Column("webhook_url", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "deliveries",
        sa.Column("delivery_id", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("recipient", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        # A repeated event never creates a second delivery to the same recipient.
        sa.UniqueConstraint("event_id", "channel", "recipient", name="one_delivery_per_event_channel_recipient"),
        sa.CheckConstraint("channel IN ('email', 'webhook')", name="known_channel"),
        sa.CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="known_status"),
        sa.CheckConstraint("attempts >= 0", name="attempts_not_negative"),
        sa.CheckConstraint("status = 'pending' OR attempts > 0", name="settled_after_an_attempt"),
    )
    # The dispatcher only looks at pending rows, by due time.
    op.create_index("deliveries_due", "deliveries", ["next_attempt_at"],
                    postgresql_where=sa.text("status = 'pending'"))
    # ListDeliveries: newest first, overall or per recipient / customer / event.
    op.create_index("deliveries_newest", "deliveries", ["created_at", "delivery_id"])
    op.create_index("deliveries_by_recipient", "deliveries", ["recipient", "created_at", "delivery_id"])
    op.create_index("deliveries_by_customer", "deliveries", ["customer_id", "created_at", "delivery_id"])
    op.create_table(
        "delivery_attempts",
        sa.Column("delivery_id", sa.Text, sa.ForeignKey("deliveries.delivery_id"), primary_key=True),
        sa.Column("attempt_no", sa.Integer, primary_key=True),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.CheckConstraint("attempt_no > 0", name="attempt_no_positive"),
        sa.CheckConstraint("ok = (error = '')", name="ok_means_no_error"),
    )
    create_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "delivery_attempts", "deliveries", "contacts"):
        op.drop_table(table)
