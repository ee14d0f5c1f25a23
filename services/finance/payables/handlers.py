"""The purchase side's use cases. The supplier-bill requests and the reads own their
transaction; the reactions to events (on_purchase_order_approved, on_goods_received) run
inside the event consumer's transaction, with its inbox row, and do not commit.

Everything that changes a purchase order's received or billed quantities runs with the
order's rows locked (get(for_update=True)) and takes that lock before any bill's, so
concurrent bills, receipts and reviews for one order happen one after the other."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from decimal import Decimal

from erp.events.v1 import finance_events_pb2 as ev
from mesh import paging
from mesh.errors import AlreadyExists, NotFound
from mesh.protoconv import money
from services.finance.adapters import FinanceUnitOfWork
from services.finance.ledger.domain import FinanceConfig
from services.finance.ledger.handlers import once_per_request, read_one, recorded_for, utcnow, validate_id
from services.finance.payables import domain
from services.finance.payables.domain import BillPayment, GoodsReceipt, PurchaseOrder, SupplierBill

log = logging.getLogger("services.finance")


def tolerances(config: FinanceConfig) -> domain.MatchTolerances:
    return domain.MatchTolerances(config.bill_quantity_tolerance, config.bill_price_tolerance)


def _order_for_update(uow: FinanceUnitOfWork, purchase_order_id: str) -> PurchaseOrder:
    return _order(uow, purchase_order_id, for_update=True)


def _order(uow: FinanceUnitOfWork, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder:
    order = uow.purchase_orders.get(purchase_order_id, for_update=for_update)
    if order is None:
        raise domain.UnknownPurchaseOrder(f"finance knows no approved purchase order {purchase_order_id}")
    return order


# ---------------------------------------------------------------- reactions to events


def on_purchase_order_approved(uow: FinanceUnitOfWork, cmd: domain.ApprovePurchaseOrder, version: int) -> bool:
    """Keeps the approved order (an older approval arriving late is ignored)."""
    return uow.purchase_orders.upsert(domain.approved_order(cmd), version)


def on_goods_received(uow: FinanceUnitOfWork, cmd: domain.ReceiveGoods, config: FinanceConfig,
                      now: dt.datetime | None = None) -> GoodsReceipt | None:
    """Posts a receipt once per receipt_id, then matches the order's held bills again:
    one held because the goods had not arrived posts itself once they have. An order
    finance does not know raises, so the event retries (the approval may be on its way)
    and then dead-letters."""
    domain.validate_receipt(cmd)
    order = _order_for_update(uow, cmd.purchase_order_id)
    if uow.goods_receipts.exists(cmd.receipt_id):  # checked under the order's lock: no twin can slip in
        log.info("goods receipt %s was posted already; nothing to do", cmd.receipt_id)
        return None
    receipt = domain.receive(order, cmd)
    entry = domain.receipt_entry(receipt, order)
    if entry is not None:  # goods received free post nothing
        receipt = dataclasses.replace(receipt, journal_entry_id=uow.journal.post(entry))
    uow.goods_receipts.add(receipt)
    _match_held_bills(uow, order, config, now or utcnow())
    uow.purchase_orders.save_quantities(order)
    return receipt


def _match_held_bills(uow: FinanceUnitOfWork, order: PurchaseOrder, config: FinanceConfig, moment: dt.datetime
                      ) -> None:
    """Oldest first, so an earlier bill gets the goods first; each one posted counts
    against the next."""
    for bill in uow.supplier_bills.held_for(order.purchase_order_id):
        reasons = domain.match(bill.lines, order, tolerances(config))
        if not reasons:
            bill.hold([])  # matched now: no reasons left
            _post_bill(uow, bill, order, moment)
        elif reasons != bill.hold_reasons:
            bill.hold(reasons)  # still held, for what is left (the quantities received changed)
        else:
            continue
        uow.supplier_bills.save(bill)


# ---------------------------------------------------------------- supplier bills


def _post_bill(uow: FinanceUnitOfWork, bill: SupplierBill, order: PurchaseOrder, moment: dt.datetime) -> None:
    """Bills the order's quantities, posts the bill's entry and emits SupplierBillPosted;
    the caller writes the bill and the order's quantities."""
    domain.bill_order(order, bill)
    entry = domain.bill_entry(bill, order)
    bill.post(moment, uow.journal.post(entry) if entry is not None else None)
    # Aggregate: the purchase order, versioned by its posted bills, so procurement sees them in order.
    uow.emit(aggregate_type="supplier_bill", aggregate_id=order.purchase_order_id, version=order.bills_posted,
             payload=ev.SupplierBillPosted(
                 bill_id=bill.bill_id, purchase_order_id=order.purchase_order_id, supplier_id=bill.supplier_id,
                 lines=[ev.BilledLine(line_no=x.line_no, quantity=x.quantity) for x in bill.lines],
                 total=money(bill.currency_code, bill.total)))


