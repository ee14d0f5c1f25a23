"""Procurement's use cases. Command handlers own their transaction; the on_* reactions
run inside the event consumer's transaction and do not commit. Approval and every
goods receipt become one event each, written to the outbox in the same transaction."""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from typing import Protocol

from erp.common.v1 import money_pb2
from erp.events.v1 import procurement_events_pb2 as ev
from mesh import paging, protoconv
from mesh.errors import Aborted, AlreadyExists, FailedPrecondition, NotFound, Violations
from mesh.identifiers import check_request_id, check_sku, check_warehouse
from services.procurement import domain
from services.procurement.adapters import ProcurementUnitOfWork
from services.procurement.domain import (
    GoodsReceipt,
    Origin,
    POStatus,
    ProcurementConfig,
    PurchaseOrder,
    ReceiptLine,
    Supplier,
    SupplierPrice,
    SupplierStatus,
)

log = logging.getLogger("services.procurement")


class Catalog(Protocol):
    """What procurement asks inventory (synchronously, at edit time)."""

    def unknown_skus(self, skus: list[str]) -> list[str]: ...

    def unknown_stock_keys(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]: ...


@dataclasses.dataclass(frozen=True)
class Deps:
    config: ProcurementConfig
    catalog: Catalog
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)


# ---------------------------------------------------------------- suppliers


def create_supplier(uow: ProcurementUnitOfWork, supplier: Supplier) -> Supplier:
    """A repeat of the create that made a supplier is answered with it (whatever changed
    since); any other create of a taken id is a conflict."""
    supplier = domain.new_supplier(supplier)
    with uow:
        if not uow.suppliers.add(supplier):
            existing = uow.suppliers.get(supplier.supplier_id)
            if existing is None:  # not seen: ON CONFLICT waits for the other create's commit
                raise Aborted(f"supplier {supplier.supplier_id} was being created by another request; retry")
            if domain.same_create(existing, supplier):
                return existing
            raise AlreadyExists(f"supplier {supplier.supplier_id} exists with other data")
        uow.commit()
    return supplier


def _check_id(field: str, value: str) -> None:
    v = Violations()
    domain.check_id(v, field, value)
    v.raise_if_any()


def _supplier(uow: ProcurementUnitOfWork, supplier_id: str, for_update: bool = False) -> Supplier:
    supplier = uow.suppliers.get(supplier_id, for_update=for_update)
    if supplier is None:
        raise NotFound(f"no supplier {supplier_id}")
    return supplier


def get_supplier(uow: ProcurementUnitOfWork, supplier_id: str) -> Supplier:
    _check_id("supplier_id", supplier_id)
    with uow:
        return _supplier(uow, supplier_id)


def list_suppliers(uow: ProcurementUnitOfWork, status: SupplierStatus | None, page_size: int,
                   page_token: str) -> tuple[list[Supplier], str]:
    size = paging.page_size(page_size)
    filters = {"status": str(status or "")}
    after: str | None = None
    match paging.decode(page_token, filters, (str,)):
        case [str(supplier_id)]:
            after = supplier_id
    with uow:
        found = uow.suppliers.page(status, after, size + 1)
    return found[:size], paging.next_token(found, size, lambda s: [s.supplier_id], filters)


def update_supplier_status(uow: ProcurementUnitOfWork, supplier_id: str, status: SupplierStatus | None) -> Supplier:
    v = Violations()
    domain.check_id(v, "supplier_id", supplier_id)
    v.check(status is not None, "status", "must be ACTIVE, INACTIVE or BLOCKED")
    v.raise_if_any()
    assert status is not None  # refused above
    with uow:
        supplier = _supplier(uow, supplier_id, for_update=True)
        if supplier.status is not status:
            supplier = dataclasses.replace(supplier, status=status, version=supplier.version + 1)
            uow.suppliers.set_status(supplier)
            uow.commit()
    return supplier


def set_supplier_price(uow: ProcurementUnitOfWork, deps: Deps, price: SupplierPrice, amount: str,
                       currency: str) -> SupplierPrice:
    _check_id("price.supplier_id", price.supplier_id)
    with uow:
        supplier = _supplier(uow, price.supplier_id)
    price = domain.validate_price(price, amount, currency, supplier.currency_code)
    if deps.catalog.unknown_skus([price.sku]):
        raise NotFound(f"inventory has no product with SKU {price.sku}")
    with uow:
        # One preferred supplier per SKU: clearing the others and setting this one must not
        # interleave with another supplier doing the same, or both end up preferred.
        uow.lock("sku_prices", price.sku)
        uow.suppliers.put_price(price)
        uow.commit()
    return price


