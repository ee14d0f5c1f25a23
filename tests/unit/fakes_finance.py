"""In-memory stand-ins for finance's repositories.

They keep the rules PostgreSQL enforces for finance (unique order per invoice, unique
numbers and request ids, the invoice and supplier-bill CHECKs, the version checks, the
balanced and append-only journal, one goods receipt per receipt id), independently of the domain's own checks, so a handler that
breaks one fails here as it would against the database. Stored values are copies.
"""
from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import types
from decimal import Decimal

from mesh.errors import Aborted, AlreadyExists
from mesh.settings import Variables
from services.finance.ledger.domain import CHART, AccountTotals, JournalEntry, OpenItem
from services.finance.payables.domain import BillPayment, BillStatus, GoodsReceipt, PurchaseOrder, SupplierBill
from services.finance.receivables.domain import (
    BeforeIssuing,
    CreditNote,
    CustomerTerms,
    Invoice,
    Payment,
    PaymentState,
)
from tests.unit.fakes import FakeIntegrityError, FakeUnitOfWork

T0 = dt.datetime(2026, 3, 10, 9, 30, tzinfo=dt.UTC)


def finance_settings(tax_rate: str = "", payment_terms_days: str = "", currency: str = "", quantity_tolerance: str = "",
                     price_tolerance: str = ""):
    """What FinanceConfig.from_settings reads of mesh's Settings, with these ERP_FINANCE_* values."""
    return types.SimpleNamespace(variables=Variables({
        "ERP_FINANCE_TAX_RATE": tax_rate, "ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS": payment_terms_days,
        "ERP_FINANCE_CURRENCY": currency, "ERP_FINANCE_BILL_QUANTITY_TOLERANCE": quantity_tolerance,
        "ERP_FINANCE_BILL_PRICE_TOLERANCE": price_tolerance}))


class FakeNumbers:
    def __init__(self) -> None:
        self.counters: dict[tuple[str, int], int] = {}

    def snapshot(self):
        return dict(self.counters)

    def restore(self, snap) -> None:
        self.counters = dict(snap)

    def next(self, kind: str, year: int) -> int:
        self.counters[(kind, year)] = self.counters.get((kind, year), 0) + 1
        return self.counters[(kind, year)]


def _check_invoice(invoice: Invoice) -> None:
    """The CHECK constraints on invoices and invoice_lines."""
    if not (invoice.subtotal >= 0 and invoice.tax >= 0 and invoice.total == invoice.subtotal + invoice.tax):
        raise FakeIntegrityError(f"total_is_subtotal_plus_tax: {invoice}")
    if not 0 <= invoice.amount_paid <= invoice.total:
        raise FakeIntegrityError(f"never_overpaid: {invoice.amount_paid} of {invoice.total}")
    if not 0 <= invoice.amount_credited <= invoice.total:
        raise FakeIntegrityError(f"never_overcredited: {invoice.amount_credited} of {invoice.total}")
    for line in invoice.lines:
        if not (line.quantity > 0 and line.unit_price >= 0 and line.amount >= 0):
            raise FakeIntegrityError(f"line_positive: {line}")
    for value in (invoice.subtotal, invoice.tax, invoice.total, invoice.amount_paid, invoice.amount_credited,
                  *(line.amount for line in invoice.lines)):
        if value != value.quantize(Decimal("0.01")):
            raise FakeIntegrityError(f"Numeric(18,2) would round {value}")


