"""An order's timeline: one row per step of an order across the services (services/orders/timeline.py).

Orders placed before this revision get their placement as a first step; what happened to them
since was not kept, and the step says so.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BACKFILL = sa.text("""
    INSERT INTO order_timeline (order_id, step_key, kind, service, occurred_at, detail)
    SELECT order_id, 'placed', 'placed', 'orders', created_at,
           'placed before orders kept timelines: its later steps until then are not recorded'
    FROM orders
""")


def upgrade() -> None:
    op.create_table(
        "order_timeline",
        sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("step_key", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("service", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False, server_default=""),
        # One step per business fact of an order: a redelivered or republished event adds none.
        sa.UniqueConstraint("order_id", "step_key", name="one_step_per_fact"),
    )
    # GetOrderTimeline: one order's steps in time order, paged by (occurred_at, seq).
    op.create_index("order_timeline_by_time", "order_timeline", ["order_id", "occurred_at", "seq"])
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_index("order_timeline_by_time", "order_timeline")
    op.drop_table("order_timeline")
