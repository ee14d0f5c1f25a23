"""Accounting periods: a closed calendar month (UTC) takes no journal entry. ClosePeriod closes
one once it has ended (services/finance/ledger/periods.py); this trigger is the backstop that refuses
any entry dated in a closed period, whatever inserts it.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# No "%" and no ":name" in this body: it goes through the driver as it is.
CLOSED_PERIOD_TRIGGER = """
CREATE FUNCTION journal_entry_in_open_period() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM accounting_periods
               WHERE period = to_char(NEW.posted_at AT TIME ZONE 'UTC', 'YYYY-MM')) THEN
        RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
            MESSAGE = 'journal entry dated ' || NEW.posted_at || ' falls in a closed accounting period';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER journal_entries_in_open_period BEFORE INSERT ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_entry_in_open_period();
"""


def upgrade() -> None:
    op.create_table(
        "accounting_periods",
        sa.Column("period", sa.Text, primary_key=True),  # "YYYY-MM"
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("closed_by", sa.Text, nullable=False),
        sa.CheckConstraint("period ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'", name="period_is_a_month"),
    )
    op.create_index("journal_entries_by_time", "journal_entries", ["posted_at"])
    op.get_bind().exec_driver_sql(CLOSED_PERIOD_TRIGGER)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS journal_entries_in_open_period ON journal_entries")
    op.execute("DROP FUNCTION IF EXISTS journal_entry_in_open_period()")
    op.drop_index("journal_entries_by_time", "journal_entries")
    op.drop_table("accounting_periods")