class FakeInvoices:
    def __init__(self) -> None:
        self.rows: dict[str, Invoice] = {}
        self.payments: FakePayments | None = None  # wired by finance_uow()
        self.credit_notes: FakeCreditNotes | None = None
        self.customers: FakeCustomers | None = None
        self.cancellations: FakeCancellations | None = None
        self.journal: FakeJournal | None = None
        self.saves = 0

    def snapshot(self):
        return copy.deepcopy(self.rows)

    def restore(self, snap) -> None:
        self.rows = copy.deepcopy(snap)

    def add(self, invoice: Invoice, entry: JournalEntry | None = None) -> None:
        """With the journal entry that posts it, as the real one (which writes both at the commit)."""
        if entry is not None:
            assert self.journal is not None, "an invoice with an entry needs FakeInvoices.journal"
            invoice.journal_entry_id = self.journal.post(entry)
        if invoice.invoice_id in self.rows:
            raise FakeIntegrityError(f"duplicate invoice {invoice.invoice_id}")
        if any(i.order_id == invoice.order_id for i in self.rows.values()):
            raise FakeIntegrityError(f"duplicate invoice for order {invoice.order_id}")
        if any(i.number == invoice.number for i in self.rows.values()):
            raise FakeIntegrityError(f"duplicate number {invoice.number}")
        _check_invoice(invoice)
        self.rows[invoice.invoice_id] = copy.deepcopy(invoice)

    def get(self, invoice_id: str, for_update: bool = False) -> Invoice | None:
        found = self.rows.get(invoice_id)
        return copy.deepcopy(found) if found else None

    def by_order(self, order_id: str, for_update: bool = False) -> Invoice | None:
        for invoice in self.rows.values():
            if invoice.order_id == order_id:
                return copy.deepcopy(invoice)
        return None

    def before_issuing(self, order_id: str, customer_id: str) -> BeforeIssuing:
        assert self.customers is not None and self.cancellations is not None, "wired by finance_uow()"
        terms = self.customers.rows.get(customer_id)
        return BeforeIssuing(order_id in self.cancellations.rows, self.by_order(order_id) is not None,
                             terms.payment_terms_days if terms else None)

    def save(self, invoice: Invoice) -> None:
        stored = self.rows.get(invoice.invoice_id)
        if stored is None or stored.version != invoice.version - 1:
            raise Aborted(f"invoice {invoice.invoice_id} changed concurrently")
        _check_invoice(invoice)
        # Only the payment state is written, as in the SQL UPDATE.
        self.rows[invoice.invoice_id] = dataclasses.replace(
            copy.deepcopy(stored), amount_paid=invoice.amount_paid, amount_credited=invoice.amount_credited,
            version=invoice.version)
        self.saves += 1

    def list(self, *, customer_id: str, order_id: str, states: frozenset[PaymentState] | None, overdue: bool | None,
             today: dt.date, after: tuple[int, int] | None, limit: int) -> list[Invoice]:
        found = sorted(self.rows.values(), key=lambda i: (i.year, i.seq))
        found = [i for i in found if (not customer_id or i.customer_id == customer_id)
                 and (not order_id or i.order_id == order_id)
                 and (states is None or i.state in states)
                 and (overdue is None or (i.due_date < today) == overdue)
                 and (after is None or (i.year, i.seq) > tuple(after))]
        return copy.deepcopy(found[:limit])

    def open_items(self, currency_code: str, as_of: dt.datetime) -> list[OpenItem]:
        items = []
        for invoice in self.rows.values():
            if invoice.currency_code != currency_code or invoice.issued_at > as_of:
                continue
            paid = sum((p.amount for p in self.payments.rows.values()
                        if p.invoice_id == invoice.invoice_id and p.received_at <= as_of), Decimal(0))
            credited = sum((n.amount for n in self.credit_notes.rows.values()
                            if n.invoice_id == invoice.invoice_id and n.issued_at <= as_of), Decimal(0))
            due = invoice.total - paid - credited
            if due > 0:
                items.append(OpenItem(invoice.customer_id, invoice.due_date, due))
        return sorted(items, key=lambda x: (x.customer_id, x.due_date))


class FakePayments:
    def __init__(self, invoices: FakeInvoices, journal: FakeJournal) -> None:
        self.invoices = invoices
        self.journal = journal
        self.rows: dict[str, Payment] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, payment: Payment) -> None:
        if any(p.request_id == payment.request_id for p in self.rows.values()):
            raise AlreadyExists(f"request_id {payment.request_id} was used for another payment")
        if payment.invoice_id not in self.invoices.rows:
            raise FakeIntegrityError(f"foreign key: no invoice {payment.invoice_id}")
        if payment.journal_entry_id not in self.journal.entries:
            raise FakeIntegrityError(f"foreign key: no journal entry {payment.journal_entry_id}")
        if payment.amount <= 0:
            raise FakeIntegrityError(f"payment_positive: {payment}")
        self.rows[payment.payment_id] = payment

    def by_request(self, request_id: str) -> Payment | None:
        return next((p for p in self.rows.values() if p.request_id == request_id), None)


