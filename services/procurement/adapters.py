"""Procurement's persistence: tables, repositories and its unit of work (SQLAlchemy Core).

Received quantities are written under the purchase order's row lock, and a CHECK
constraint (received <= receivable) is the backstop against over-receipt.
"""
from __future__ import annotations

import dataclasses

import grpc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, insert

from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc
from mesh.channels import channel_to
from mesh.errors import Aborted, Unavailable
from mesh.uow import UnitOfWork
from services.procurement.domain import (
    Approval,
    Contact,
    Decision,
    GoodsReceipt,
    Origin,
    POLine,
    POStatus,
    PurchaseOrder,
    ReceiptLine,
    Supplier,
    SupplierPrice,
    SupplierStatus,
)

metadata = sa.MetaData()

suppliers = sa.Table(
    "suppliers", metadata,
    sa.Column("supplier_id", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("webhook_url", sa.Text, nullable=False),
    sa.Column("contacts", JSONB, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

supplier_prices = sa.Table(
    "supplier_prices", metadata,
    sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.supplier_id"), primary_key=True),
    sa.Column("sku", sa.Text, primary_key=True),
    sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
    sa.Column("min_quantity", sa.BigInteger, nullable=False),
    sa.Column("lead_time_days", sa.Integer, nullable=False),
    sa.Column("preferred", sa.Boolean, nullable=False),
)
# At most one preferred supplier per SKU, whatever two concurrent SetSupplierPrice calls do.
sa.Index("supplier_prices_one_preferred", supplier_prices.c.sku, unique=True,
         postgresql_where=supplier_prices.c.preferred)

purchase_order_numbers = sa.Sequence("purchase_order_number_seq", metadata=metadata)

purchase_orders = sa.Table(
    "purchase_orders", metadata,
    sa.Column("purchase_order_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("number", sa.Text, nullable=False, unique=True),
    sa.Column("supplier_id", sa.Text, sa.ForeignKey("suppliers.supplier_id"), nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("origin", sa.Text, nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("approvals_required", sa.Integer, nullable=False),
    sa.Column("submitted_by", sa.Text, nullable=False),
    sa.Column("closing_reason", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("purchase_orders_by_supplier", purchase_orders.c.supplier_id, purchase_orders.c.created_at)
sa.Index("purchase_orders_by_created", purchase_orders.c.created_at, purchase_orders.c.purchase_order_id)

purchase_order_lines = sa.Table(
    "purchase_order_lines", metadata,
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
    sa.Column("receivable_quantity", sa.BigInteger, nullable=False),
    sa.Column("expected_date", sa.Text, nullable=False),
    sa.Column("received_quantity", sa.BigInteger, nullable=False),
    sa.Column("billed_quantity", sa.BigInteger, nullable=False),
    sa.CheckConstraint("quantity > 0", name="po_quantity_positive"),
    sa.CheckConstraint("receivable_quantity >= quantity", name="po_receivable_covers_ordered"),
    sa.CheckConstraint("received_quantity >= 0 AND received_quantity <= receivable_quantity",
                       name="po_no_over_receipt"),
    sa.CheckConstraint("billed_quantity >= 0", name="po_billed_not_negative"),
)

purchase_order_approvals = sa.Table(
    "purchase_order_approvals", metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False,
              index=True),
    sa.Column("approver", sa.Text, nullable=False),
    sa.Column("decision", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
)

goods_receipts = sa.Table(
    "goods_receipts", metadata,
    sa.Column("receipt_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("purchase_order_id", sa.Text, sa.ForeignKey("purchase_orders.purchase_order_id"), nullable=False,
              index=True),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("received_by", sa.Text, nullable=False),
    sa.Column("reference", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)

goods_receipt_lines = sa.Table(
    "goods_receipt_lines", metadata,
    sa.Column("receipt_id", sa.Text, sa.ForeignKey("goods_receipts.receipt_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.CheckConstraint("quantity > 0", name="receipt_quantity_positive"),
)

# One row per shortage acted on (SKU, warehouse and the stock version that raised it):
# the same StockBelowReorderPoint delivered twice, under any event id, orders once.
replenishments = sa.Table(
    "replenishments", metadata,
    sa.Column("shortage_key", sa.Text, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("purchase_order_id", sa.Text, nullable=True),  # NULL: no preferred supplier
    sa.Column("outcome", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# Supplier bills finance posted, so a replayed SupplierBillPosted counts once.
billed_bills = sa.Table(
    "billed_bills", metadata,
    sa.Column("bill_id", sa.Text, primary_key=True),
    sa.Column("purchase_order_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)


class SupplierRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, supplier: Supplier) -> bool:
        """False when the id is taken."""
        row = {**dataclasses.asdict(supplier), "status": str(supplier.status),
               "contacts": [dataclasses.asdict(c) for c in supplier.contacts]}
        return self.conn.execute(insert(suppliers).values(**row).on_conflict_do_nothing()
                                 .returning(suppliers.c.supplier_id)).first() is not None

    def get(self, supplier_id: str, for_update: bool = False) -> Supplier | None:
        query = sa.select(suppliers).where(suppliers.c.supplier_id == supplier_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return _supplier(row) if row else None

    def set_status(self, supplier: Supplier) -> None:
        self.conn.execute(suppliers.update().where(suppliers.c.supplier_id == supplier.supplier_id)
                          .values(status=str(supplier.status), version=supplier.version))

    def page(self, status: SupplierStatus | None, after: str | None, limit: int) -> list[Supplier]:
        query = sa.select(suppliers).order_by(suppliers.c.supplier_id).limit(limit)
        if status is not None:
            query = query.where(suppliers.c.status == str(status))
        if after is not None:
            query = query.where(suppliers.c.supplier_id > after)
        return [_supplier(row) for row in self.conn.execute(query)]

    def put_price(self, price: SupplierPrice) -> None:
        if price.preferred:  # one preferred supplier per SKU
            self.conn.execute(supplier_prices.update().where(
                supplier_prices.c.sku == price.sku, supplier_prices.c.supplier_id != price.supplier_id,
            ).values(preferred=False))
        row = dataclasses.asdict(price)
        self.conn.execute(insert(supplier_prices).values(**row).on_conflict_do_update(
            index_elements=[supplier_prices.c.supplier_id, supplier_prices.c.sku], set_=row))

    def prices(self, supplier_id: str = "", sku: str = "", limit: int = 500) -> list[SupplierPrice]:
        query = sa.select(supplier_prices).order_by(supplier_prices.c.supplier_id, supplier_prices.c.sku).limit(limit)
        if supplier_id:
            query = query.where(supplier_prices.c.supplier_id == supplier_id)
        if sku:
            query = query.where(supplier_prices.c.sku == sku)
        return [_price(row) for row in self.conn.execute(query)]

    def preferred_price(self, sku: str) -> SupplierPrice | None:
        row = self.conn.execute(sa.select(supplier_prices).where(
            supplier_prices.c.sku == sku, supplier_prices.c.preferred)).first()
        return _price(row) if row else None


def _supplier(row) -> Supplier:
    return Supplier(row.supplier_id, row.name, SupplierStatus(row.status), row.currency_code, row.payment_terms_days,
                    row.email, row.webhook_url, tuple(Contact(**c) for c in row.contacts), row.version)


def _price(row) -> SupplierPrice:
    return SupplierPrice(row.supplier_id, row.sku, row.unit_price, row.min_quantity, row.lead_time_days,
                         row.preferred)


class PurchaseOrderRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def next_number(self) -> int:
        return self.conn.execute(purchase_order_numbers.next_value()).scalar_one()

    def add(self, order: PurchaseOrder) -> None:
        self.conn.execute(purchase_orders.insert().values(
            purchase_order_id=order.purchase_order_id, request_id=order.request_id, number=order.number,
            supplier_id=order.supplier_id, currency_code=order.currency_code, origin=str(order.origin),
            created_at=order.created_at, **_state(order)))
        self._write_lines(order)
        order.loaded_version = order.version

    def get(self, purchase_order_id: str, for_update: bool = False) -> PurchaseOrder | None:
        query = sa.select(purchase_orders).where(purchase_orders.c.purchase_order_id == purchase_order_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return self._load(row) if row else None

    def by_request(self, request_id: str) -> PurchaseOrder | None:
        row = self.conn.execute(sa.select(purchase_orders).where(purchase_orders.c.request_id == request_id)).first()
        return self._load(row) if row else None

    def open_replenishment_draft(self, supplier_id: str, warehouse_code: str) -> PurchaseOrder | None:
        """The newest draft replenishment raised for this supplier and warehouse, locked."""
        row = self.conn.execute(sa.select(purchase_orders).where(
            purchase_orders.c.supplier_id == supplier_id, purchase_orders.c.warehouse_code == warehouse_code,
            purchase_orders.c.status == str(POStatus.DRAFT),
            purchase_orders.c.origin == str(Origin.REPLENISHMENT),
        ).order_by(purchase_orders.c.created_at.desc()).limit(1).with_for_update()).first()
        return self._load(row) if row else None

    def save(self, order: PurchaseOrder) -> None:
        """Writes the order's state, lines and new approvals; the version check refuses a lost update."""
        updated = self.conn.execute(purchase_orders.update().where(
            purchase_orders.c.purchase_order_id == order.purchase_order_id,
            purchase_orders.c.version == order.loaded_version,
        ).values(**_state(order))).rowcount
        if updated != 1:
            raise Aborted(f"purchase order {order.purchase_order_id} was changed by another request at the same time; "
                          "read it again and retry")
        self.conn.execute(purchase_order_lines.delete().where(
            purchase_order_lines.c.purchase_order_id == order.purchase_order_id))
        self._write_lines(order)
        stored = self.conn.execute(sa.select(sa.func.count()).select_from(purchase_order_approvals).where(
            purchase_order_approvals.c.purchase_order_id == order.purchase_order_id)).scalar_one()
        new_approvals = order.approvals[stored:]  # the approval log only grows
        if new_approvals:
            self.conn.execute(purchase_order_approvals.insert(), [
                {"purchase_order_id": order.purchase_order_id, "approver": a.approver, "decision": str(a.decision),
                 "comment": a.comment, "decided_at": a.decided_at} for a in new_approvals])
        order.loaded_version = order.version

    def _write_lines(self, order: PurchaseOrder) -> None:
        if order.lines:
            self.conn.execute(purchase_order_lines.insert(), [
                {"purchase_order_id": order.purchase_order_id, **dataclasses.asdict(line)} for line in order.lines])

    def page(self, *, supplier_id: str, status: POStatus | None, created_after, created_before,
             after: tuple[str, str] | None, limit: int) -> list[PurchaseOrder]:
        """Newest first (created_at desc, id desc), for keyset paging."""
        po = purchase_orders.c
        query = sa.select(purchase_orders).order_by(po.created_at.desc(), po.purchase_order_id.desc()).limit(limit)
        if supplier_id:
            query = query.where(po.supplier_id == supplier_id)
        if status is not None:
            query = query.where(po.status == str(status))
        if created_after is not None:
            query = query.where(po.created_at >= created_after)
        if created_before is not None:
            query = query.where(po.created_at < created_before)
        if after is not None:
            query = query.where(sa.tuple_(po.created_at, po.purchase_order_id)
                                < sa.tuple_(sa.cast(after[0], sa.DateTime(timezone=True)), after[1]))
        return [self._load(row) for row in self.conn.execute(query)]

    def _load(self, row) -> PurchaseOrder:
        pid = row.purchase_order_id
        lines = [POLine(r.line_no, r.sku, r.quantity, r.unit_price, r.receivable_quantity, r.expected_date,
                        r.received_quantity, r.billed_quantity)
                 for r in self.conn.execute(sa.select(purchase_order_lines).where(
                     purchase_order_lines.c.purchase_order_id == pid).order_by(purchase_order_lines.c.line_no))]
        approvals = [Approval(r.approver, Decision(r.decision), r.comment, r.decided_at)
                     for r in self.conn.execute(sa.select(purchase_order_approvals).where(
                         purchase_order_approvals.c.purchase_order_id == pid).order_by(purchase_order_approvals.c.id))]
        return PurchaseOrder(
            purchase_order_id=pid, request_id=row.request_id, number=row.number, supplier_id=row.supplier_id,
            currency_code=row.currency_code, warehouse_code=row.warehouse_code, lines=lines,
            status=POStatus(row.status), origin=Origin(row.origin), created_at=row.created_at,
            updated_at=row.updated_at, note=row.note, approvals=approvals, approvals_required=row.approvals_required,
            submitted_by=row.submitted_by, closing_reason=row.closing_reason, version=row.version,
            loaded_version=row.version)

    # ------------------------------------------------------------ receipts

    def receipt_by_request(self, request_id: str) -> GoodsReceipt | None:
        row = self.conn.execute(sa.select(goods_receipts).where(goods_receipts.c.request_id == request_id)).first()
        return self._receipt(row) if row else None

    def add_receipt(self, receipt: GoodsReceipt) -> None:
        self.conn.execute(goods_receipts.insert().values(
            receipt_id=receipt.receipt_id, request_id=receipt.request_id,
            purchase_order_id=receipt.purchase_order_id, warehouse_code=receipt.warehouse_code,
            received_by=receipt.received_by, reference=receipt.reference, received_at=receipt.received_at))
        self.conn.execute(goods_receipt_lines.insert(), [
            {"receipt_id": receipt.receipt_id, **dataclasses.asdict(line)} for line in receipt.lines])

    def receipts(self, purchase_order_id: str) -> list[GoodsReceipt]:
        rows = self.conn.execute(sa.select(goods_receipts).where(
            goods_receipts.c.purchase_order_id == purchase_order_id).order_by(goods_receipts.c.received_at,
                                                                              goods_receipts.c.receipt_id))
        return [self._receipt(row) for row in rows]

    def _receipt(self, row) -> GoodsReceipt:
        lines = tuple(ReceiptLine(r.line_no, r.sku, r.quantity) for r in self.conn.execute(
            sa.select(goods_receipt_lines).where(goods_receipt_lines.c.receipt_id == row.receipt_id)
            .order_by(goods_receipt_lines.c.line_no)))
        return GoodsReceipt(row.receipt_id, row.request_id, row.purchase_order_id, row.warehouse_code, lines,
                            row.received_by, row.reference, row.received_at)

    # ------------------------------------------------------------ what events have done already

    def claim_shortage(self, key: str, sku: str, warehouse_code: str) -> bool:
        """False when this shortage was acted on before."""
        return self.conn.execute(insert(replenishments).values(
            shortage_key=key, sku=sku, warehouse_code=warehouse_code, outcome="pending",
        ).on_conflict_do_nothing().returning(replenishments.c.shortage_key)).first() is not None

    def record_shortage(self, key: str, purchase_order_id: str | None, outcome: str) -> None:
        self.conn.execute(replenishments.update().where(replenishments.c.shortage_key == key)
                          .values(purchase_order_id=purchase_order_id, outcome=outcome))

    def claim_bill(self, bill_id: str, purchase_order_id: str) -> bool:
        return self.conn.execute(insert(billed_bills).values(
            bill_id=bill_id, purchase_order_id=purchase_order_id).on_conflict_do_nothing()
            .returning(billed_bills.c.bill_id)).first() is not None


def _state(order: PurchaseOrder) -> dict:
    return {"warehouse_code": order.warehouse_code, "status": str(order.status), "note": order.note,
            "approvals_required": order.approvals_required, "submitted_by": order.submitted_by,
            "closing_reason": order.closing_reason, "version": order.version, "updated_at": order.updated_at}


class ProcurementUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.suppliers = SupplierRepository(self.connection)
        self.orders = PurchaseOrderRepository(self.connection)


class InventoryCatalog:
    """handlers.Catalog over inventory's gRPC API, through the mesh's client channel
    (deadline, retries, correlation id). The channel opens on first use."""

    def __init__(self, settings) -> None:
        self._settings = settings
        self._stub = None

    def _inventory(self):
        if self._stub is None:
            self._stub = inventory_pb2_grpc.InventoryServiceStub(channel_to(self._settings, "inventory"))
        return self._stub

    def unknown_skus(self, skus: list[str]) -> list[str]:
        unknown = []
        for sku in skus:
            try:
                self._inventory().GetProduct(inv.GetProductRequest(sku=sku))
            except grpc.RpcError as exc:
                if exc.code() is not grpc.StatusCode.NOT_FOUND:
                    raise _unavailable(exc) from exc
                unknown.append(sku)
        return unknown

    def unknown_stock_keys(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        try:
            answer = self._inventory().BatchGetStock(inv.BatchGetStockRequest(
                keys=[inv.StockKey(sku=sku, warehouse_code=code) for sku, code in keys]))
        except grpc.RpcError as exc:
            raise _unavailable(exc) from exc
        return [(k.sku, k.warehouse_code) for k in answer.missing]


def _unavailable(exc: grpc.RpcError) -> Unavailable:
    return Unavailable(f"inventory could not check the SKUs ({exc.code().name}); retry shortly")
