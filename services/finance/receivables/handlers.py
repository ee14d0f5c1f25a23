"""The sales side's use cases. record_payment and the reads own their transaction; the
reactions to events (issue_invoice, on_order_cancelled, on_customer_updated) run inside the
event consumer's transaction, with its inbox row, and do not commit.

Every finance event about an order uses the order id as aggregate id and the invoice's
version (1 when issued, +1 per payment or credit note), so they arrive in order."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from decimal import Decimal

from erp.events.v1 import finance_events_pb2 as ev
from mesh import paging
from mesh.errors import NotFound
from mesh.protoconv import money
from services.finance.adapters import FinanceUnitOfWork
from services.finance.ledger import domain as ledger
from services.finance.ledger.domain import AgingRow, FinanceConfig
from services.finance.ledger.handlers import (
    once_per_request,
    read_one,
    recorded_for,
    report_currency,
    utcnow,
    validate_id,
)
from services.finance.receivables import domain
from services.finance.receivables.domain import CreditNote, CustomerTerms, Invoice, InvoiceStatus, Payment

log = logging.getLogger("services.finance")


# ---------------------------------------------------------------- reactions to events


def issue_invoice(uow: FinanceUnitOfWork, cmd: domain.IssueInvoice, config: FinanceConfig,
                  now: dt.datetime | None = None) -> Invoice | None:
    """One invoice per order, ever: a repeat, or an order cancelled first, changes nothing."""
    before = uow.invoices.before_issuing(cmd.order_id, cmd.customer_id)
    if before.cancelled:
        log.info("order %s was cancelled before it was invoiced; no invoice", cmd.order_id)
        return None
    if before.invoiced:
        return uow.invoices.by_order(cmd.order_id)
    priced = domain.price_order(cmd, config.tax_rate)  # an invalid event retries, then dead-letters
    issued_at = now or utcnow()
    terms = before.payment_terms
    year = issued_at.astimezone(dt.UTC).year
    seq = uow.numbers.next(domain.INVOICE_PREFIX, year)
    invoice = domain.new_invoice(str(uuid.uuid4()), year, seq, cmd, priced, config.tax_rate, issued_at,
                                 config.default_payment_terms_days if terms is None else terms)
    # Posted with the invoice (a free order posts nothing), both written at the commit: two
    # deliveries of one order racing both get here; the UNIQUE order_id makes the second fail
    # and roll back (its number too), and its retry finds the invoice.
    uow.invoices.add(invoice, domain.invoice_entry(invoice))
    uow.emit(aggregate_type="invoice", aggregate_id=invoice.order_id, version=invoice.version,
             payload=ev.InvoiceIssued(
                 invoice_id=invoice.invoice_id, number=invoice.number, order_id=invoice.order_id,
                 customer_id=invoice.customer_id, total=money(invoice.currency_code, invoice.total),
                 due_date=invoice.due_date.isoformat(),
                 order_amount=money(invoice.currency_code, invoice.order_amount)))
    return invoice


def on_order_cancelled(uow: FinanceUnitOfWork, cmd: domain.CancelOrder, now: dt.datetime | None = None
                       ) -> CreditNote | None:
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
        reversal = ledger.reversal(original, f"credit note {note.number} reverses invoice {invoice.number}",
                                   note.credit_note_id)
        note = dataclasses.replace(note, journal_entry_id=uow.journal.post(reversal))
    uow.credit_notes.add(note)
    uow.invoices.save(invoice)
    uow.emit(aggregate_type="credit_note", aggregate_id=invoice.order_id, version=invoice.version,
             payload=ev.CreditNoteIssued(
                 credit_note_id=note.credit_note_id, number=note.number, invoice_id=invoice.invoice_id,
                 order_id=invoice.order_id, customer_id=invoice.customer_id,
                 amount=money(note.currency_code, amount), unpaid_amount=money(note.currency_code, unpaid)))
    return note


def on_customer_updated(uow: FinanceUnitOfWork, terms: CustomerTerms) -> bool:
    """Keeps the customer's payment terms; an older version arriving late is ignored."""
    domain.validate_terms(terms)
    return uow.customers.upsert(terms)


