"""Finance's rules for the purchase side: the purchase orders finance knows (a projection
of procurement's events), goods receipts, supplier bills and their three-way match, bill
payments, and the journal entries they post. No I/O here.

Three-way match, per bill line: the quantity billed on posted bills plus this bill may
not exceed the quantity received, nor the quantity ordered, each times (1 + the quantity
tolerance); the billed unit price must be within the price tolerance (a fraction of the
ordered price) of the purchase order's price. A bill that fails is HELD with one reason
per problem; it is matched again whenever goods arrive for its purchase order.

Postings, each line amount rounded half up to cents like invoice lines:
- goods received: Dr inventory / Cr goods received not invoiced, at quantity x PO price;
- a posted bill: Dr goods received not invoiced at quantity x PO price, Cr payables at
  quantity x billed price, the difference to purchase price variance;
- a bill payment: Dr payables / Cr cash.
Supplier bills carry no tax.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
from decimal import Decimal

from mesh import money
from mesh.errors import FailedPrecondition, FieldViolation, InvalidArgument, Violations
from services.finance.ledger.domain import (
    MAX_AMOUNT,
    MAX_ID,
    MAX_PAYMENT_TERMS_DAYS,
    ZERO,
    Account,
    JournalEntry,
    OrderLineInput,
    check_id,
    check_payment,
    entry,
    line_amount,
    payment_posting,
    unit_price,
    valid_payment,
)

MAX_BILL_LINES = 200
MAX_BILL_QUANTITY = 1_000_000_000
MAX_REVIEWER = 200
MAX_NOTE = 500
MAX_REFERENCE = 200


@dataclasses.dataclass(frozen=True)
class MatchTolerances:
    """Fractions: 0.02 lets a billed price differ from the ordered one by 2%."""

    quantity: Decimal = Decimal(0)
    price: Decimal = Decimal("0.02")


class UnknownPurchaseOrder(FailedPrecondition):
    """Finance has no PurchaseOrderApproved for the order (yet)."""


def _fits(amount: Decimal) -> bool:
    return amount <= MAX_AMOUNT


# ---------------------------------------------------------------- purchase orders finance knows


@dataclasses.dataclass
class PurchaseOrderLine:
    line_no: int
    sku: str
    ordered: int
    unit_price: Decimal  # the purchase order's price of one unit
    received: int = 0
    billed: int = 0  # on posted bills (held and rejected ones bill nothing)


@dataclasses.dataclass
class PurchaseOrder:
    purchase_order_id: str
    number: str
    supplier_id: str
    currency_code: str
    payment_terms_days: int
    lines: dict[int, PurchaseOrderLine]
    bills_posted: int = 0  # the version of the order's SupplierBillPosted events

    @property
    def name(self) -> str:
        return self.number or self.purchase_order_id


@dataclasses.dataclass(frozen=True)
class ApprovePurchaseOrder:
    purchase_order_id: str
    number: str
    supplier_id: str
    payment_terms_days: int
    lines: tuple[OrderLineInput, ...]
    total_currency: str


def approved_order(cmd: ApprovePurchaseOrder) -> PurchaseOrder:
    """The projection of a PurchaseOrderApproved; InvalidArgument (the event retries, then
    dead-letters) naming every bad field."""
    v = Violations()
    check_id(v, "purchase_order_id", cmd.purchase_order_id)
    check_id(v, "supplier_id", cmd.supplier_id)
    v.check(len(cmd.number) <= MAX_ID, "number", f"must be at most {MAX_ID} characters")
    v.check(0 <= cmd.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS, "payment_terms_days",
            f"must be 0-{MAX_PAYMENT_TERMS_DAYS}")
    v.check(len(cmd.lines) > 0, "lines", "must hold at least one line")
    currency = cmd.total_currency or (cmd.lines[0].currency_code if cmd.lines else "")
    v.check(money.valid_currency(currency), "total.currency_code", "must be an ISO 4217 code")
    lines: dict[int, PurchaseOrderLine] = {}
    for i, line in enumerate(cmd.lines):
        field = f"lines[{i}]"
        v.check(line.line_no > 0 and line.line_no not in lines, f"{field}.line_no", "must be positive and unique")
        v.check(0 < len(line.sku) <= MAX_ID, f"{field}.sku", f"must be 1-{MAX_ID} characters")
        v.check(0 < line.quantity <= MAX_BILL_QUANTITY, f"{field}.quantity", f"must be 1-{MAX_BILL_QUANTITY}")
        line_price = unit_price(v, field, line.unit_price)
        v.check(line.currency_code == currency, f"{field}.unit_price.currency_code",
                f"must be the order's currency {currency}")
        lines[line.line_no] = PurchaseOrderLine(line.line_no, line.sku, line.quantity, line_price)
    v.raise_if_any()
    return PurchaseOrder(cmd.purchase_order_id, cmd.number, cmd.supplier_id, currency, cmd.payment_terms_days, lines)


# ---------------------------------------------------------------- goods receipts


@dataclasses.dataclass(frozen=True)
class ReceivedLineInput:
    line_no: int
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class ReceiveGoods:
    receipt_id: str
    purchase_order_id: str
    supplier_id: str
    lines: tuple[ReceivedLineInput, ...]


@dataclasses.dataclass(frozen=True)
class ReceiptLine:
    line_no: int
    quantity: int
    amount: Decimal  # quantity x the purchase order's price, rounded half up to cents


@dataclasses.dataclass(frozen=True)
class GoodsReceipt:
    receipt_id: str
    purchase_order_id: str
    lines: tuple[ReceiptLine, ...]
    journal_entry_id: int | None = None

    @property
    def amount(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)


def validate_receipt(cmd: ReceiveGoods) -> None:
    """What a GoodsReceived must hold before finance looks its purchase order up."""
    v = Violations()
    check_id(v, "receipt_id", cmd.receipt_id)
    check_id(v, "purchase_order_id", cmd.purchase_order_id)
    v.check(len(cmd.lines) > 0, "lines", "must hold at least one line")
    seen: set[int] = set()
    for i, line in enumerate(cmd.lines):
        v.check(line.line_no > 0 and line.line_no not in seen, f"lines[{i}].line_no", "must be positive and unique")
        seen.add(line.line_no)
        v.check(0 < line.quantity <= MAX_BILL_QUANTITY, f"lines[{i}].quantity", f"must be 1-{MAX_BILL_QUANTITY}")
    v.raise_if_any()


def receive(order: PurchaseOrder, cmd: ReceiveGoods) -> GoodsReceipt:
    """Adds the received quantities to the order and values them at its prices. A receipt
    that does not fit the order (another supplier, a line or SKU it does not have) is
    refused, so the event dead-letters for someone to look at rather than post wrong values."""
    v = Violations()
    v.check(not cmd.supplier_id or cmd.supplier_id == order.supplier_id, "supplier_id",
            f"is not purchase order {order.name}'s supplier {order.supplier_id}")
    for i, line in enumerate(cmd.lines):
        ordered = order.lines.get(line.line_no)
        if ordered is None:
            v.add(f"lines[{i}].line_no", f"purchase order {order.name} has no line {line.line_no}")
        elif line.sku and line.sku != ordered.sku:
            v.add(f"lines[{i}].sku", f"line {line.line_no} of purchase order {order.name} is {ordered.sku}")
    v.raise_if_any()
    lines = []
    for line in cmd.lines:
        ordered = order.lines[line.line_no]
        ordered.received += line.quantity
        lines.append(ReceiptLine(line.line_no, line.quantity, line_amount(line.quantity, ordered.unit_price)))
    receipt = GoodsReceipt(cmd.receipt_id, order.purchase_order_id, tuple(lines))
    if not _fits(receipt.amount):
        raise InvalidArgument([FieldViolation("lines", f"the receipt's value {receipt.amount} exceeds the largest "
                                                       f"amount finance can post ({MAX_AMOUNT})")])
    return receipt


def receipt_entry(receipt: GoodsReceipt, order: PurchaseOrder) -> JournalEntry | None:
    """Dr inventory / Cr goods received not invoiced; None for goods received free."""
    return entry(f"goods receipt {receipt.receipt_id} for purchase order {order.name}", receipt.receipt_id,
                 order.currency_code, [(Account.INVENTORY, receipt.amount)],
                 [(Account.GOODS_RECEIVED_NOT_INVOICED, receipt.amount)])


# ---------------------------------------------------------------- supplier bills


class BillStage(enum.StrEnum):
    HELD = "held"
    POSTED = "posted"
    REJECTED = "rejected"


class BillStatus(enum.StrEnum):
    """Stored, and derived from the stage and the amounts whenever they change."""

    HELD = "held"
    POSTED = "posted"
    PARTLY_PAID = "partly_paid"
    PAID = "paid"
    REJECTED = "rejected"


class ReviewDecision(enum.StrEnum):
    RELEASE = "release"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class BillLineInput:
    line_no: int
    quantity: int
    unit_price: str
    currency_code: str


@dataclasses.dataclass(frozen=True)
class RecordSupplierBill:
    request_id: str
    purchase_order_id: str
    supplier_bill_number: str
    lines: tuple[BillLineInput, ...]


@dataclasses.dataclass(frozen=True)
class BillLine:
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    amount: Decimal  # quantity x unit_price, rounded half up to cents


@dataclasses.dataclass
class SupplierBill:
    bill_id: str
    request_id: str
    supplier_bill_number: str
    purchase_order_id: str
    supplier_id: str
    currency_code: str
    lines: list[BillLine]
    recorded_at: dt.datetime
    due_at: dt.datetime
    stage: BillStage = BillStage.HELD
    hold_reasons: list[str] = dataclasses.field(default_factory=list)
    amount_paid: Decimal = ZERO
    reviewed_by: str = ""
    review_note: str = ""
    review_decision: str = ""
    posted_at: dt.datetime | None = None
    journal_entry_id: int | None = None
    seq: int | None = None  # assigned by the database; lists are ordered by it
    version: int = 1

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def amount_open(self) -> Decimal:
        return self.total - self.amount_paid if self.stage is BillStage.POSTED else ZERO

    @property
    def status(self) -> BillStatus:
        if self.stage is not BillStage.POSTED:
            return BillStatus(self.stage.value)
        if self.amount_paid == self.total:
            return BillStatus.PAID  # a bill of nothing is paid as soon as it is posted
        return BillStatus.PARTLY_PAID if self.amount_paid > 0 else BillStatus.POSTED

    def same_request(self, cmd: RecordSupplierBill, lines: list[tuple[int, int, Decimal]]) -> bool:
        """Whether cmd is a repeat of the request that recorded this bill."""
        return (self.purchase_order_id, self.supplier_bill_number) == (cmd.purchase_order_id,
                                                                       cmd.supplier_bill_number) \
            and [(x.line_no, x.quantity, x.unit_price) for x in self.lines] == lines

    def hold(self, reasons: list[str]) -> None:
        self.hold_reasons = list(reasons)
        self.version += 1

    def post(self, at: dt.datetime, journal_entry_id: int | None) -> None:
        assert self.stage is BillStage.HELD, "only a held or new bill is posted"
        self.stage, self.posted_at, self.journal_entry_id = BillStage.POSTED, at, journal_entry_id
        self.version += 1

    def review(self, decision: ReviewDecision, reviewer: str, note: str) -> None:
        if self.stage is not BillStage.HELD:
            raise FailedPrecondition(f"supplier bill {self.supplier_bill_number} is {self.status}, not held; "
                                     "only a held bill is reviewed")
        self.reviewed_by, self.review_note, self.review_decision = reviewer, note, str(decision)
        if decision is ReviewDecision.REJECT:
            self.stage = BillStage.REJECTED
        self.version += 1

    def reviewed_as(self, decision: ReviewDecision, reviewer: str, note: str) -> bool:
        """Whether this exact review was already applied (a retried call)."""
        return (self.review_decision, self.reviewed_by, self.review_note) == (str(decision), reviewer, note)

    def pay(self, amount: Decimal, currency_code: str) -> None:
        if currency_code != self.currency_code:
            raise InvalidArgument([FieldViolation("amount.currency_code",
                                                  f"must be the bill's currency {self.currency_code}")])
        if self.stage is not BillStage.POSTED:
            raise FailedPrecondition(f"supplier bill {self.supplier_bill_number} is {self.status}; "
                                     "only a posted bill is paid")
        if self.amount_open == 0:
            raise FailedPrecondition(f"supplier bill {self.supplier_bill_number} is already paid in full")
        if amount > self.amount_open:
            raise FailedPrecondition(
                f"payment of {money.format_amount(amount)} {currency_code} exceeds the "
                f"{money.format_amount(self.amount_open)} {self.currency_code} open on supplier bill "
                f"{self.supplier_bill_number}")
        self.amount_paid += amount
        self.version += 1


def validate_bill_request(cmd: RecordSupplierBill) -> list[tuple[int, int, Decimal]]:
    """(line_no, quantity, unit price) per line, or InvalidArgument naming every bad field."""
    v = Violations()
    v.check(0 < len(cmd.request_id) <= MAX_ID, "request_id", "must be 1-64 characters (a UUID is a good choice)")
    check_id(v, "purchase_order_id", cmd.purchase_order_id)
    check_id(v, "supplier_bill_number", cmd.supplier_bill_number)
    v.check(0 < len(cmd.lines) <= MAX_BILL_LINES, "lines", f"must hold 1-{MAX_BILL_LINES} lines")
    parsed: list[tuple[int, int, Decimal]] = []
    seen: set[int] = set()
    for i, line in enumerate(cmd.lines[:MAX_BILL_LINES]):
        field = f"lines[{i}]"
        v.check(line.line_no > 0 and line.line_no not in seen, f"{field}.line_no",
                "must be positive, each purchase order line at most once")
        seen.add(line.line_no)
        v.check(0 < line.quantity <= MAX_BILL_QUANTITY, f"{field}.quantity", f"must be 1-{MAX_BILL_QUANTITY}")
        line_price = unit_price(v, field, line.unit_price)
        v.check(money.valid_currency(line.currency_code), f"{field}.unit_price.currency_code",
                "must be an ISO 4217 code such as EUR")
        parsed.append((line.line_no, line.quantity, line_price))
    v.raise_if_any()
    return parsed


def bill_lines(cmd: RecordSupplierBill, parsed: list[tuple[int, int, Decimal]], order: PurchaseOrder) -> list[BillLine]:
    """The bill's lines against its purchase order. A line the order does not have, or
    another currency, can never be posted (there is no ordered price to clear goods
    received at), so they are refused rather than held."""
    v = Violations()
    for i, line in enumerate(cmd.lines):
        if line.line_no not in order.lines:
            v.add(f"lines[{i}].line_no", f"purchase order {order.name} has no line {line.line_no}")
        v.check(line.currency_code == order.currency_code, f"lines[{i}].unit_price.currency_code",
                f"must be the purchase order's currency {order.currency_code}")
    v.raise_if_any()
    lines = [BillLine(n, order.lines[n].sku, q, p, line_amount(q, p)) for n, q, p in parsed]
    total = sum((x.amount for x in lines), ZERO)
    ordered_value = sum((line_amount(x.quantity, order.lines[x.line_no].unit_price) for x in lines), ZERO)
    if not (_fits(total) and _fits(ordered_value)):
        raise InvalidArgument([FieldViolation("lines", f"the bill total {total} exceeds the largest amount finance "
                                                       f"can post ({MAX_AMOUNT})")])
    return lines


def new_bill(bill_id: str, cmd: RecordSupplierBill, order: PurchaseOrder, lines: list[BillLine],
             recorded_at: dt.datetime) -> SupplierBill:
    return SupplierBill(bill_id=bill_id, request_id=cmd.request_id, supplier_bill_number=cmd.supplier_bill_number,
                        purchase_order_id=order.purchase_order_id, supplier_id=order.supplier_id,
                        currency_code=order.currency_code, lines=lines, recorded_at=recorded_at,
                        due_at=recorded_at + dt.timedelta(days=order.payment_terms_days))


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


def _over(billed: int, limit: int, tolerance: Decimal) -> bool:
    with decimal.localcontext(prec=60):
        return billed > limit * (1 + tolerance)


def match(lines: list[BillLine], order: PurchaseOrder, tolerances: MatchTolerances) -> list[str]:
    """Why the bill does not match its purchase order, one reason per problem; empty when
    it matches. Quantities billed on earlier posted bills count against this one."""
    reasons = []
    allowance = f" (+{_percent(tolerances.quantity)})" if tolerances.quantity else ""
    for line in lines:
        ordered = order.lines[line.line_no]
        billed = ordered.billed + line.quantity
        earlier = f" ({ordered.billed} on earlier bills)" if ordered.billed else ""
        if _over(billed, ordered.received, tolerances.quantity):
            reasons.append(f"line {line.line_no}: billed {billed}{earlier} exceeds received "
                           f"{ordered.received}{allowance}")
        if _over(billed, ordered.ordered, tolerances.quantity):
            reasons.append(f"line {line.line_no}: billed {billed}{earlier} exceeds ordered {ordered.ordered}{allowance}")
        with decimal.localcontext(prec=60):
            within = abs(line.unit_price - ordered.unit_price) <= ordered.unit_price * tolerances.price
        if not within:
            reasons.append(f"line {line.line_no}: price {money.format_amount(line.unit_price)} differs from the "
                           f"ordered {money.format_amount(ordered.unit_price)} by more than "
                           f"{_percent(tolerances.price)}")
    return reasons


def bill_order(order: PurchaseOrder, bill: SupplierBill) -> None:
    """Counts a posted bill's quantities as billed on its purchase order."""
    for line in bill.lines:
        order.lines[line.line_no].billed += line.quantity
    order.bills_posted += 1


