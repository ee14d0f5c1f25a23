"""Purchase orders: suppliers and prices, what a valid purchase order is, its state
machine as an explicit table, approvals, and goods receipts. No I/O here."""
from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import math
import re
from decimal import ROUND_HALF_UP, Decimal

from mesh import addresses, money
from mesh.errors import Aborted, FailedPrecondition, Violations
from mesh.identifiers import check_sku
from mesh.settings import Settings

ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_NAME = 200
MAX_CONTACTS = 50
MAX_SHORT = 100
MAX_LINES = 200
MAX_QUANTITY = 10**9
MAX_NOTE = 2000
MAX_REASON = 500
MAX_PERSON = 200
MAX_PAYMENT_TERMS_DAYS = 365
MAX_LEAD_TIME_DAYS = 3650
MAX_UNIT_PRICE = Decimal("9999999999.9999")
CENT = Decimal("0.01")
FOUR_PLACES = Decimal("0.0001")
ZERO = Decimal("0.00")


class SupplierStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    BLOCKED = "blocked"


class POStatus(enum.StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    CLOSED = "closed"


# Every allowed move; anything not listed is refused. Terminal states have no entry.
# An approved order can be cancelled only while nothing has been received (checked in
# cancel()); after that, closing is how it ends.
TRANSITIONS: dict[POStatus, frozenset[POStatus]] = {
    POStatus.DRAFT: frozenset({POStatus.SUBMITTED, POStatus.CANCELLED}),
    POStatus.SUBMITTED: frozenset({POStatus.APPROVED, POStatus.REJECTED, POStatus.CANCELLED}),
    POStatus.APPROVED: frozenset({POStatus.CLOSED, POStatus.CANCELLED}),
}


class QuantityStatus(enum.StrEnum):
    """Receipt or billing progress of a line or an order, derived from quantities."""

    NONE = "none"
    PARTIAL = "partial"
    FULL = "full"


class Decision(enum.StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class Origin(enum.StrEnum):
    MANUAL = "manual"
    REPLENISHMENT = "replenishment"


class InvalidTransition(FailedPrecondition):
    pass


# ---------------------------------------------------------------- configuration


@dataclasses.dataclass(frozen=True)
class ProcurementConfig:
    second_approval_above: Decimal  # orders with a larger total need two different approvers
    over_receipt_tolerance: Decimal  # fraction of the ordered quantity that may arrive on top
    segregate_duties: bool = True  # whoever submitted an order cannot approve it
    default_warehouse: str = "MAIN"  # where an order that names no warehouse is received

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcurementConfig:
        """From the ERP_PROCUREMENT_* settings; a bad value stops the service at start-up."""
        v = settings.variables
        return cls(v.decimal("ERP_PROCUREMENT_SECOND_APPROVAL_ABOVE", "10000.00", least=Decimal(0)),
                   v.decimal("ERP_PROCUREMENT_OVER_RECEIPT_TOLERANCE", "0.05", least=Decimal(0), most=Decimal(1)),
                   v.flag("ERP_PROCUREMENT_SEGREGATE_DUTIES", True), v.text("ERP_DEFAULT_WAREHOUSE", "MAIN"))

    def approvals_required(self, total: Decimal) -> int:
        return 2 if total > self.second_approval_above else 1

    def receivable(self, quantity: int) -> int:
        """Most that may be received on a line of quantity (whole units, rounded down)."""
        with decimal.localcontext(prec=40):
            return quantity + math.floor(quantity * self.over_receipt_tolerance)


# ---------------------------------------------------------------- suppliers


@dataclasses.dataclass(frozen=True)
class Contact:
    name: str
    email: str = ""
    phone: str = ""
    role: str = ""


@dataclasses.dataclass(frozen=True)
class Supplier:
    supplier_id: str
    name: str
    status: SupplierStatus
    currency_code: str
    payment_terms_days: int
    email: str = ""
    webhook_url: str = ""
    contacts: tuple[Contact, ...] = ()
    version: int = 1


@dataclasses.dataclass(frozen=True)
class SupplierPrice:
    supplier_id: str
    sku: str
    unit_price: Decimal
    min_quantity: int = 1
    lead_time_days: int = 0
    preferred: bool = False


def check_id(v: Violations, field: str, value: str) -> None:
    v.check(bool(ID_RE.fullmatch(value)), field, "must be 1-64 characters of A-Z, a-z, 0-9, '-' or '_'")


def check_text(v: Violations, field: str, text: str, limit: int, required: bool = False) -> str:
    text = text.strip()
    if required:
        v.check(0 < len(text) <= limit, field, f"must be 1-{limit} characters")
    else:
        v.check(len(text) <= limit, field, f"must be at most {limit} characters")
    return text


def new_supplier(supplier: Supplier) -> Supplier:
    """Validates a create (every problem at once); a new supplier is active, version 1."""
    v = Violations()
    check_id(v, "supplier.supplier_id", supplier.supplier_id)
    name = check_text(v, "supplier.name", supplier.name, MAX_NAME, required=True)
    v.check(money.valid_currency(supplier.currency_code), "supplier.currency_code",
            "must be an ISO 4217 code such as EUR")
    v.check(0 <= supplier.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS, "supplier.payment_terms_days",
            f"must be 0-{MAX_PAYMENT_TERMS_DAYS}")
    email, webhook_url = supplier.email.strip(), supplier.webhook_url.strip()
    addresses.check_email(v, "supplier.email", email)
    addresses.check_webhook_url(v, "supplier.webhook_url", webhook_url)
    v.check(len(supplier.contacts) <= MAX_CONTACTS, "supplier.contacts", f"must hold at most {MAX_CONTACTS}")
    contacts = []
    for i, c in enumerate(supplier.contacts[:MAX_CONTACTS]):
        field = f"supplier.contacts[{i}]"
        contact = Contact(check_text(v, f"{field}.name", c.name, MAX_NAME, required=True), c.email.strip(),
                          check_text(v, f"{field}.phone", c.phone, MAX_SHORT),
                          check_text(v, f"{field}.role", c.role, MAX_SHORT))
        addresses.check_email(v, f"{field}.email", contact.email)
        contacts.append(contact)
    v.raise_if_any()
    return dataclasses.replace(supplier, name=name, status=SupplierStatus.ACTIVE, email=email,
                               webhook_url=webhook_url, contacts=tuple(contacts), version=1)


def same_create(existing: Supplier, new: Supplier) -> bool:
    """Whether new repeats the create that made existing (status and version move on later)."""
    return dataclasses.replace(existing, status=new.status, version=new.version) == new


def parse_unit_price(v: Violations, field: str, amount: str, currency: str, expected_currency: str) -> Decimal:
    value = money.parse_amount(amount)
    v.check(value is not None and 0 <= value <= MAX_UNIT_PRICE, f"{field}.amount",
            "must be a decimal such as 12.50, 0-9999999999.9999, at most 4 decimals")
    v.check(currency == expected_currency, f"{field}.currency_code",
            f"must be the supplier's currency {expected_currency}")
    return value.quantize(FOUR_PLACES) if value is not None and 0 <= value <= MAX_UNIT_PRICE else ZERO


def validate_price(price: SupplierPrice, amount: str, currency: str, supplier_currency: str) -> SupplierPrice:
    v = Violations()
    check_id(v, "price.supplier_id", price.supplier_id)
    check_sku(v, "price.sku", price.sku)
    unit_price = parse_unit_price(v, "price.unit_price", amount, currency, supplier_currency)
    v.check(0 < price.min_quantity <= MAX_QUANTITY, "price.min_quantity", f"must be 1-{MAX_QUANTITY}")
    v.check(0 <= price.lead_time_days <= MAX_LEAD_TIME_DAYS, "price.lead_time_days",
            f"must be 0-{MAX_LEAD_TIME_DAYS}")
    v.raise_if_any()
    return dataclasses.replace(price, unit_price=unit_price)


# ---------------------------------------------------------------- purchase orders


def round_money(value: Decimal) -> Decimal:
    with decimal.localcontext(prec=60):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclasses.dataclass(frozen=True)
class POLine:
    line_no: int
    sku: str
    quantity: int
    unit_price: Decimal
    receivable_quantity: int
    expected_date: str = ""
    received_quantity: int = 0
    billed_quantity: int = 0

    @property
    def amount(self) -> Decimal:
        with decimal.localcontext(prec=60):
            return round_money(self.unit_price * self.quantity)

    @property
    def receipt_status(self) -> QuantityStatus:
        return progress(self.received_quantity, self.quantity)


def progress(done: int, ordered: int) -> QuantityStatus:
    if done <= 0:
        return QuantityStatus.NONE
    return QuantityStatus.FULL if done >= ordered else QuantityStatus.PARTIAL


@dataclasses.dataclass(frozen=True)
class Approval:
    approver: str
    decision: Decision
    comment: str
    decided_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class LineInput:
    sku: str
    quantity: int
    unit_price_amount: str  # "" takes the supplier's price
    unit_price_currency: str
    expected_date: str = ""


@dataclasses.dataclass
class PurchaseOrder:
    purchase_order_id: str
    request_id: str
    number: str
    supplier_id: str
    currency_code: str
    warehouse_code: str
    lines: list[POLine]
    status: POStatus
    origin: Origin
    created_at: dt.datetime
    updated_at: dt.datetime
    note: str = ""
    approvals: list[Approval] = dataclasses.field(default_factory=list)
    approvals_required: int = 1
    submitted_by: str = ""
    closing_reason: str = ""
    version: int = 1
    loaded_version: int = 0  # the version read from storage (0: new); guards against lost updates
    entered: list[POStatus] = dataclasses.field(default_factory=list)  # statuses entered since loaded

    @property
    def total(self) -> Decimal:
        return sum((line.amount for line in self.lines), ZERO)

    @property
    def receipt_status(self) -> QuantityStatus:
        return _overall([line.received_quantity for line in self.lines], self.lines)

    @property
    def billing_status(self) -> QuantityStatus:
        return _overall([line.billed_quantity for line in self.lines], self.lines)

    def line(self, line_no: int) -> POLine | None:
        return next((line for line in self.lines if line.line_no == line_no), None)

    def known_line(self, line_no: int) -> POLine:
        """A line the order has (a receipt's or a bill's, validated against the order before)."""
        line = self.line(line_no)
        if line is None:
            raise KeyError(f"purchase order {self.purchase_order_id} has no line {line_no}")
        return line

    def _move(self, target: POStatus, now: dt.datetime) -> None:
        if target not in TRANSITIONS.get(self.status, frozenset()):
            raise InvalidTransition(f"purchase order {self.purchase_order_id} is {self.status}; it cannot become "
                                    f"{target}")
        self.status = target
        self.entered.append(target)
        self._touch(now)

    def _touch(self, now: dt.datetime) -> None:
        self.version += 1
        self.updated_at = now

    def replace(self, expected_version: int, warehouse_code: str, lines: list[POLine], note: str,
                now: dt.datetime) -> None:
        if self.status is not POStatus.DRAFT:
            raise InvalidTransition(f"purchase order {self.purchase_order_id} is {self.status}; only a draft "
                                    "can be edited")
        if expected_version != self.version:
            raise Aborted(f"purchase order {self.purchase_order_id} is at version {self.version}, not "
                          f"{expected_version}; read it again and repeat the edit")
        self.warehouse_code = warehouse_code or self.warehouse_code
        self.lines, self.note = lines, note
        self._touch(now)

    def add_quantity(self, line: POLine, now: dt.datetime) -> None:
        """Replenishment: another shortage of a SKU on this draft adds to its line."""
        current = next((x for x in self.lines if x.sku == line.sku), None)
        if current is None:
            self.lines.append(dataclasses.replace(line, line_no=len(self.lines) + 1))
        else:
            quantity = current.quantity + line.quantity
            self.lines[self.lines.index(current)] = dataclasses.replace(
                current, quantity=quantity, receivable_quantity=current.receivable_quantity + line.receivable_quantity)
        self._touch(now)

    def submit(self, by: str, required: int, now: dt.datetime) -> bool:
        """False when already submitted (a repeat changes nothing)."""
        if self.status is POStatus.SUBMITTED:
            return False
        if self.status is POStatus.DRAFT and not self.lines:
            raise FailedPrecondition(f"purchase order {self.purchase_order_id} has no lines to submit")
        self._move(POStatus.SUBMITTED, now)
        self.submitted_by, self.approvals_required = by, required
        return True

    def approvers(self) -> set[str]:
        return {a.approver for a in self.approvals if a.decision is Decision.APPROVED}

    def approve(self, approver: str, comment: str, now: dt.datetime, segregate_duties: bool = True) -> None:
        """Records an approval; the order is approved once it has the approvals it needs.
        With segregation of duties, whoever submitted the order cannot approve it."""
        if self.status is not POStatus.SUBMITTED:
            raise InvalidTransition(f"purchase order {self.purchase_order_id} is {self.status}; only a "
                                    "submitted order can be approved")
        if segregate_duties and approver == self.submitted_by:
            raise FailedPrecondition(f"{approver} submitted purchase order {self.purchase_order_id} and cannot also "
                                     "approve it (segregation of duties): someone else must approve it")
        if approver in self.approvers():
            raise FailedPrecondition(f"{approver} already approved purchase order {self.purchase_order_id}; "
                                     f"an order of {self.total} {self.currency_code} needs a different approver")
        self.approvals.append(Approval(approver, Decision.APPROVED, comment, now))
        if len(self.approvers()) >= self.approvals_required:
            self._move(POStatus.APPROVED, now)
        else:
            self._touch(now)

    def reject(self, approver: str, reason: str, now: dt.datetime) -> None:
        if self.status is POStatus.REJECTED:
            return
        if self.status is not POStatus.SUBMITTED:
            raise InvalidTransition(f"purchase order {self.purchase_order_id} is {self.status}; only a "
                                    "submitted order can be rejected")
        self.approvals.append(Approval(approver, Decision.REJECTED, reason, now))
        self.closing_reason = reason
        self._move(POStatus.REJECTED, now)

    def cancel(self, reason: str, now: dt.datetime) -> bool:
        if self.status is POStatus.CANCELLED:
            return False
        if any(line.received_quantity for line in self.lines):
            raise FailedPrecondition(f"purchase order {self.purchase_order_id} has goods received; close it instead")
        self._move(POStatus.CANCELLED, now)
        self.closing_reason = reason
        return True

    def close(self, reason: str, now: dt.datetime) -> bool:
        if self.status is POStatus.CLOSED:
            return False
        self._move(POStatus.CLOSED, now)
        self.closing_reason = reason
        return True

    def receive(self, quantities: dict[int, int], now: dt.datetime) -> None:
        """Adds a receipt's quantities; refuses the whole receipt if any line would pass
        what it may receive (ordered quantity plus the tolerance fixed when it was set)."""
        if self.status is not POStatus.APPROVED:
            raise InvalidTransition(f"purchase order {self.purchase_order_id} is {self.status}; goods can be "
                                    "received only against an approved order")
        problems = []
        for line_no, quantity in sorted(quantities.items()):
            line = self.line(line_no)
            if line is None:  # validate_receipt refuses it first; here it is a fault, not an AttributeError
                raise ValueError(f"purchase order {self.purchase_order_id} has no line {line_no}")
            if line.received_quantity + quantity > line.receivable_quantity:
                problems.append(f"line {line_no} ({line.sku}): {line.received_quantity} of {line.quantity} received, "
                                f"{quantity} more would pass the {line.receivable_quantity} allowed")
        if problems:
            raise FailedPrecondition("over-receipt refused: " + "; ".join(problems))
        self.lines = [dataclasses.replace(line, received_quantity=line.received_quantity + quantities[line.line_no])
                      if line.line_no in quantities else line for line in self.lines]
        self._touch(now)

    def billed(self, quantities: dict[int, int], now: dt.datetime) -> None:
        """What finance posted; a line finance knows and this order does not is a fault."""
        unknown = set(quantities) - {line.line_no for line in self.lines}
        if unknown:
            raise ValueError(f"purchase order {self.purchase_order_id} has no lines {sorted(unknown)}")
        self.lines = [dataclasses.replace(line, billed_quantity=line.billed_quantity + quantities[line.line_no])
                      if line.line_no in quantities else line for line in self.lines]
        self._touch(now)


def _overall(done: list[int], lines: list[POLine]) -> QuantityStatus:
    if not lines or not any(done):
        return QuantityStatus.NONE
    full = all(d >= line.quantity for d, line in zip(done, lines, strict=True))
    return QuantityStatus.FULL if full else QuantityStatus.PARTIAL


def validate_lines(v: Violations, lines: tuple[LineInput, ...], currency: str,
                   prices: dict[str, SupplierPrice], config: ProcurementConfig) -> list[POLine]:
    """Lines of a draft, numbered from 1; a line without a price takes the supplier's."""
    v.check(len(lines) <= MAX_LINES, "lines", f"must hold at most {MAX_LINES} lines")
    result, seen = [], set()
    for i, line in enumerate(lines[:MAX_LINES]):
        field = f"lines[{i}]"
        check_sku(v, f"{field}.sku", line.sku)
        v.check(line.sku not in seen, f"{field}.sku", "appears on an earlier line; put the quantity on one line")
        seen.add(line.sku)
        v.check(0 < line.quantity <= MAX_QUANTITY, f"{field}.quantity", f"must be 1-{MAX_QUANTITY}")
        if line.expected_date:
            v.check(_valid_date(line.expected_date), f"{field}.expected_date", "must be a date as YYYY-MM-DD")
        if line.unit_price_amount:
            price = parse_unit_price(v, f"{field}.unit_price", line.unit_price_amount, line.unit_price_currency,
                                     currency)
        elif line.sku in prices:
            price = prices[line.sku].unit_price
        else:
            v.add(f"{field}.unit_price", f"is required: the supplier has no price for {line.sku}")
            price = ZERO
        quantity = max(line.quantity, 0)
        result.append(POLine(i + 1, line.sku, quantity, price, config.receivable(quantity), line.expected_date))
    return result


def _valid_date(text: str) -> bool:
    if not DATE_RE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def replenishment_line(price: SupplierPrice, reorder_quantity: int, today: dt.date,
                       config: ProcurementConfig) -> POLine:
    """What a shortage orders: the reorder quantity, at least the supplier's minimum."""
    quantity = max(reorder_quantity, price.min_quantity)
    expected = (today + dt.timedelta(days=price.lead_time_days)).isoformat()
    return POLine(1, price.sku, quantity, price.unit_price, config.receivable(quantity), expected)


def document_number(year: int, seq: int) -> str:
    return f"PO-{year}-{seq:06d}"


# ---------------------------------------------------------------- goods receipts


@dataclasses.dataclass(frozen=True)
class ReceiptLine:
    line_no: int
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class GoodsReceipt:
    receipt_id: str
    request_id: str
    purchase_order_id: str
    warehouse_code: str
    lines: tuple[ReceiptLine, ...]
    received_by: str
    reference: str
    received_at: dt.datetime


def validate_receipt(v: Violations, order: PurchaseOrder, lines: list[tuple[int, int]]) -> dict[int, int]:
    """line_no -> quantity of a receipt against order."""
    v.check(0 < len(lines) <= MAX_LINES, "lines", f"must hold 1-{MAX_LINES} lines")
    quantities: dict[int, int] = {}
    for i, (line_no, quantity) in enumerate(lines[:MAX_LINES]):
        field = f"lines[{i}]"
        if v.check(order.line(line_no) is not None, f"{field}.line_no",
                   f"purchase order {order.purchase_order_id} has no line {line_no}"):
            v.check(line_no not in quantities, f"{field}.line_no", "appears on an earlier line")
        v.check(0 < quantity <= MAX_QUANTITY, f"{field}.quantity", f"must be 1-{MAX_QUANTITY}")
        quantities[line_no] = quantity
    return quantities