def list_supplier_prices(uow: ProcurementUnitOfWork, supplier_id: str, sku: str) -> list[SupplierPrice]:
    v = Violations()
    v.check(bool(supplier_id or sku), "supplier_id", "give supplier_id, sku or both")
    if supplier_id:
        domain.check_id(v, "supplier_id", supplier_id)
    if sku:
        check_sku(v, "sku", sku)
    v.raise_if_any()
    with uow:
        return uow.suppliers.prices(supplier_id=supplier_id, sku=sku)


# ---------------------------------------------------------------- drafts


@dataclasses.dataclass(frozen=True)
class DraftInput:
    warehouse_code: str
    lines: tuple[domain.LineInput, ...]
    note: str


def _draft_lines(uow: ProcurementUnitOfWork, deps: Deps, supplier: Supplier, draft: DraftInput,
                 v: Violations) -> tuple[str, list]:
    """The warehouse and validated lines of a draft; raises with every problem at once."""
    warehouse = draft.warehouse_code or deps.config.default_warehouse
    check_warehouse(v, "warehouse_code", warehouse)
    domain.check_text(v, "note", draft.note, domain.MAX_NOTE)
    prices = {p.sku: p for p in uow.suppliers.prices(supplier_id=supplier.supplier_id)}
    lines = domain.validate_lines(v, draft.lines, supplier.currency_code, prices, deps.config)
    v.raise_if_any()
    # An empty draft's warehouse is checked with its first line (inventory answers per SKU and warehouse).
    unknown = deps.catalog.unknown_stock_keys([(line.sku, warehouse) for line in lines]) if lines else []
    if unknown:
        raise NotFound("inventory knows no " + ", ".join(f"SKU {sku} or warehouse {code}" for sku, code in unknown))
    return warehouse, lines


def create_purchase_order(uow: ProcurementUnitOfWork, deps: Deps, request_id: str, supplier_id: str,
                          draft: DraftInput) -> PurchaseOrder:
    v = Violations()
    check_request_id(v, "request_id", request_id)
    domain.check_id(v, "supplier_id", supplier_id)
    v.raise_if_any()
    with uow:
        existing = uow.orders.by_request(request_id)
        if existing is not None:  # a repeat: the first call's order, nothing new
            if existing.supplier_id != supplier_id:
                raise AlreadyExists(f"request_id {request_id} was used for an order to another supplier")
            return existing
        supplier = _supplier(uow, supplier_id)
        warehouse, lines = _draft_lines(uow, deps, supplier, draft, Violations())
        order = _new_order(uow, deps, request_id, supplier, warehouse, lines, draft.note.strip(), Origin.MANUAL)
        uow.commit()
    return order


def _new_order(uow: ProcurementUnitOfWork, deps: Deps, request_id: str, supplier: Supplier, warehouse: str, lines: list,
               note: str, origin: Origin) -> PurchaseOrder:
    now = deps.now()
    order = PurchaseOrder(
        purchase_order_id=str(uuid.uuid4()), request_id=request_id,
        number=domain.document_number(now.year, uow.orders.next_number()), supplier_id=supplier.supplier_id,
        currency_code=supplier.currency_code, warehouse_code=warehouse, lines=lines, status=POStatus.DRAFT,
        origin=origin, created_at=now, updated_at=now, note=note,
        approvals_required=deps.config.approvals_required(sum((x.amount for x in lines), domain.ZERO)))
    uow.orders.add(order)
    return order


def update_purchase_order(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, expected_version: int,
                          draft: DraftInput) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    with uow:
        order = _locked(uow, purchase_order_id)
        supplier = _supplier(uow, order.supplier_id)
        warehouse, lines = _draft_lines(uow, deps, supplier, dataclasses.replace(
            draft, warehouse_code=draft.warehouse_code or order.warehouse_code), Violations())
        order.replace(expected_version, warehouse, lines, draft.note.strip(), deps.now())
        order.approvals_required = deps.config.approvals_required(order.total)
        uow.orders.save(order)
        uow.commit()
    return order


def _check_order_id(purchase_order_id: str) -> None:
    v = Violations()
    v.check(0 < len(purchase_order_id) <= 64, "purchase_order_id", "must be 1-64 characters")
    v.raise_if_any()


def _locked(uow: ProcurementUnitOfWork, purchase_order_id: str) -> PurchaseOrder:
    order = uow.orders.get(purchase_order_id, for_update=True)
    if order is None:
        raise NotFound(f"no purchase order {purchase_order_id}")
    return order


def _person(v: Violations, field: str, name: str) -> str:
    return domain.check_text(v, field, name, domain.MAX_PERSON, required=True)


# ---------------------------------------------------------------- the approval flow


