"""Finance's use cases. record_payment, the supplier-bill requests and the reads own their
transaction; the reactions to events (issue_invoice, on_order_cancelled,
on_customer_updated, on_purchase_order_approved, on_goods_received) run inside the event
consumer's transaction, with its inbox row, and do not commit.

Every finance event about an order uses the order id as aggregate id and the invoice's
version (1 when issued, +1 per payment or credit note), so they arrive in order."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from decimal import Decimal

from erp.common.v1 import money_pb2
from erp.events.v1 import finance_events_pb2 as ev
from mesh import money, paging
from mesh.errors import AlreadyExists, NotFound, Violations
from services.finance import domain, payables
from services.finance.domain import (
    CreditNote,
    CustomerTerms,
    FinanceConfig,
    Invoice,
    InvoiceStatus,
    JournalEntry,
    Payment,
)
from services.finance.payables import GoodsReceipt, PurchaseOrder, SupplierBill

log = logging.getLogger("services.finance")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def to_money(currency: str, amount: Decimal) -> money_pb2.Money:
    """Money with at least 2 decimals and no insignificant zeros beyond them (a price
    stored as 349.0050 reads 349.005)."""
    trimmed = amount.normalize()
    return money_pb2.Money(currency_code=currency,
                           amount=money.format_amount(trimmed if trimmed.as_tuple().exponent < -2 else amount))


# ---------------------------------------------------------------- reactions to events


def issue_invoice(uow, cmd: domain.IssueInvoice, config: FinanceConfig, now: dt.datetime | None = None) -> Invoice | None:
    """One invoice per order, ever: a repeat, or an order cancelled first, changes nothing."""
    if uow.cancellations.exists(cmd.order_id):
        log.info("order %s was cancelled before it was invoiced; no invoice", cmd.order_id)
        return None
    existing = uow.invoices.by_order(cmd.order_id)
    if existing is not None:
        return existing
    priced = domain.price_order(cmd, config.tax_rate)  # an invalid event retries, then dead-letters
    issued_at = now or utcnow()
    terms = uow.customers.payment_terms(cmd.customer_id)
    year = issued_at.astimezone(dt.UTC).year
    seq = uow.numbers.next(domain.INVOICE_PREFIX, year)
    invoice = domain.new_invoice(str(uuid.uuid4()), year, seq, cmd, priced, config.tax_rate, issued_at,
                                 config.default_payment_terms_days if terms is None else terms)
    entry = domain.invoice_entry(invoice)
    if entry is not None:  # a free order posts nothing
        invoice.journal_entry_id = uow.journal.post(entry)
    # Two deliveries of one order racing both get here; the UNIQUE order_id makes the
    # second fail and roll back (its number too), and its retry finds the invoice.
    uow.invoices.add(invoice)
    uow.emit(aggregate_type="invoice", aggregate_id=invoice.order_id, version=invoice.version,
             payload=ev.InvoiceIssued(
                 invoice_id=invoice.invoice_id, number=invoice.number, order_id=invoice.order_id,
                 customer_id=invoice.customer_id, total=to_money(invoice.currency_code, invoice.total),
                 due_date=invoice.due_date.isoformat(),
                 order_amount=to_money(invoice.currency_code, invoice.order_amount)))
    return invoice


def on_order_cancelled(uow, cmd: domain.CancelOrder, now: dt.datetime | None = None) -> CreditNote | None:
    """Credits the order's invoice for what is not yet credited, whatever was_invoiced
    says (orders may not have heard of the invoice yet). Without an invoice, keeps a
    tombstone so that a late OrderConfirmed does not invoice a cancelled order."""
    invoice = uow.invoices.by_order(cmd.order_id, for_update=True)
    if invoice is None:
        if cmd.was_invoiced:
            log.warning("order %s was cancelled as invoiced, but finance has no invoice for it", cmd.order_id)
        uow.cancellations.add(cmd.order_id, cmd.reason[:500])
        return None
    credited = invoice.credit()
    if credited is None:
        return None  # credited already: a repeat
    amount, unpaid = credited
    issued_at = now or utcnow()
    year = issued_at.astimezone(dt.UTC).year
    note = CreditNote(str(uuid.uuid4()), year, uow.numbers.next(domain.CREDIT_NOTE_PREFIX, year), invoice.invoice_id,
                      invoice.order_id, invoice.customer_id, invoice.currency_code, amount, unpaid,
                      cmd.reason[:500], issued_at)
    if invoice.journal_entry_id is not None:
        original = uow.journal.get(invoice.journal_entry_id)
        if original is None or original.total_debit != amount:
            raise RuntimeError(f"invoice {invoice.number}'s journal entry does not match its total")
        reversal = domain.reversal(original, f"credit note {note.number} reverses invoice {invoice.number}",
                                   note.credit_note_id)
        note = dataclasses.replace(note, journal_entry_id=uow.journal.post(reversal))
    uow.credit_notes.add(note)
    uow.invoices.save(invoice)
    uow.emit(aggregate_type="credit_note", aggregate_id=invoice.order_id, version=invoice.version,
             payload=ev.CreditNoteIssued(
                 credit_note_id=note.credit_note_id, number=note.number, invoice_id=invoice.invoice_id,
                 order_id=invoice.order_id, customer_id=invoice.customer_id,
                 amount=to_money(note.currency_code, amount), unpaid_amount=to_money(note.currency_code, unpaid)))
    return note


def on_customer_updated(uow, terms: CustomerTerms) -> bool:
    """Keeps the customer's payment terms; an older version arriving late is ignored."""
    domain.validate_terms(terms)
    return uow.customers.upsert(terms)


