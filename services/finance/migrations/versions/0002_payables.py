"""Procure to pay: the purchase price variance account, the purchase orders finance knows
(a projection of procurement's PurchaseOrderApproved and GoodsReceived), the goods
receipts it has posted, supplier bills with their lines and hold reasons, and bill payments.

Idempotency lives in keys: a goods receipt is posted once per receipt_id (a replayed
GoodsReceived under a new event id finds its row), a bill once per request_id and per
(supplier, supplier's bill number), a bill payment once per request_id.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(18, 2)
PRICE = sa.Numeric(18, 4)

# A snapshot, not an import: migrations never change when the code does.
CHART = [
    ("5100", "Purchase price variance", "expense"),
]
BILL_STATUSES = "('held', 'posted', 'partly_paid', 'paid', 'rejected')"


def upgrade() -> None:
    accounts = sa.table("accounts", sa.column("code", sa.Text), sa.column("name", sa.Text), sa.column("kind", sa.Text))
    op.bulk_insert(accounts, [{"code": code, "name": name, "kind": kind} for code, name, kind in CHART])

    op.create_table(
        "purchase_orders",
        sa.Column("purchase_order_id", sa.Text, primary_key=True),
        sa.Column("number", sa.Text, nullable=False),
        sa.Column("supplier_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("payment_terms_days", sa.Integer, nullable=False),
        # procurement's aggregate version of the approval: an older one arriving late is ignored
        sa.Column("approved_version", sa.BigInteger, nullable=False),
        # how many of its bills were posted: the version of its SupplierBillPosted events
        sa.Column("bills_posted", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("payment_terms_days BETWEEN 0 AND 3650", name="po_payment_terms"),
        sa.CheckConstraint("bills_posted >= 0", name="po_bills_posted_not_negative"),
    )
    op.create_table(
        "purchase_order_lines",
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"),
                  primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("ordered_quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", PRICE, nullable=False),
        sa.Column("received_quantity", sa.BigInteger, nullable=False),
        sa.Column("billed_quantity", sa.BigInteger, nullable=False),
        sa.CheckConstraint("line_no > 0", name="po_line_no_positive"),
        sa.CheckConstraint("ordered_quantity > 0 AND unit_price >= 0", name="po_line_positive"),
        # Billed may exceed received only through a reviewer's release, so no CHECK ties them.
        sa.CheckConstraint("received_quantity >= 0 AND billed_quantity >= 0", name="po_line_quantities_not_negative"),
    )

    op.create_table(
        "goods_receipts",
        sa.Column("receipt_id", sa.Text, primary_key=True),  # one effect per receipt, whatever the event id
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("amount >= 0", name="receipt_amount_not_negative"),
        sa.CheckConstraint("amount = 0 OR journal_entry_id IS NOT NULL", name="receipt_posted"),
    )
    op.create_index("goods_receipts_by_order", "goods_receipts", ["purchase_order_id"])
    op.create_table(
        "goods_receipt_lines",
        sa.Column("receipt_id", sa.Text, sa.ForeignKey("goods_receipts.receipt_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.CheckConstraint("quantity > 0 AND amount >= 0", name="receipt_line_positive"),
    )

    op.create_table(
        "supplier_bills",
        sa.Column("bill_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),  # list order and page key
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("supplier_bill_number", sa.Text, nullable=False),
        sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False),
        sa.Column("supplier_id", sa.Text, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total", MONEY, nullable=False),
        sa.Column("amount_paid", MONEY, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True)),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
        sa.Column("reviewed_by", sa.Text, nullable=False),
        sa.Column("review_note", sa.Text, nullable=False),
        sa.Column("review_decision", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        # A supplier's bill number is billed once, ever.
        sa.UniqueConstraint("supplier_id", "supplier_bill_number", name="supplier_bill_number_unique"),
        sa.CheckConstraint(f"status IN {BILL_STATUSES}", name="bill_status"),
        sa.CheckConstraint("review_decision IN ('', 'release', 'reject')", name="bill_review_decision"),
        sa.CheckConstraint("total >= 0 AND amount_paid >= 0 AND amount_paid <= total", name="bill_never_overpaid"),
        sa.CheckConstraint("due_at >= recorded_at", name="bill_due_after_recorded"),
        # What each status means, in amounts: held and rejected bills are not posted and not paid.
        sa.CheckConstraint("(status IN ('held', 'rejected')) = (posted_at IS NULL)", name="bill_posted_at"),
        sa.CheckConstraint("status NOT IN ('held', 'rejected') OR (amount_paid = 0 AND journal_entry_id IS NULL)",
                           name="bill_unposted_has_no_money"),
        sa.CheckConstraint("status <> 'posted' OR (amount_paid = 0 AND total > 0)", name="bill_posted_unpaid"),
        sa.CheckConstraint("status <> 'partly_paid' OR (amount_paid > 0 AND amount_paid < total)",
                           name="bill_partly_paid"),
        sa.CheckConstraint("status <> 'paid' OR amount_paid = total", name="bill_paid"),
        sa.CheckConstraint("status <> 'rejected' OR (review_decision = 'reject' AND reviewed_by <> '')",
                           name="bill_rejected_by_reviewer"),
    )
    op.create_index("supplier_bills_by_order", "supplier_bills", ["purchase_order_id", "status", "seq"])
    op.create_index("supplier_bills_by_supplier", "supplier_bills", ["supplier_id", "seq"])
    op.create_table(
        "supplier_bill_lines",
        sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
        sa.Column("line_no", sa.Integer, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("unit_price", PRICE, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.CheckConstraint("quantity BETWEEN 1 AND 1000000000 AND unit_price >= 0 AND amount >= 0",
                           name="bill_line_positive"),
    )
    op.create_table(
        "supplier_bill_hold_reasons",
        sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.CheckConstraint("reason <> ''", name="hold_reason_not_empty"),
    )
    op.create_table(
        "supplier_bill_payments",
        sa.Column("payment_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False, unique=True),
        sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("currency_code", sa.Text, nullable=False),
        sa.Column("reference", sa.Text, nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), nullable=False),
        sa.CheckConstraint("amount > 0", name="bill_payment_positive"),
    )
    op.create_index("supplier_bill_payments_by_bill", "supplier_bill_payments", ["bill_id", "paid_at"])


def downgrade() -> None:
    for table in ("supplier_bill_payments", "supplier_bill_hold_reasons", "supplier_bill_lines", "supplier_bills",
                  "goods_receipt_lines", "goods_receipts", "purchase_order_lines", "purchase_orders"):
        op.drop_table(table)
    op.execute("DELETE FROM accounts WHERE code IN ('5100')")