def submit(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, submitted_by: str) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    v = Violations()
    by = _person(v, "submitted_by", submitted_by)
    v.raise_if_any()
    with uow:
        order = _locked(uow, purchase_order_id)
        supplier = _supplier(uow, order.supplier_id)
        if order.status is POStatus.DRAFT and supplier.status is not SupplierStatus.ACTIVE:
            raise FailedPrecondition(f"supplier {supplier.supplier_id} is {supplier.status}; orders to it cannot be "
                                     "submitted")
        if order.submit(by, deps.config.approvals_required(order.total), deps.now()):
            uow.orders.save(order)
            uow.commit()
    return order


def approve(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, approver: str,
            comment: str) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    v = Violations()
    approver = _person(v, "approver", approver)
    comment = domain.check_text(v, "comment", comment, domain.MAX_REASON)
    v.raise_if_any()
    with uow:
        order = _locked(uow, purchase_order_id)
        if order.status is POStatus.APPROVED and approver in order.approvers():
            return order  # a repeat of the approval that completed it
        order.approve(approver, comment, deps.now(), deps.config.segregate_duties)
        uow.orders.save(order)
        if order.status is POStatus.APPROVED:
            uow.emit(aggregate_type="purchase_order", aggregate_id=order.purchase_order_id, version=order.version,
                     payload=_approved_event(order, _supplier(uow, order.supplier_id), approver))
        uow.commit()
    return order


def reject(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, approver: str, reason: str) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    v = Violations()
    approver = _person(v, "approver", approver)
    reason = domain.check_text(v, "reason", reason, domain.MAX_REASON, required=True)
    v.raise_if_any()
    with uow:
        order = _locked(uow, purchase_order_id)
        before = order.version
        order.reject(approver, reason, deps.now())
        if order.version != before:
            uow.orders.save(order)
            uow.commit()
    return order


def cancel(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, reason: str) -> PurchaseOrder:
    return _end(uow, deps, purchase_order_id, reason, PurchaseOrder.cancel)


def close(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, reason: str) -> PurchaseOrder:
    return _end(uow, deps, purchase_order_id, reason, PurchaseOrder.close)


def _end(uow: ProcurementUnitOfWork, deps: Deps, purchase_order_id: str, reason: str, how) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    v = Violations()
    reason = domain.check_text(v, "reason", reason, domain.MAX_REASON, required=True)
    v.raise_if_any()
    with uow:
        order = _locked(uow, purchase_order_id)
        if how(order, reason, deps.now()):
            uow.orders.save(order)
            uow.commit()
    return order


def get_purchase_order(uow: ProcurementUnitOfWork, purchase_order_id: str) -> PurchaseOrder:
    _check_order_id(purchase_order_id)
    with uow:
        order = uow.orders.get(purchase_order_id)
    if order is None:
        raise NotFound(f"no purchase order {purchase_order_id}")
    return order


def list_purchase_orders(uow: ProcurementUnitOfWork, *, supplier_id: str, status: POStatus | None,
                         created_after: dt.datetime | None,
                         created_before: dt.datetime | None, page_size: int,
                         page_token: str) -> tuple[list[PurchaseOrder], str]:
    v = Violations()
    if supplier_id:
        domain.check_id(v, "supplier_id", supplier_id)
    v.raise_if_any()

    def fetch(after: tuple[str, str] | None, limit: int) -> list[PurchaseOrder]:
        with uow:
            return uow.orders.page(supplier_id=supplier_id, status=status, created_after=created_after,
                                   created_before=created_before, after=after, limit=limit)

    return paging.by_creation(page_size, page_token, {"supplier": supplier_id, "status": str(status or "")},
                              (created_after, created_before), fetch, lambda o: (o.created_at, o.purchase_order_id))


# ---------------------------------------------------------------- goods receipts


@dataclasses.dataclass(frozen=True)
class ReceiveGoods:
    request_id: str
    purchase_order_id: str
    lines: tuple[tuple[int, int], ...]  # (line_no, quantity)
    received_by: str
    reference: str


def receive_goods(uow: ProcurementUnitOfWork, deps: Deps, cmd: ReceiveGoods) -> tuple[GoodsReceipt, PurchaseOrder]:
    """One receipt, all lines or none. The order's row lock serialises concurrent
    receipts, so two of them can never both take the last receivable units."""
    v = Violations()
    check_request_id(v, "request_id", cmd.request_id)
    v.check(0 < len(cmd.purchase_order_id) <= 64, "purchase_order_id", "must be 1-64 characters")
    received_by = _person(v, "received_by", cmd.received_by)
    reference = domain.check_text(v, "reference", cmd.reference, domain.MAX_PERSON)
    v.raise_if_any()
    with uow:
        order = _locked(uow, cmd.purchase_order_id)
        repeat = uow.orders.receipt_by_request(cmd.request_id)
        if repeat is not None:
            if repeat.purchase_order_id != order.purchase_order_id:
                raise AlreadyExists(f"request_id {cmd.request_id} was used for a receipt on another order")
            return repeat, order
        quantities = domain.validate_receipt(v, order, list(cmd.lines))
        v.raise_if_any()
        now = deps.now()
        order.receive(quantities, now)
        receipt = GoodsReceipt(str(uuid.uuid4()), cmd.request_id, order.purchase_order_id, order.warehouse_code,
                               tuple(ReceiptLine(n, order.known_line(n).sku, q) for n, q in sorted(quantities.items())),
                               received_by, reference, now)
        uow.orders.save(order)
        uow.orders.add_receipt(receipt)
        uow.emit(aggregate_type="purchase_order", aggregate_id=order.purchase_order_id, version=order.version,
                 payload=_received_event(order, receipt))
        uow.commit()
    return receipt, order