# ---------------------------------------------------------------- payments


def record_payment(uow, cmd: domain.RecordPayment, now: dt.datetime | None = None) -> tuple[Payment, Invoice]:
    amount = domain.validate_payment(cmd)
    with uow:
        repeat = _repeat(uow, cmd, amount)
        if repeat is not None:
            return repeat
        invoice = uow.invoices.get(cmd.invoice_id, for_update=True)
        if invoice is None:
            raise NotFound(f"no invoice {cmd.invoice_id}")
        repeat = _repeat(uow, cmd, amount)  # a twin request committed while we waited for the lock
        if repeat is not None:
            return repeat
        invoice.pay(amount, cmd.currency_code)
        payment = Payment(str(uuid.uuid4()), cmd.request_id, invoice.invoice_id, amount, cmd.currency_code,
                          cmd.reference, now or utcnow())
        payment = dataclasses.replace(payment, journal_entry_id=uow.journal.post(domain.payment_entry(payment, invoice)))
        uow.payments.add(payment)
        uow.invoices.save(invoice)
        uow.emit(aggregate_type="payment", aggregate_id=invoice.order_id, version=invoice.version,
                 payload=ev.PaymentReceived(
                     payment_id=payment.payment_id, invoice_id=invoice.invoice_id, order_id=invoice.order_id,
                     customer_id=invoice.customer_id, amount=to_money(payment.currency_code, amount),
                     amount_due=to_money(invoice.currency_code, invoice.amount_due),
                     paid_in_full=invoice.amount_due == 0))
        uow.commit()
    return payment, invoice


def _repeat(uow, cmd: domain.RecordPayment, amount) -> tuple[Payment, Invoice] | None:
    """The first payment's answer for a repeated request_id; AlreadyExists when the
    request_id was used for a different payment."""
    existing = uow.payments.by_request(cmd.request_id)
    if existing is None:
        return None
    if (existing.invoice_id, existing.amount, existing.currency_code) != (cmd.invoice_id, amount, cmd.currency_code):
        raise AlreadyExists(f"request_id {cmd.request_id} was used for another payment")
    return existing, uow.invoices.get(existing.invoice_id)


# ---------------------------------------------------------------- reads


def _check_id(field: str, value: str, required: bool) -> None:
    v = Violations()
    v.check(bool(value or not required) and len(value) <= domain.MAX_ID, field,
            f"must be {'1' if required else '0'}-{domain.MAX_ID} characters")
    v.raise_if_any()


def get_invoice(uow, invoice_id: str) -> Invoice:
    _check_id("invoice_id", invoice_id, required=True)
    with uow:
        invoice = uow.invoices.get(invoice_id)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    return invoice


@dataclasses.dataclass(frozen=True)
class InvoiceQuery:
    customer_id: str = ""
    order_id: str = ""
    status: InvoiceStatus | None = None