# ---------------------------------------------------------------- payments


def record_payment(uow: FinanceUnitOfWork, cmd: domain.RecordPayment, now: dt.datetime | None = None
                   ) -> tuple[Payment, Invoice]:
    amount = domain.validate_payment(cmd)

    def pay(invoice: Invoice) -> tuple[Payment, Invoice]:
        invoice.pay(amount, cmd.currency_code)
        payment = Payment(str(uuid.uuid4()), cmd.request_id, invoice.invoice_id, amount, cmd.currency_code,
                          cmd.reference, now or utcnow())
        payment = dataclasses.replace(payment,
                                      journal_entry_id=uow.journal.post(domain.payment_entry(payment, invoice)))
        uow.payments.add(payment)
        uow.invoices.save(invoice)
        uow.emit(aggregate_type="payment", aggregate_id=invoice.order_id, version=invoice.version,
                 payload=ev.PaymentReceived(
                     payment_id=payment.payment_id, invoice_id=invoice.invoice_id, order_id=invoice.order_id,
                     customer_id=invoice.customer_id, amount=money(payment.currency_code, amount),
                     amount_due=money(invoice.currency_code, invoice.amount_due),
                     paid_in_full=invoice.amount_due == 0))
        uow.commit()
        return payment, invoice

    with uow:
        return once_per_request(lambda: _repeat(uow, cmd, amount), lambda: _invoice_for_update(uow, cmd.invoice_id),
                                pay)


def _invoice_for_update(uow: FinanceUnitOfWork, invoice_id: str) -> Invoice:
    invoice = uow.invoices.get(invoice_id, for_update=True)
    if invoice is None:
        raise NotFound(f"no invoice {invoice_id}")
    return invoice


def _repeat(uow: FinanceUnitOfWork, cmd: domain.RecordPayment, amount: Decimal) -> tuple[Payment, Invoice] | None:
    """The first payment's answer for a repeated request_id; AlreadyExists when the
    request_id was used for a different payment."""
    existing = recorded_for(
        cmd.request_id, uow.payments.by_request(cmd.request_id),
        lambda p: (p.invoice_id, p.amount, p.currency_code) == (cmd.invoice_id, amount, cmd.currency_code), "payment")
    if existing is None:
        return None
    invoice = uow.invoices.get(existing.invoice_id)
    assert invoice is not None, "a payment's invoice is never deleted"
    return existing, invoice


# ---------------------------------------------------------------- reads


def get_invoice(uow: FinanceUnitOfWork, invoice_id: str) -> Invoice:
    return read_one(uow, "invoice_id", invoice_id, lambda key: uow.invoices.get(key), "invoice")


@dataclasses.dataclass(frozen=True)
class InvoiceQuery:
    customer_id: str = ""
    order_id: str = ""
    status: InvoiceStatus | None = None


def list_invoices(uow: FinanceUnitOfWork, query: InvoiceQuery, page_size: int, page_token: str,
                  now: dt.datetime | None = None) -> tuple[list[Invoice], str]:
    validate_id("customer_id", query.customer_id, required=False)
    validate_id("order_id", query.order_id, required=False)
    size = paging.page_size(page_size)
    filters = {"customer_id": query.customer_id, "order_id": query.order_id, "status": str(query.status or "")}
    token_key = paging.decode(page_token, filters, (int, int))
    after = (int(token_key[0]), int(token_key[1])) if token_key is not None else None
    states, overdue = domain.status_filter(query.status) if query.status else (None, None)
    with uow:
        found = uow.invoices.list(customer_id=query.customer_id, order_id=query.order_id, states=states,
                                  overdue=overdue, today=ledger.utc_date(now or utcnow()), after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda i: [i.year, i.seq], filters)


def receivables_aging(uow: FinanceUnitOfWork, currency_code: str, as_of: dt.datetime | None, config: FinanceConfig
                      ) -> tuple[str, list[AgingRow], AgingRow]:
    currency = report_currency(currency_code, config)
    moment = as_of or utcnow()
    with uow:
        items = uow.invoices.open_items(currency, moment)
    rows, totals = ledger.aging(items, moment)
    return currency, rows, totals