def _bill_repeat(uow: FinanceUnitOfWork, cmd: domain.RecordSupplierBill, parsed: list[tuple[int, int, Decimal]]
                 ) -> SupplierBill | None:
    """The bill a repeated request_id recorded; AlreadyExists when it recorded another bill."""
    return recorded_for(cmd.request_id, uow.supplier_bills.by_request(cmd.request_id),
                        lambda bill: bill.same_request(cmd, parsed), "supplier bill")


def record_supplier_bill(uow: FinanceUnitOfWork, cmd: domain.RecordSupplierBill, config: FinanceConfig,
                         now: dt.datetime | None = None) -> SupplierBill:
    """Records a bill and matches it: POSTED when it matches, HELD with the reasons otherwise."""
    parsed = domain.validate_bill_request(cmd)

    def lock() -> PurchaseOrder:
        # A supplier's bill number is taken once across all its orders: bills of two orders
        # with one number serialize on it (before the order's row, the one lock order), so the
        # second is ALREADY_EXISTS rather than a unique-key violation.
        supplier_id = _order(uow, cmd.purchase_order_id).supplier_id  # an order's supplier never changes
        uow.lock("supplier_bill_number", f"{supplier_id}/{cmd.supplier_bill_number}")
        return _order_for_update(uow, cmd.purchase_order_id)

    def record(order: PurchaseOrder) -> SupplierBill:
        if uow.supplier_bills.by_number(order.supplier_id, cmd.supplier_bill_number) is not None:
            raise AlreadyExists(f"supplier {order.supplier_id} already has a bill numbered "
                                f"{cmd.supplier_bill_number}")
        recorded_at = now or utcnow()
        bill = domain.new_bill(str(uuid.uuid4()), cmd, order, domain.bill_lines(cmd, parsed, order), recorded_at)
        bill.hold_reasons = domain.match(bill.lines, order, tolerances(config))
        if not bill.hold_reasons:
            _post_bill(uow, bill, order, recorded_at)
            uow.purchase_orders.save_quantities(order)
        uow.supplier_bills.add(bill)
        uow.commit()
        return bill

    with uow:
        return once_per_request(lambda: _bill_repeat(uow, cmd, parsed), lock, record)


def review_supplier_bill(uow: FinanceUnitOfWork, cmd: domain.ReviewSupplierBill, now: dt.datetime | None = None
                         ) -> SupplierBill:
    """Release posts a held bill as it is (its hold reasons stay, for the record); reject
    closes it. The same review repeated (a retried call) answers as the first time."""
    domain.validate_review(cmd)
    assert cmd.decision is not None, "validate_review refuses a review without a decision"
    with uow:
        found = uow.supplier_bills.get(cmd.bill_id)
        if found is None:
            raise NotFound(f"no supplier bill {cmd.bill_id}")
        order = _order_for_update(uow, found.purchase_order_id)  # the order's lock first, then the bill's
        bill = uow.supplier_bills.get(cmd.bill_id, for_update=True)
        assert bill is not None, "a supplier bill is never deleted"
        if bill.reviewed_as(cmd.decision, cmd.reviewer, cmd.note):
            return bill
        bill.review(cmd.decision, cmd.reviewer, cmd.note)
        if cmd.decision is domain.ReviewDecision.RELEASE:
            _post_bill(uow, bill, order, now or utcnow())
            uow.purchase_orders.save_quantities(order)
        uow.supplier_bills.save(bill)
        uow.commit()
    return bill