def list_invoices(uow, query: InvoiceQuery, page_size: int, page_token: str,
                  now: dt.datetime | None = None) -> tuple[list[Invoice], str]:
    _check_id("customer_id", query.customer_id, required=False)
    _check_id("order_id", query.order_id, required=False)
    size = paging.page_size(page_size)
    filters = {"customer_id": query.customer_id, "order_id": query.order_id, "status": str(query.status or "")}
    token_key = paging.decode(page_token, filters, (int, int))
    after = tuple(token_key) if token_key is not None else None
    states, overdue = domain.status_filter(query.status) if query.status else (None, None)
    with uow:
        found = uow.invoices.list(customer_id=query.customer_id, order_id=query.order_id, states=states,
                                  overdue=overdue, today=domain.utc_date(now or utcnow()), after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda i: [i.year, i.seq], filters)


def list_journal_entries(uow, reference: str, page_size: int, page_token: str) -> tuple[list[JournalEntry], str]:
    _check_id("reference", reference, required=False)
    size = paging.page_size(page_size)
    filters = {"reference": reference}
    token_key = paging.decode(page_token, filters, (int,))
    after = token_key[0] if token_key is not None else None
    with uow:
        found = uow.journal.list(reference=reference, after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda e: [e.entry_id], filters)


def _currency(currency_code: str, config: FinanceConfig) -> str:
    v = Violations()
    v.check(not currency_code or money.valid_currency(currency_code), "currency_code",
            "must be an ISO 4217 code such as EUR, or empty for the default")
    v.raise_if_any()
    return currency_code or config.currency


def trial_balance(uow, currency_code: str, config: FinanceConfig, period: str = "") -> tuple[str, domain.TrialBalance]:
    """Over every entry, or those posted up to the end of an accounting period ("2026-11")."""
    from services.finance import periods

    currency = _currency(currency_code, config)
    if period:
        v = Violations()
        periods.check_period(v, "period", period)
        v.raise_if_any()
    with uow:
        lines = (uow.journal.trial_balance(currency, periods.period_end(period)) if period
                 else uow.journal.trial_balance(currency))
    return currency, domain.TrialBalance(tuple(lines))


def receivables_aging(uow, currency_code: str, as_of: dt.datetime | None, config: FinanceConfig
                      ) -> tuple[str, list[domain.AgingRow], domain.AgingRow]:
    currency = _currency(currency_code, config)
    moment = as_of or utcnow()
    with uow:
        items = uow.invoices.open_items(currency, moment)
    rows, totals = domain.aging(items, moment)
    return currency, rows, totals


# ---------------------------------------------------------------- payables: purchase orders and receipts
#
# Everything that changes a purchase order's received or billed quantities runs with the
# order's rows locked (get(for_update=True)) and takes that lock before any bill's, so
# concurrent bills, receipts and reviews for one order happen one after the other.


def tolerances(config: FinanceConfig) -> payables.MatchTolerances:
    return payables.MatchTolerances(config.bill_quantity_tolerance, config.bill_price_tolerance)


def _order_for_update(uow, purchase_order_id: str) -> PurchaseOrder:
    return _order(uow, purchase_order_id, for_update=True)


