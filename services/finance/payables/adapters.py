"""The purchase side's persistence: the purchase orders finance knows, goods receipts,
supplier bills and their payments (migration 0002), in finance's one metadata
(services/finance/ledger/adapters.py).

Every change to a purchase order's quantities, and every bill recorded, released or matched
against it, happens under the order's row locks (PurchaseOrderRepository.get(for_update=True)),
so two bills never bill the same received quantity; lock order is purchase order, then bill.
"""
from __future__ import annotations

import builtins

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from mesh.errors import Aborted, AlreadyExists
from services.finance.ledger.adapters import MONEY, PRICE, insert_for_request, metadata
from services.finance.payables.domain import (
    BillLine,
    BillPayment,
    BillStage,
    BillStatus,
    GoodsReceipt,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierBill,
)

purchase_orders = sa.Table(
    "purchase_orders", metadata,
    sa.Column("purchase_order_id", sa.Text, primary_key=True),
    sa.Column("number", sa.Text, nullable=False),
    sa.Column("supplier_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("approved_version", sa.BigInteger, nullable=False),
    sa.Column("bills_posted", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

purchase_order_lines = sa.Table(
    "purchase_order_lines", metadata,
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("ordered_quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", PRICE, nullable=False),
    sa.Column("received_quantity", sa.BigInteger, nullable=False),
    sa.Column("billed_quantity", sa.BigInteger, nullable=False),
)

goods_receipts = sa.Table(
    "goods_receipts", metadata,
    sa.Column("receipt_id", sa.Text, primary_key=True),
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id")),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

goods_receipt_lines = sa.Table(
    "goods_receipt_lines", metadata,
    sa.Column("receipt_id", sa.Text, sa.ForeignKey("goods_receipts.receipt_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
)

supplier_bills = sa.Table(
    "supplier_bills", metadata,
    sa.Column("bill_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.BigInteger, sa.Identity(), nullable=False, unique=True),
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
)

supplier_bill_lines = sa.Table(
    "supplier_bill_lines", metadata,
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", PRICE, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
)

supplier_bill_hold_reasons = sa.Table(
    "supplier_bill_hold_reasons", metadata,
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
)

supplier_bill_payments = sa.Table(
    "supplier_bill_payments", metadata,
    sa.Column("payment_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("bill_id", sa.Text, sa.ForeignKey("supplier_bills.bill_id"), nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("journal_entry_id", sa.BigInteger, sa.ForeignKey("journal_entries.entry_id"), nullable=False),
)


class PurchaseOrderRepository:
    """The purchase orders finance knows, with ordered, received and billed quantities."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def upsert(self, order: PurchaseOrder, version: int) -> bool:
        """Stores an approved order unless a newer approval is stored; keeps what was
        received and billed against lines it already has. Returns whether it stored."""
        stmt = insert(purchase_orders).values(
            purchase_order_id=order.purchase_order_id, number=order.number, supplier_id=order.supplier_id,
            currency_code=order.currency_code, payment_terms_days=order.payment_terms_days,
            approved_version=version, bills_posted=0)
        stmt = stmt.on_conflict_do_update(
            index_elements=[purchase_orders.c.purchase_order_id],
            set_={name: stmt.excluded[name] for name in ("number", "supplier_id", "currency_code",
                                                         "payment_terms_days", "approved_version")}
            | {"updated_at": sa.func.now()},
            where=purchase_orders.c.approved_version <= stmt.excluded.approved_version)
        if self.conn.execute(stmt.returning(purchase_orders.c.purchase_order_id)).first() is None:
            return False
        lines = insert(purchase_order_lines).values([
            {"purchase_order_id": order.purchase_order_id, "line_no": line.line_no, "sku": line.sku,
             "ordered_quantity": line.ordered, "unit_price": line.unit_price, "received_quantity": 0,
             "billed_quantity": 0} for line in order.lines.values()])
        self.conn.execute(lines.on_conflict_do_update(
            index_elements=[purchase_order_lines.c.purchase_order_id, purchase_order_lines.c.line_no],
            set_={name: lines.excluded[name] for name in ("sku", "ordered_quantity", "unit_price")}))
        return True

    def get(self, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder | None:
        """With for_update, the order's row and its lines stay locked until the transaction ends."""
        query = sa.select(purchase_orders).where(purchase_orders.c.purchase_order_id == purchase_order_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        if row is None:
            return None
        lines_query = (sa.select(purchase_order_lines)
                       .where(purchase_order_lines.c.purchase_order_id == purchase_order_id)
                       .order_by(purchase_order_lines.c.line_no))
        lines = {r.line_no: PurchaseOrderLine(r.line_no, r.sku, r.ordered_quantity, r.unit_price, r.received_quantity,
                                              r.billed_quantity)
                 for r in self.conn.execute(lines_query.with_for_update() if for_update else lines_query)}
        return PurchaseOrder(row.purchase_order_id, row.number, row.supplier_id, row.currency_code,
                             row.payment_terms_days, lines, row.bills_posted)

    def save_quantities(self, order: PurchaseOrder) -> None:
        """Writes received and billed quantities; call it with the order locked."""
        self.conn.execute(purchase_orders.update()
                          .where(purchase_orders.c.purchase_order_id == order.purchase_order_id)
                          .values(bills_posted=order.bills_posted, updated_at=sa.func.now()))
        self.conn.execute(
            purchase_order_lines.update().where(
                purchase_order_lines.c.purchase_order_id == sa.bindparam("po"),
                purchase_order_lines.c.line_no == sa.bindparam("n"),
            ).values(received_quantity=sa.bindparam("received"), billed_quantity=sa.bindparam("billed")),
            [{"po": order.purchase_order_id, "n": line.line_no, "received": line.received, "billed": line.billed}
             for line in order.lines.values()])


class GoodsReceiptRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def exists(self, receipt_id: str) -> bool:
        return self.conn.execute(sa.select(sa.literal(1)).where(goods_receipts.c.receipt_id == receipt_id)).first() \
            is not None

    def add(self, receipt: GoodsReceipt) -> None:
        self.conn.execute(goods_receipts.insert().values(
            receipt_id=receipt.receipt_id, purchase_order_id=receipt.purchase_order_id, amount=receipt.amount,
            journal_entry_id=receipt.journal_entry_id))
        self.conn.execute(goods_receipt_lines.insert(), [
            {"receipt_id": receipt.receipt_id, "line_no": line.line_no, "quantity": line.quantity,
             "amount": line.amount} for line in receipt.lines])


def _bill_row(bill: SupplierBill) -> dict:
    return {"status": str(bill.status), "total": bill.total, "amount_paid": bill.amount_paid,
            "posted_at": bill.posted_at, "journal_entry_id": bill.journal_entry_id, "reviewed_by": bill.reviewed_by,
            "review_note": bill.review_note, "review_decision": bill.review_decision, "version": bill.version}


def _stage(status: str) -> BillStage:
    return BillStage(status) if status in (BillStage.HELD, BillStage.REJECTED) else BillStage.POSTED


class SupplierBillRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, bill: SupplierBill) -> None:
        try:
            bill.seq = self.conn.execute(supplier_bills.insert().values(
                bill_id=bill.bill_id, request_id=bill.request_id, supplier_bill_number=bill.supplier_bill_number,
                purchase_order_id=bill.purchase_order_id, supplier_id=bill.supplier_id,
                currency_code=bill.currency_code, recorded_at=bill.recorded_at, due_at=bill.due_at, **_bill_row(bill),
            ).returning(supplier_bills.c.seq)).scalar_one()
        except sa.exc.IntegrityError as exc:
            # A twin request (same request_id, or the same supplier's bill number) on another
            # purchase order committed first; this transaction is lost, the caller learns why.
            if "request_id" in str(exc.orig):
                raise AlreadyExists(f"request_id {bill.request_id} was used for another supplier bill") from exc
            if "supplier_bill_number_unique" in str(exc.orig):
                raise AlreadyExists(f"supplier {bill.supplier_id} already has a bill numbered "
                                    f"{bill.supplier_bill_number}") from exc
            raise
        self.conn.execute(supplier_bill_lines.insert(), [
            {"bill_id": bill.bill_id, "line_no": line.line_no, "sku": line.sku, "quantity": line.quantity,
             "unit_price": line.unit_price, "amount": line.amount} for line in bill.lines])
        self._write_reasons(bill)

    def save(self, bill: SupplierBill) -> None:
        """Writes the bill's state and hold reasons; the version check refuses a lost update."""
        updated = self.conn.execute(supplier_bills.update().where(
            supplier_bills.c.bill_id == bill.bill_id, supplier_bills.c.version < bill.version,
        ).values(**_bill_row(bill))).rowcount
        if updated != 1:
            raise Aborted(f"supplier bill {bill.bill_id} was changed by another request at the same time; "
                          "read it again and retry")
        self.conn.execute(supplier_bill_hold_reasons.delete().where(supplier_bill_hold_reasons.c.bill_id == bill.bill_id))
        self._write_reasons(bill)

    def _write_reasons(self, bill: SupplierBill) -> None:
        if bill.hold_reasons:
            self.conn.execute(supplier_bill_hold_reasons.insert(), [
                {"bill_id": bill.bill_id, "position": i, "reason": reason}
                for i, reason in enumerate(bill.hold_reasons, start=1)])

    def get(self, bill_id: str, for_update: bool = False) -> SupplierBill | None:
        found = self._select(supplier_bills.c.bill_id == bill_id, for_update=for_update)
        return found[0] if found else None

    def by_request(self, request_id: str) -> SupplierBill | None:
        found = self._select(supplier_bills.c.request_id == request_id)
        return found[0] if found else None

    def by_number(self, supplier_id: str, supplier_bill_number: str) -> SupplierBill | None:
        found = self._select(supplier_bills.c.supplier_id == supplier_id,
                             supplier_bills.c.supplier_bill_number == supplier_bill_number)
        return found[0] if found else None

    def held_for(self, purchase_order_id: str) -> builtins.list[SupplierBill]:
        """The order's held bills, oldest first, locked (take the order's lock first)."""
        return self._select(supplier_bills.c.purchase_order_id == purchase_order_id,
                            supplier_bills.c.status == str(BillStatus.HELD), for_update=True)

    def list(self, *, supplier_id: str, purchase_order_id: str, status: BillStatus | None, after: int | None,
             limit: int) -> builtins.list[SupplierBill]:
        conditions = []
        if supplier_id:
            conditions.append(supplier_bills.c.supplier_id == supplier_id)
        if purchase_order_id:
            conditions.append(supplier_bills.c.purchase_order_id == purchase_order_id)
        if status is not None:
            conditions.append(supplier_bills.c.status == str(status))
        if after is not None:
            conditions.append(supplier_bills.c.seq > after)
        return self._select(*conditions, limit=limit)

    def _select(self, *conditions, for_update: bool = False, limit: int | None = None) -> builtins.list[SupplierBill]:
        query = sa.select(supplier_bills).where(*conditions).order_by(supplier_bills.c.seq).limit(limit)
        rows = self.conn.execute(query.with_for_update() if for_update else query).all()
        if not rows:
            return []
        ids = [row.bill_id for row in rows]
        lines: dict[str, list[BillLine]] = {}
        for r in self.conn.execute(sa.select(supplier_bill_lines).where(supplier_bill_lines.c.bill_id.in_(ids))
                                   .order_by(supplier_bill_lines.c.bill_id, supplier_bill_lines.c.line_no)):
            lines.setdefault(r.bill_id, []).append(BillLine(r.line_no, r.sku, r.quantity, r.unit_price, r.amount))
        reasons: dict[str, list[str]] = {}
        for r in self.conn.execute(sa.select(supplier_bill_hold_reasons)
                                   .where(supplier_bill_hold_reasons.c.bill_id.in_(ids))
                                   .order_by(supplier_bill_hold_reasons.c.bill_id,
                                             supplier_bill_hold_reasons.c.position)):
            reasons.setdefault(r.bill_id, []).append(r.reason)
        return [SupplierBill(
            bill_id=row.bill_id, request_id=row.request_id, supplier_bill_number=row.supplier_bill_number,
            purchase_order_id=row.purchase_order_id, supplier_id=row.supplier_id, currency_code=row.currency_code,
            lines=lines.get(row.bill_id, []), recorded_at=row.recorded_at, due_at=row.due_at,
            stage=_stage(row.status), hold_reasons=reasons.get(row.bill_id, []), amount_paid=row.amount_paid,
            reviewed_by=row.reviewed_by, review_note=row.review_note, review_decision=row.review_decision,
            posted_at=row.posted_at, journal_entry_id=row.journal_entry_id, seq=row.seq, version=row.version,
        ) for row in rows]


class BillPaymentRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, payment: BillPayment) -> None:
        insert_for_request(self.conn, supplier_bill_payments.insert().values(
            payment_id=payment.payment_id, request_id=payment.request_id, bill_id=payment.bill_id,
            amount=payment.amount, currency_code=payment.currency_code, reference=payment.reference,
            paid_at=payment.paid_at, journal_entry_id=payment.journal_entry_id), payment.request_id, "bill payment")

    def by_request(self, request_id: str) -> BillPayment | None:
        row = self.conn.execute(sa.select(supplier_bill_payments)
                                .where(supplier_bill_payments.c.request_id == request_id)).first()
        if row is None:
            return None
        return BillPayment(row.payment_id, row.request_id, row.bill_id, row.amount, row.currency_code, row.reference,
                           row.paid_at, row.journal_entry_id)