class FakeCreditNotes:
    def __init__(self, invoices: FakeInvoices) -> None:
        self.invoices = invoices
        self.rows: dict[str, CreditNote] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, note: CreditNote) -> None:
        if any(n.invoice_id == note.invoice_id or n.number == note.number for n in self.rows.values()):
            raise FakeIntegrityError(f"duplicate credit note {note.number} for invoice {note.invoice_id}")
        if note.invoice_id not in self.invoices.rows:
            raise FakeIntegrityError(f"foreign key: no invoice {note.invoice_id}")
        if not (note.amount > 0 and 0 <= note.unpaid_amount <= note.amount):
            raise FakeIntegrityError(f"credit_amounts: {note}")
        self.rows[note.credit_note_id] = note

    def by_invoice(self, invoice_id: str) -> CreditNote | None:
        return next((n for n in self.rows.values() if n.invoice_id == invoice_id), None)


class FakeCustomers:
    def __init__(self) -> None:
        self.rows: dict[str, CustomerTerms] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def upsert(self, terms: CustomerTerms) -> bool:
        stored = self.rows.get(terms.customer_id)
        if stored is not None and stored.version > terms.version:
            return False
        if terms.payment_terms_days < 0:
            raise FakeIntegrityError(f"payment_terms_not_negative: {terms}")
        self.rows[terms.customer_id] = terms
        return True


class FakeCancellations:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, order_id: str, reason: str) -> None:
        self.rows.setdefault(order_id, reason)


class FakeJournal:
    """Append-only; refuses what the database's triggers and constraints refuse."""

    def __init__(self) -> None:
        self.entries: dict[int, JournalEntry] = {}
        self._next_id = 1

    def snapshot(self):
        return dict(self.entries), self._next_id

    def restore(self, snap) -> None:
        entries, _ = snap
        self.entries = dict(entries)  # like an identity, the id counter does not go back

    def post(self, entry: JournalEntry) -> int:
        debits = sum((line.debit for line in entry.lines), Decimal(0))
        credits = sum((line.credit for line in entry.lines), Decimal(0))
        if len(entry.lines) < 2 or debits != credits or debits == 0:
            raise FakeIntegrityError(f"journal entry does not balance: {entry}")
        for line in entry.lines:
            if line.account not in CHART:
                raise FakeIntegrityError(f"foreign key: no account {line.account}")
            if not ((line.debit > 0 and line.credit == 0) or (line.debit == 0 and line.credit > 0)):
                raise FakeIntegrityError(f"one_sided_line: {line}")
        if entry.reverses_entry_id is not None:
            if entry.reverses_entry_id not in self.entries:
                raise FakeIntegrityError(f"foreign key: no entry {entry.reverses_entry_id}")
            if any(e.reverses_entry_id == entry.reverses_entry_id for e in self.entries.values()):
                raise FakeIntegrityError(f"entry {entry.reverses_entry_id} is already reversed")
        entry_id = self._next_id
        self._next_id += 1
        self.entries[entry_id] = dataclasses.replace(entry, entry_id=entry_id, posted_at=T0)
        return entry_id

    def get(self, entry_id: int) -> JournalEntry | None:
        return self.entries.get(entry_id)

    def list(self, *, reference: str, after: int | None, limit: int) -> list[JournalEntry]:
        found = [e for i, e in sorted(self.entries.items())
                 if (not reference or e.reference == reference) and (after is None or i > after)]
        return found[:limit]

    def trial_balance(self, currency_code: str) -> list[AccountTotals]:
        sums: dict[str, tuple[Decimal, Decimal]] = {}
        for entry in self.entries.values():
            if entry.currency_code != currency_code:
                continue
            for line in entry.lines:
                debit, credit = sums.get(line.account, (Decimal(0), Decimal(0)))
                sums[line.account] = (debit + line.debit, credit + line.credit)
        return [AccountTotals(code, CHART[code][0], *sums[code]) for code in sorted(sums)]