def _order(uow, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder:
    order = uow.purchase_orders.get(purchase_order_id, for_update=for_update)
    if order is None:
        raise payables.UnknownPurchaseOrder(f"finance knows no approved purchase order {purchase_order_id}")
    return order


def on_purchase_order_approved(uow, cmd: payables.ApprovePurchaseOrder, version: int) -> bool:
    """Keeps the approved order (an older approval arriving late is ignored)."""
    return uow.purchase_orders.upsert(payables.approved_order(cmd), version)


def on_goods_received(uow, cmd: payables.ReceiveGoods, config: FinanceConfig,
                      now: dt.datetime | None = None) -> GoodsReceipt | None:
    """Posts a receipt once per receipt_id, then matches the order's held bills again:
    one held because the goods had not arrived posts itself once they have. An order
    finance does not know raises, so the event retries (the approval may be on its way)
    and then dead-letters."""
    payables.validate_receipt(cmd)
    order = _order_for_update(uow, cmd.purchase_order_id)
    if uow.goods_receipts.exists(cmd.receipt_id):  # checked under the order's lock: no twin can slip in
        log.info("goods receipt %s was posted already; nothing to do", cmd.receipt_id)
        return None
    receipt = payables.receive(order, cmd)
    entry = payables.receipt_entry(receipt, order)
    if entry is not None:  # goods received free post nothing
        receipt = dataclasses.replace(receipt, journal_entry_id=uow.journal.post(entry))
    uow.goods_receipts.add(receipt)
    _match_held_bills(uow, order, config, now or utcnow())
    uow.purchase_orders.save_quantities(order)
    return receipt


def _match_held_bills(uow, order: PurchaseOrder, config: FinanceConfig, moment: dt.datetime) -> None:
    """Oldest first, so an earlier bill gets the goods first; each one posted counts
    against the next."""
    for bill in uow.supplier_bills.held_for(order.purchase_order_id):
        reasons = payables.match(bill.lines, order, tolerances(config))
        if not reasons:
            bill.hold([])  # matched now: no reasons left
            _post_bill(uow, bill, order, moment)
        elif reasons != bill.hold_reasons:
            bill.hold(reasons)  # still held, for what is left (the quantities received changed)
        else:
            continue
        uow.supplier_bills.save(bill)


# ---------------------------------------------------------------- payables: supplier bills


def _post_bill(uow, bill: SupplierBill, order: PurchaseOrder, moment: dt.datetime) -> None:
    """Bills the order's quantities, posts the bill's entry and emits SupplierBillPosted;
    the caller writes the bill and the order's quantities."""
    payables.bill_order(order, bill)
    entry = payables.bill_entry(bill, order)
    bill.post(moment, uow.journal.post(entry) if entry is not None else None)
    # Aggregate: the purchase order, versioned by its posted bills, so procurement sees them in order.
    uow.emit(aggregate_type="supplier_bill", aggregate_id=order.purchase_order_id, version=order.bills_posted,
             payload=ev.SupplierBillPosted(
                 bill_id=bill.bill_id, purchase_order_id=order.purchase_order_id, supplier_id=bill.supplier_id,
                 lines=[ev.BilledLine(line_no=x.line_no, quantity=x.quantity) for x in bill.lines],
                 total=to_money(bill.currency_code, bill.total)))


def _bill_repeat(uow, cmd: payables.RecordSupplierBill, parsed) -> SupplierBill | None:
    """The bill a repeated request_id recorded; AlreadyExists when it recorded another bill."""
    existing = uow.supplier_bills.by_request(cmd.request_id)
    if existing is None:
        return None
    if not existing.same_request(cmd, parsed):
        raise AlreadyExists(f"request_id {cmd.request_id} was used for another supplier bill")
    return existing


def record_supplier_bill(uow, cmd: payables.RecordSupplierBill, config: FinanceConfig,
                         now: dt.datetime | None = None) -> SupplierBill:
    """Records a bill and matches it: POSTED when it matches, HELD with the reasons otherwise."""
    parsed = payables.validate_bill_request(cmd)
    with uow:
        repeat = _bill_repeat(uow, cmd, parsed)
        if repeat is not None:
            return repeat
        # A supplier's bill number is taken once across all its orders: bills of two orders
        # with one number serialize on it (before the order's row, the one lock order), so the
        # second is ALREADY_EXISTS rather than a unique-key violation.
        supplier_id = _order(uow, cmd.purchase_order_id).supplier_id  # an order's supplier never changes
        uow.lock("supplier_bill_number", f"{supplier_id}/{cmd.supplier_bill_number}")
        order = _order_for_update(uow, cmd.purchase_order_id)
        repeat = _bill_repeat(uow, cmd, parsed)  # a twin request committed while we waited for the lock
        if repeat is not None:
            return repeat
        if uow.supplier_bills.by_number(order.supplier_id, cmd.supplier_bill_number) is not None:
            raise AlreadyExists(f"supplier {order.supplier_id} already has a bill numbered "
                                f"{cmd.supplier_bill_number}")
        recorded_at = now or utcnow()
        bill = payables.new_bill(str(uuid.uuid4()), cmd, order, payables.bill_lines(cmd, parsed, order), recorded_at)
        bill.hold_reasons = payables.match(bill.lines, order, tolerances(config))
        if not bill.hold_reasons:
            _post_bill(uow, bill, order, recorded_at)
            uow.purchase_orders.save_quantities(order)
        uow.supplier_bills.add(bill)
        uow.commit()
    return bill


def review_supplier_bill(uow, cmd: payables.ReviewSupplierBill, now: dt.datetime | None = None) -> SupplierBill:
    """Release posts a held bill as it is (its hold reasons stay, for the record); reject
    closes it. The same review repeated (a retried call) answers as the first time."""
    payables.validate_review(cmd)
    with uow:
        found = uow.supplier_bills.get(cmd.bill_id)
        if found is None:
            raise NotFound(f"no supplier bill {cmd.bill_id}")
        order = _order_for_update(uow, found.purchase_order_id)  # the order's lock first, then the bill's
        bill = uow.supplier_bills.get(cmd.bill_id, for_update=True)
        if bill.reviewed_as(cmd.decision, cmd.reviewer, cmd.note):
            return bill
        bill.review(cmd.decision, cmd.reviewer, cmd.note)
        if cmd.decision is payables.ReviewDecision.RELEASE:
            _post_bill(uow, bill, order, now or utcnow())
            uow.purchase_orders.save_quantities(order)
        uow.supplier_bills.save(bill)
        uow.commit()
    return bill


def _bill_payment_repeat(uow, cmd: payables.PaySupplierBill, amount: Decimal
                         ) -> tuple[payables.BillPayment, SupplierBill] | None:
    existing = uow.bill_payments.by_request(cmd.request_id)
    if existing is None:
        return None
    if (existing.bill_id, existing.amount, existing.currency_code) != (cmd.bill_id, amount, cmd.currency_code):
        raise AlreadyExists(f"request_id {cmd.request_id} was used for another bill payment")
    return existing, uow.supplier_bills.get(existing.bill_id)


def pay_supplier_bill(uow, cmd: payables.PaySupplierBill, now: dt.datetime | None = None
                      ) -> tuple[payables.BillPayment, SupplierBill]:
    """Pays a posted bill in part or in full: Dr payables / Cr cash."""
    amount = payables.validate_bill_payment(cmd)
    with uow:
        repeat = _bill_payment_repeat(uow, cmd, amount)
        if repeat is not None:
            return repeat
        bill = uow.supplier_bills.get(cmd.bill_id, for_update=True)
        if bill is None:
            raise NotFound(f"no supplier bill {cmd.bill_id}")
        repeat = _bill_payment_repeat(uow, cmd, amount)  # a twin committed while we waited for the lock
        if repeat is not None:
            return repeat
        bill.pay(amount, cmd.currency_code)
        payment = payables.BillPayment(str(uuid.uuid4()), cmd.request_id, bill.bill_id, amount, cmd.currency_code,
                                       cmd.reference, now or utcnow())
        payment = dataclasses.replace(payment, journal_entry_id=uow.journal.post(
            payables.bill_payment_entry(payment, bill)))
        uow.bill_payments.add(payment)
        uow.supplier_bills.save(bill)
        uow.commit()
    return payment, bill


def get_supplier_bill(uow, bill_id: str) -> SupplierBill:
    _check_id("bill_id", bill_id, required=True)
    with uow:
        bill = uow.supplier_bills.get(bill_id)
    if bill is None:
        raise NotFound(f"no supplier bill {bill_id}")
    return bill


@dataclasses.dataclass(frozen=True)
class SupplierBillQuery:
    supplier_id: str = ""
    purchase_order_id: str = ""
    status: payables.BillStatus | None = None


def list_supplier_bills(uow, query: SupplierBillQuery, page_size: int, page_token: str
                        ) -> tuple[list[SupplierBill], str]:
    """Oldest first (in the order they were recorded)."""
    _check_id("supplier_id", query.supplier_id, required=False)
    _check_id("purchase_order_id", query.purchase_order_id, required=False)
    size = paging.page_size(page_size)
    filters = {"supplier_id": query.supplier_id, "purchase_order_id": query.purchase_order_id,
               "status": str(query.status or "")}
    token_key = paging.decode(page_token, filters, (int,))
    after = token_key[0] if token_key is not None else None
    with uow:
        found = uow.supplier_bills.list(supplier_id=query.supplier_id, purchase_order_id=query.purchase_order_id,
                                        status=query.status, after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda b: [b.seq], filters)