def list_receipts(uow: ProcurementUnitOfWork, purchase_order_id: str) -> list[GoodsReceipt]:
    _check_order_id(purchase_order_id)
    with uow:
        if uow.orders.get(purchase_order_id) is None:
            raise NotFound(f"no purchase order {purchase_order_id}")
        return uow.orders.receipts(purchase_order_id)


# ---------------------------------------------------------------- reactions to events


def on_stock_below_reorder_point(uow: ProcurementUnitOfWork, deps: Deps, sku: str, warehouse_code: str,
                                 reorder_quantity: int,
                                 stock_version: int) -> PurchaseOrder | None:
    """Raises a draft for the SKU's preferred supplier, or adds the line to the draft
    replenishment already opened for that supplier and warehouse. Once per shortage: the
    stock version that raised it names it, whatever event id it arrives under."""
    key = f"{warehouse_code}/{sku}@{stock_version}"
    if not uow.orders.claim_shortage(key, sku, warehouse_code):
        return None
    price = uow.suppliers.preferred_price(sku)
    supplier = uow.suppliers.get(price.supplier_id) if price else None
    if price is None or supplier is None or supplier.status is not SupplierStatus.ACTIVE:
        # Nothing to order from; the shortage stays visible in ListStock(below_reorder_point).
        log.warning("shortage of %s in %s: no active preferred supplier, no purchase order raised", sku,
                    warehouse_code)
        uow.orders.record_shortage(key, None, "no preferred supplier")
        return None
    line = domain.replenishment_line(price, max(reorder_quantity, 1), deps.now().date(), deps.config)
    order = uow.orders.open_replenishment_draft(supplier.supplier_id, warehouse_code)
    if order is None:
        order = _new_order(uow, deps, f"replenish:{key}", supplier, warehouse_code, [line],
                           "raised automatically: stock below its reorder point", Origin.REPLENISHMENT)
    else:
        order.add_quantity(line, deps.now())
        order.approvals_required = deps.config.approvals_required(order.total)
        uow.orders.save(order)
    uow.orders.record_shortage(key, order.purchase_order_id, "ordered")
    return order


def on_bill_posted(uow: ProcurementUnitOfWork, deps: Deps, bill_id: str, purchase_order_id: str,
                   quantities: dict[int, int]) -> None:
    """Records what finance billed, once per bill."""
    if not uow.orders.claim_bill(bill_id, purchase_order_id):
        return
    order = _locked(uow, purchase_order_id)
    order.billed(quantities, deps.now())
    uow.orders.save(order)


# ---------------------------------------------------------------- events out


def _money(order: PurchaseOrder, amount) -> money_pb2.Money:
    return protoconv.money(order.currency_code, amount)


def _approved_event(order: PurchaseOrder, supplier: Supplier, approver: str) -> ev.PurchaseOrderApproved:
    return ev.PurchaseOrderApproved(
        purchase_order_id=order.purchase_order_id, number=order.number, supplier_id=supplier.supplier_id,
        supplier_name=supplier.name, supplier_email=supplier.email, supplier_webhook_url=supplier.webhook_url,
        warehouse_code=order.warehouse_code, total=_money(order, order.total), approved_by=approver,
        payment_terms_days=supplier.payment_terms_days,
        lines=[ev.PurchaseOrderLineItem(line_no=x.line_no, sku=x.sku, quantity=x.quantity,
                                        unit_price=_money(order, x.unit_price), expected_date=x.expected_date)
               for x in order.lines])


def _received_event(order: PurchaseOrder, receipt: GoodsReceipt) -> ev.GoodsReceived:
    return ev.GoodsReceived(
        receipt_id=receipt.receipt_id, purchase_order_id=order.purchase_order_id, supplier_id=order.supplier_id,
        warehouse_code=receipt.warehouse_code,
        lines=[ev.ReceivedLine(line_no=x.line_no, sku=x.sku, quantity=x.quantity,
                               unit_price=_money(order, order.known_line(x.line_no).unit_price))
               for x in receipt.lines])
