"""Per-customer webhook signing secrets, kept by reference: the current secret's random id and
its master key's id, how many the webhook has had, and the secret the last rotation replaced
with the end of its overlap window. No secret is stored (see mesh/webhook_keys.py).
Webhook URLs set before this migration keep an empty secret id: signed with the service-wide
secret until their first rotation.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("webhook_secret_id", sa.Text, nullable=False, server_default=""))
    op.add_column("customers", sa.Column("webhook_key_id", sa.Text, nullable=False, server_default=""))
    op.add_column("customers", sa.Column("webhook_secret_version", sa.BigInteger, nullable=False,
                                         server_default="0"))
    op.add_column("customers", sa.Column("webhook_secret_created_at", sa.DateTime(timezone=True)))
    op.add_column("customers", sa.Column("webhook_previous_secret_id", sa.Text))
    op.add_column("customers", sa.Column("webhook_previous_key_id", sa.Text))
    op.add_column("customers", sa.Column("webhook_previous_expires_at", sa.DateTime(timezone=True)))
    op.create_check_constraint("webhook_secret_version_not_negative", "customers", "webhook_secret_version >= 0")
    op.create_check_constraint(
        "webhook_previous_complete", "customers",
        "(webhook_previous_expires_at IS NULL) = (webhook_previous_secret_id IS NULL)"
        " AND (webhook_previous_secret_id IS NULL) = (webhook_previous_key_id IS NULL)")


def downgrade() -> None:
    op.drop_constraint("webhook_previous_complete", "customers")
    op.drop_constraint("webhook_secret_version_not_negative", "customers")
    for column in ("webhook_previous_expires_at", "webhook_previous_key_id", "webhook_previous_secret_id",
                   "webhook_secret_created_at", "webhook_secret_version", "webhook_key_id", "webhook_secret_id"):
        op.drop_column("customers", column)