# ---------------------------------------------------------------- payables


class FakePurchaseOrders:
    """Approved purchase orders with their quantities; for_update is a no-op (one thread)."""

    def __init__(self) -> None:
        self.rows: dict[str, PurchaseOrder] = {}
        self.versions: dict[str, int] = {}

    def snapshot(self):
        return copy.deepcopy((self.rows, self.versions))

    def restore(self, snap) -> None:
        self.rows, self.versions = copy.deepcopy(snap)

    def upsert(self, order: PurchaseOrder, version: int) -> bool:
        if self.versions.get(order.purchase_order_id, version) > version:
            return False
        stored = self.rows.get(order.purchase_order_id)
        merged = copy.deepcopy(order)
        if stored is not None:  # received and billed quantities survive a repeated approval
            merged.bills_posted = stored.bills_posted
            for line_no, line in merged.lines.items():
                if line_no in stored.lines:
                    line.received, line.billed = stored.lines[line_no].received, stored.lines[line_no].billed
            merged.lines = {**stored.lines, **merged.lines}
        self.rows[order.purchase_order_id] = merged
        self.versions[order.purchase_order_id] = version
        return True

    def get(self, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder | None:
        return copy.deepcopy(self.rows.get(purchase_order_id))

    def save_quantities(self, order: PurchaseOrder) -> None:
        for line in order.lines.values():
            if line.received < 0 or line.billed < 0:
                raise FakeIntegrityError(f"po_line_quantities_not_negative: {line}")
        stored = self.rows[order.purchase_order_id]
        stored.bills_posted = order.bills_posted
        for line_no, line in order.lines.items():
            stored.lines[line_no].received, stored.lines[line_no].billed = line.received, line.billed


class FakeGoodsReceipts:
    def __init__(self) -> None:
        self.rows: dict[str, GoodsReceipt] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def exists(self, receipt_id: str) -> bool:
        return receipt_id in self.rows

    def add(self, receipt: GoodsReceipt) -> None:
        if receipt.receipt_id in self.rows:
            raise FakeIntegrityError(f"duplicate goods receipt {receipt.receipt_id}")
        if receipt.amount > 0 and receipt.journal_entry_id is None:
            raise FakeIntegrityError(f"receipt_posted: {receipt}")
        self.rows[receipt.receipt_id] = receipt


def _check_bill(bill: SupplierBill) -> None:
    """The CHECK constraints on supplier_bills."""
    status = bill.status
    if not 0 <= bill.amount_paid <= bill.total:
        raise FakeIntegrityError(f"bill_never_overpaid: {bill.amount_paid} of {bill.total}")
    if (status in (BillStatus.HELD, BillStatus.REJECTED)) != (bill.posted_at is None):
        raise FakeIntegrityError(f"bill_posted_at: {bill}")
    if status in (BillStatus.HELD, BillStatus.REJECTED) and (bill.amount_paid or bill.journal_entry_id):
        raise FakeIntegrityError(f"bill_unposted_has_no_money: {bill}")
    if status is BillStatus.REJECTED and not (bill.review_decision == "reject" and bill.reviewed_by):
        raise FakeIntegrityError(f"bill_rejected_by_reviewer: {bill}")


class FakeSupplierBills:
    def __init__(self) -> None:
        self.rows: dict[str, SupplierBill] = {}
        self._next_seq = 1

    def snapshot(self):
        return copy.deepcopy(self.rows)

    def restore(self, snap) -> None:
        self.rows = copy.deepcopy(snap)  # like an identity, the sequence does not go back

    def add(self, bill: SupplierBill) -> None:
        for other in self.rows.values():
            if other.request_id == bill.request_id:
                raise AlreadyExists(f"request_id {bill.request_id} was used for another supplier bill")
            if (other.supplier_id, other.supplier_bill_number) == (bill.supplier_id, bill.supplier_bill_number):
                raise AlreadyExists(f"supplier {bill.supplier_id} already has a bill numbered "
                                    f"{bill.supplier_bill_number}")
        _check_bill(bill)
        bill.seq, self._next_seq = self._next_seq, self._next_seq + 1
        self.rows[bill.bill_id] = copy.deepcopy(bill)

    def save(self, bill: SupplierBill) -> None:
        stored = self.rows.get(bill.bill_id)
        if stored is None or stored.version >= bill.version:
            raise Aborted(f"supplier bill {bill.bill_id} changed concurrently")
        _check_bill(bill)
        self.rows[bill.bill_id] = copy.deepcopy(bill)

    def get(self, bill_id: str, for_update: bool = False) -> SupplierBill | None:
        return copy.deepcopy(self.rows.get(bill_id))

    def by_request(self, request_id: str) -> SupplierBill | None:
        return copy.deepcopy(next((b for b in self.rows.values() if b.request_id == request_id), None))

    def by_number(self, supplier_id: str, supplier_bill_number: str) -> SupplierBill | None:
        return copy.deepcopy(next((b for b in self.rows.values()
                                   if (b.supplier_id, b.supplier_bill_number) == (supplier_id, supplier_bill_number)),
                                  None))

    def held_for(self, purchase_order_id: str) -> list[SupplierBill]:
        return copy.deepcopy(sorted((b for b in self.rows.values() if b.purchase_order_id == purchase_order_id
                                     and b.status is BillStatus.HELD), key=lambda b: b.seq))

    def list(self, *, supplier_id: str, purchase_order_id: str, status: BillStatus | None, after: int | None,
             limit: int) -> list[SupplierBill]:
        found = [b for b in sorted(self.rows.values(), key=lambda b: b.seq)
                 if (not supplier_id or b.supplier_id == supplier_id)
                 and (not purchase_order_id or b.purchase_order_id == purchase_order_id)
                 and (status is None or b.status is status) and (after is None or b.seq > after)]
        return copy.deepcopy(found[:limit])


class FakeBillPayments:
    def __init__(self, bills: FakeSupplierBills, journal: FakeJournal) -> None:
        self.bills = bills
        self.journal = journal
        self.rows: dict[str, BillPayment] = {}

    def snapshot(self):
        return dict(self.rows)

    def restore(self, snap) -> None:
        self.rows = dict(snap)

    def add(self, payment: BillPayment) -> None:
        if any(p.request_id == payment.request_id for p in self.rows.values()):
            raise AlreadyExists(f"request_id {payment.request_id} was used for another bill payment")
        if payment.bill_id not in self.bills.rows:
            raise FakeIntegrityError(f"foreign key: no supplier bill {payment.bill_id}")
        if payment.journal_entry_id not in self.journal.entries:
            raise FakeIntegrityError(f"foreign key: no journal entry {payment.journal_entry_id}")
        if payment.amount <= 0:
            raise FakeIntegrityError(f"bill_payment_positive: {payment}")
        self.rows[payment.payment_id] = payment

    def by_request(self, request_id: str) -> BillPayment | None:
        return next((p for p in self.rows.values() if p.request_id == request_id), None)


def finance_uow() -> FakeUnitOfWork:
    """A unit of work over a fresh set of finance fakes, wired to each other."""
    journal = FakeJournal()
    invoices = FakeInvoices()
    payments = FakePayments(invoices, journal)
    credit_notes = FakeCreditNotes(invoices)
    invoices.payments, invoices.credit_notes, invoices.journal = payments, credit_notes, journal
    invoices.customers, invoices.cancellations = FakeCustomers(), FakeCancellations()
    bills = FakeSupplierBills()
    return FakeUnitOfWork(numbers=FakeNumbers(), invoices=invoices, payments=payments, credit_notes=credit_notes,
                          customers=invoices.customers, cancellations=invoices.cancellations, journal=journal,
                          purchase_orders=FakePurchaseOrders(), goods_receipts=FakeGoodsReceipts(),
                          supplier_bills=bills, bill_payments=FakeBillPayments(bills, journal))
