"""Finance's unit of work: one transaction over the repositories of the ledger
(ledger/adapters.py), the sales side (receivables/adapters.py), the purchase side
(payables/adapters.py) and stock valuation (valuation.py)."""
from __future__ import annotations

from mesh.uow import UnitOfWork
from services.finance.ledger.adapters import JournalRepository, NumberSequences
from services.finance.payables.adapters import (
    BillPaymentRepository,
    GoodsReceiptRepository,
    PurchaseOrderRepository,
    SupplierBillRepository,
)
from services.finance.receivables.adapters import (
    BeforeIssuingRead,
    CancellationRepository,
    CreditNoteRepository,
    CustomerRepository,
    InvoiceRepository,
    PaymentRepository,
)
from services.finance.valuation import StockPostingRepository


class FinanceUnitOfWork(UnitOfWork):
    numbers: NumberSequences
    journal: JournalRepository
    invoices: InvoiceRepository
    payments: PaymentRepository
    credit_notes: CreditNoteRepository
    customers: CustomerRepository
    cancellations: CancellationRepository
    purchase_orders: PurchaseOrderRepository
    goods_receipts: GoodsReceiptRepository
    supplier_bills: SupplierBillRepository
    bill_payments: BillPaymentRepository
    stock_postings: StockPostingRepository

    def start(self) -> None:
        self.numbers = NumberSequences(self.connection)
        self.journal = JournalRepository(self.connection)
        read_first: BeforeIssuingRead = {}  # shared: a cancellation or new terms drop what they make stale
        self.invoices = InvoiceRepository(self.connection, read_first)
        self.payments = PaymentRepository(self.connection)
        self.credit_notes = CreditNoteRepository(self.connection)
        self.customers = CustomerRepository(self.connection, read_first)
        self.cancellations = CancellationRepository(self.connection, read_first)
        self.purchase_orders = PurchaseOrderRepository(self.connection)
        self.goods_receipts = GoodsReceiptRepository(self.connection)
        self.supplier_bills = SupplierBillRepository(self.connection)
        self.bill_payments = BillPaymentRepository(self.connection)
        self.stock_postings = StockPostingRepository(self.connection)

    def flush(self) -> None:
        self.numbers.flush()
        self.invoices.flush()