def bill_entry(bill: SupplierBill, order: PurchaseOrder) -> JournalEntry | None:
    """Dr goods received not invoiced at the ordered prices, Cr payables at the billed
    ones, the difference to purchase price variance (Dr when billed above the order's
    prices, Cr below). None for a bill of nothing."""
    cleared = sum((line_amount(x.quantity, order.lines[x.line_no].unit_price) for x in bill.lines), ZERO)
    variance = bill.total - cleared
    return entry(f"supplier bill {bill.supplier_bill_number} from {bill.supplier_id} for purchase order "
                 f"{order.name}", bill.bill_id, bill.currency_code,
                 [(Account.GOODS_RECEIVED_NOT_INVOICED, cleared), (Account.PURCHASE_PRICE_VARIANCE, max(variance, ZERO))],
                 [(Account.PAYABLES, bill.total), (Account.PURCHASE_PRICE_VARIANCE, max(-variance, ZERO))])


# ---------------------------------------------------------------- reviews and payments


@dataclasses.dataclass(frozen=True)
class ReviewSupplierBill:
    bill_id: str
    decision: ReviewDecision | None  # None: the request named no valid decision
    reviewer: str
    note: str


def validate_review(cmd: ReviewSupplierBill) -> None:
    v = Violations()
    check_id(v, "bill_id", cmd.bill_id)
    v.check(cmd.decision is not None, "decision", "must be RELEASE or REJECT")
    v.check(0 < len(cmd.reviewer) <= MAX_REVIEWER, "reviewer", f"must be 1-{MAX_REVIEWER} characters")
    v.check(0 < len(cmd.note) <= MAX_NOTE, "note", f"must be 1-{MAX_NOTE} characters")
    v.raise_if_any()


@dataclasses.dataclass(frozen=True)
class PaySupplierBill:
    request_id: str
    bill_id: str
    amount: str
    currency_code: str
    reference: str


@dataclasses.dataclass(frozen=True)
class BillPayment:
    payment_id: str
    request_id: str
    bill_id: str
    amount: Decimal
    currency_code: str
    reference: str
    paid_at: dt.datetime
    journal_entry_id: int | None = None


def validate_bill_payment(cmd: PaySupplierBill) -> Decimal:
    """The amount paid, or InvalidArgument naming every bad field."""
    v = Violations()
    return valid_payment(v, check_payment(v, cmd.request_id, ("bill_id", cmd.bill_id), cmd.amount,
                                          cmd.currency_code, cmd.reference))


def bill_payment_entry(payment: BillPayment, bill: SupplierBill) -> JournalEntry:
    """Dr payables / Cr cash."""
    return payment_posting(f"payment of supplier bill {bill.supplier_bill_number} from {bill.supplier_id}",
                           payment.payment_id, payment.currency_code, payment.amount, Account.PAYABLES, Account.CASH)