def _bill_payment_repeat(uow: FinanceUnitOfWork, cmd: domain.PaySupplierBill, amount: Decimal
                         ) -> tuple[BillPayment, SupplierBill] | None:
    """The first payment's answer for a repeated request_id; AlreadyExists when the
    request_id was used for a different payment."""
    existing = recorded_for(cmd.request_id, uow.bill_payments.by_request(cmd.request_id),
                            lambda p: (p.bill_id, p.amount, p.currency_code) == (cmd.bill_id, amount, cmd.currency_code),
                            "bill payment")
    if existing is None:
        return None
    bill = uow.supplier_bills.get(existing.bill_id)
    assert bill is not None, "a paid supplier bill is never deleted"
    return existing, bill


def _bill_for_update(uow: FinanceUnitOfWork, bill_id: str) -> SupplierBill:
    bill = uow.supplier_bills.get(bill_id, for_update=True)
    if bill is None:
        raise NotFound(f"no supplier bill {bill_id}")
    return bill


def pay_supplier_bill(uow: FinanceUnitOfWork, cmd: domain.PaySupplierBill, now: dt.datetime | None = None
                      ) -> tuple[BillPayment, SupplierBill]:
    """Pays a posted bill in part or in full: Dr payables / Cr cash."""
    amount = domain.validate_bill_payment(cmd)

    def pay(bill: SupplierBill) -> tuple[BillPayment, SupplierBill]:
        bill.pay(amount, cmd.currency_code)
        payment = BillPayment(str(uuid.uuid4()), cmd.request_id, bill.bill_id, amount, cmd.currency_code,
                              cmd.reference, now or utcnow())
        payment = dataclasses.replace(payment, journal_entry_id=uow.journal.post(
            domain.bill_payment_entry(payment, bill)))
        uow.bill_payments.add(payment)
        uow.supplier_bills.save(bill)
        uow.commit()
        return payment, bill

    with uow:
        return once_per_request(lambda: _bill_payment_repeat(uow, cmd, amount),
                                lambda: _bill_for_update(uow, cmd.bill_id), pay)


# ---------------------------------------------------------------- reads


def get_supplier_bill(uow: FinanceUnitOfWork, bill_id: str) -> SupplierBill:
    return read_one(uow, "bill_id", bill_id, lambda key: uow.supplier_bills.get(key), "supplier bill")


@dataclasses.dataclass(frozen=True)
class SupplierBillQuery:
    supplier_id: str = ""
    purchase_order_id: str = ""
    status: domain.BillStatus | None = None


def list_supplier_bills(uow: FinanceUnitOfWork, query: SupplierBillQuery, page_size: int, page_token: str
                        ) -> tuple[list[SupplierBill], str]:
    """Oldest first (in the order they were recorded)."""
    validate_id("supplier_id", query.supplier_id, required=False)
    validate_id("purchase_order_id", query.purchase_order_id, required=False)
    size = paging.page_size(page_size)
    filters = {"supplier_id": query.supplier_id, "purchase_order_id": query.purchase_order_id,
               "status": str(query.status or "")}
    token_key = paging.decode(page_token, filters, (int,))
    after = int(token_key[0]) if token_key is not None else None
    with uow:
        found = uow.supplier_bills.list(supplier_id=query.supplier_id, purchase_order_id=query.purchase_order_id,
                                        status=query.status, after=after, limit=size + 1)
    return found[:size], paging.next_token(found, size, lambda b: [b.seq], filters)
