"""Per-customer webhook signing secrets, by reference (from CustomerUpdated): the current
secret's id and its master key's id, and the secret the last rotation replaced with the end of
its overlap window. No secret is stored: they are derived from the master keys when a delivery
is signed. Contacts from before this migration keep an empty secret id: the legacy secret.

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
    op.add_column("contacts", sa.Column("secret_id", sa.Text, nullable=False, server_default=""))
    op.add_column("contacts", sa.Column("key_id", sa.Text, nullable=False, server_default=""))
    op.add_column("contacts", sa.Column("previous_secret_id", sa.Text))
    op.add_column("contacts", sa.Column("previous_key_id", sa.Text))
    op.add_column("contacts", sa.Column("previous_expires_at", sa.DateTime(timezone=True)))
    op.create_check_constraint(
        "previous_secret_complete", "contacts",
        "(previous_expires_at IS NULL) = (previous_secret_id IS NULL)"
        " AND (previous_secret_id IS NULL) = (previous_key_id IS NULL)")


def downgrade() -> None:
    op.drop_constraint("previous_secret_complete", "contacts")
    for column in ("previous_expires_at", "previous_key_id", "previous_secret_id", "key_id", "secret_id"):
        op.drop_column("contacts", column)
