"""Chart of accounts (seeded), journal, number counters, customers' payment terms,
cancelled-order tombstones, invoices, payments, credit notes, outbox and inbox.

The journal is append-only and balanced by construction of the database:
- a deferred constraint trigger checks at commit that every entry has two or more lines
  and that its debits equal its credits (and are not zero);
- a trigger refuses any UPDATE or DELETE of posted entries and lines (corrections are
  reversals, new entries with reverses_entry_id).

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

from mesh.events.tables import create_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2)
PRICE = sa.Numeric(18, 4)

# A snapshot, not an import: migrations never change when the code does.
CHART = [
    ("1000", "Cash", "asset"),
    ("1100", "Accounts receivable", "asset"),
    ("1200", "Inventory", "asset"),
    ("2000", "Accounts payable", "liability"),
    ("2100", "Goods received not invoiced", "liability"),
    ("2200", "Tax payable", "liability"),
    ("4000", "Revenue", "revenue"),
    ("5000", "Cost of goods sold", "expense"),
]

# No "%" and no ":name" in these bodies: they go through the driver as they are.
BALANCE_TRIGGER = """
CREATE FUNCTION journal_entry_must_balance() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    debits numeric;
    credits numeric;
    line_count integer;
BEGIN
    SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0), count(*)
      INTO debits, credits, line_count
      FROM journal_lines WHERE entry_id = NEW.entry_id;
    IF line_count < 2 OR debits <> credits OR debits = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation',
            MESSAGE = 'journal entry ' || NEW.entry_id || ' does not balance: debits ' || debits
                      || ', credits ' || credits || ', ' || line_count || ' lines';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_entries_balanced AFTER INSERT ON journal_entries
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance();
CREATE CONSTRAINT TRIGGER journal_lines_balanced AFTER INSERT ON journal_lines
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_entry_must_balance();

CREATE FUNCTION journal_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'restrict_violation',
        MESSAGE = 'posted journal entries are never changed; post a reversal instead';
END $$;
CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
    FOR EACH ROW EXECUTE FUNCTION journal_is_append_only();
CREATE TRIGGER journal_lines_append_only BEFORE UPDATE OR DELETE ON journal_lines
    FOR EACH ROW EXECUTE FUNCTION journal_is_append_only();
"""


def upgrade() -> None:
    accounts = op.create_table(
        "accounts",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.CheckConstraint("kind IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="account_kind"),
    )
    op.bulk_insert(accounts, [{"code": code, "name": name, "kind": kind} for code, name, kind in CHART])

    op.create_table(
        "journal_entries",
        sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("memo", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        # An entry is reversed at most once.
        sa.Column("reverses_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), unique=True),
    )
    op.create_index("journal_entries_by_reference", "journal_entries", ["reference", "entry_id"])
    op.create_table(
        "journal_lines",
        sa.Column("entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("account", sa.Text, sa.ForeignKey("accounts.code"), nullable=False),
        sa.Column("debit", MONEY, nullable=False),
        sa.Column("credit", MONEY, nullable=False),
        sa.CheckConstraint("(debit > 0 AND credit = 0) OR (debit = 0 AND credit > 0)", name="one_sided_line"),
    )
    op.create_index("journal_lines_by_account", "journal_lines", ["account"])

    op.create_table(
        "number_sequences",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last_value", sa.BigInteger, nullable=False),
        sa.CheckConstraint("last_value > 0", name="last_value_positive"),
    )
    op.create_table(
        "customers",
        sa.Column("customer_id", sa.Text, primary_key=True),
        sa.Column("payment_terms_days", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("payment_terms_days >= 0", name="payment_terms_not_negative"),
    )
    op.create_table(
        "cancelled_orders",
        sa.Column("order_id", sa.Text, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )

    op.create_table(
        "invoices",
        sa.Column("invoice_id", sa.Text, primary_key=True),
        sa.Column("number", sa.Text, nullable=False, unique=True),
        sa.Column("number_year", sa.Integer, nullable=False),
        sa.Column("number_seq", sa.BigInteger, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False, unique=True),  # one invoice per order, ever
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("subtotal", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("tax_rate", sa.Numeric(9, 6), nullable=False),
        sa.Column("order_amount", PRICE, nullable=False),
        sa.Column("amount_paid", MONEY, nullable=False),
        sa.Column("amount_credited", MONEY, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("number_year", "number_seq", name="invoice_number_unique"),
        sa.CheckConstraint("subtotal >= 0 AND tax >= 0 AND total = subtotal + tax", name="total_is_subtotal_plus_tax"),
        sa.CheckConstraint("amount_paid >= 0 AND amount_paid <= total", name="never_overpaid"),
        sa.CheckConstraint("amount_credited >= 0 AND amount_credited <= total", name="never_overcredited"),
        sa.CheckConstraint("state IN ('unpaid', 'partly_paid', 'paid', 'credited')", name="invoice_state"),
    )
    op.create_index("invoices_by_customer", "invoices", ["customer_id", "number_year", "number_seq"])
    op.create_index("invoices_open", "invoices", ["currency_code", "due_date"],
                    postgresql_where=sa.text("state IN ('unpaid', 'partly_paid')"))
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", PRICE, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.CheckConstraint("quantity > 0 AND unit_price >= 0 AND amount >= 0", name="line_positive"),
    )
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), nullable=False),
        sa.CheckConstraint("amount > 0", name="payment_positive"),
    )
    op.create_index("payments_by_invoice", "payments", ["invoice_id", "received_at"])
    op.create_table(
        "credit_notes",
        sa.Column("credit_note_id", sa.Text, primary_key=True),
        sa.Column("number", sa.Text, nullable=False, unique=True),
        sa.Column("number_year", sa.Integer, nullable=False),
        sa.Column("number_seq", sa.BigInteger, nullable=False),
        sa.Column("invoice_id", sa.Text, sa.ForeignKey("invoices.invoice_id"), nullable=False, unique=True),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("unpaid_amount", MONEY, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.UniqueConstraint("number_year", "number_seq", name="credit_note_number_unique"),
        sa.CheckConstraint("amount > 0 AND unpaid_amount >= 0 AND unpaid_amount <= amount", name="credit_amounts"),
    )
    op.get_bind().exec_driver_sql(BALANCE_TRIGGER)
    create_tables(op)


def downgrade() -> None:
    for table in ("inbox", "outbox", "credit_notes", "payments", "invoice_lines", "invoices", "cancelled_orders",
                  "customers", "number_sequences", "journal_lines", "journal_entries", "accounts"):
        op.drop_table(table)
    op.execute("DROP FUNCTION IF EXISTS journal_entry_must_balance(), journal_is_append_only()")
