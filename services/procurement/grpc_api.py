"""The ProcurementService servicer: protobuf to commands and back, nothing more."""
from __future__ import annotations

from erp.procurement.v1 import procurement_pb2 as pb
from erp.procurement.v1 import procurement_pb2_grpc
from mesh import call_context, protoconv
from mesh.idempotency import in_one_transaction
from mesh.service import Runtime
from services.procurement import domain, handlers
from services.procurement.adapters import ProcurementUnitOfWork
from services.procurement.domain import GoodsReceipt, PurchaseOrder, QuantityStatus, Supplier, SupplierPrice

_RECEIPT = {QuantityStatus.NONE: pb.RECEIPT_STATUS_PENDING, QuantityStatus.PARTIAL: pb.RECEIPT_STATUS_PARTIAL,
            QuantityStatus.FULL: pb.RECEIPT_STATUS_FULL}
_BILLING = {QuantityStatus.NONE: pb.BILLING_STATUS_NOT_BILLED, QuantityStatus.PARTIAL: pb.BILLING_STATUS_PARTIAL,
            QuantityStatus.FULL: pb.BILLING_STATUS_FULL}




def _enum_in(enum_type, prefix: str, value: int, domain_enum):
    """A protobuf enum number as the domain's enum: None for UNSPECIFIED or a number this build does not know."""
    try:
        return domain_enum(enum_type.Name(value).removeprefix(prefix).lower())
    except ValueError:
        return None


# An enum field is given its value's name ("SUPPLIER_STATUS_" + the domain's name): the message's constructor
# looks it up, and refuses a name the proto does not have.
def supplier_to_proto(s: Supplier) -> pb.Supplier:
    return pb.Supplier(
        supplier_id=s.supplier_id, name=s.name, status="SUPPLIER_STATUS_" + s.status.name,
        currency_code=s.currency_code, payment_terms_days=s.payment_terms_days, email=s.email,
        webhook_url=s.webhook_url, version=s.version,
        contacts=[pb.SupplierContact(name=c.name, email=c.email, phone=c.phone, role=c.role) for c in s.contacts])


def price_to_proto(p: SupplierPrice, currency: str) -> pb.SupplierPrice:
    return pb.SupplierPrice(supplier_id=p.supplier_id, sku=p.sku, unit_price=protoconv.money(currency, p.unit_price),
                            min_quantity=p.min_quantity, lead_time_days=p.lead_time_days, preferred=p.preferred)


def order_to_proto(o: PurchaseOrder) -> pb.PurchaseOrder:
    c = o.currency_code
    return pb.PurchaseOrder(
        purchase_order_id=o.purchase_order_id, supplier_id=o.supplier_id,
        status="PURCHASE_ORDER_STATUS_" + o.status.name,
        lines=[pb.PurchaseOrderLine(
            line_no=x.line_no, sku=x.sku, quantity=x.quantity, unit_price=protoconv.money(c, x.unit_price),
            expected_date=x.expected_date, received_quantity=x.received_quantity, billed_quantity=x.billed_quantity,
            receivable_quantity=x.receivable_quantity, receipt_status=_RECEIPT[x.receipt_status],
            amount=protoconv.money(c, x.amount)) for x in o.lines],
        number=o.number, currency_code=c, warehouse_code=o.warehouse_code, total=protoconv.money(c, o.total),
        approvals=[pb.Approval(approver=a.approver, comment=a.comment, decided_at=protoconv.timestamp(a.decided_at),
                               decision="APPROVAL_DECISION_" + a.decision.name)
                   for a in o.approvals],
        approvals_required=o.approvals_required, receipt_status=_RECEIPT[o.receipt_status],
        billing_status=_BILLING[o.billing_status], note=o.note,
        origin="PURCHASE_ORDER_ORIGIN_" + o.origin.name,
        closing_reason=o.closing_reason, submitted_by=o.submitted_by, version=o.version,
        created_at=protoconv.timestamp(o.created_at), updated_at=protoconv.timestamp(o.updated_at))


def receipt_to_proto(r: GoodsReceipt) -> pb.GoodsReceipt:
    return pb.GoodsReceipt(
        receipt_id=r.receipt_id, purchase_order_id=r.purchase_order_id, warehouse_code=r.warehouse_code,
        lines=[pb.GoodsReceiptLine(line_no=x.line_no, quantity=x.quantity, sku=x.sku) for x in r.lines],
        received_by=r.received_by, reference=r.reference, received_at=protoconv.timestamp(r.received_at))


def _draft(warehouse_code: str, lines, note: str) -> handlers.DraftInput:
    return handlers.DraftInput(warehouse_code, tuple(
        domain.LineInput(x.sku, x.quantity, x.unit_price.amount, x.unit_price.currency_code, x.expected_date)
        for x in lines), note)


class ProcurementServicer(procurement_pb2_grpc.ProcurementServiceServicer):
    def __init__(self, runtime: Runtime[ProcurementUnitOfWork], deps: handlers.Deps) -> None:
        self.runtime = runtime
        self.deps = deps

    def uow(self):
        return self.runtime.uow()

    # ------------------------------------------------------------ suppliers

    def CreateSupplier(self, request, context):
        s = request.supplier
        supplier = handlers.create_supplier(self.uow(), Supplier(
            supplier_id=s.supplier_id, name=s.name, status=domain.SupplierStatus.ACTIVE, currency_code=s.currency_code,
            payment_terms_days=s.payment_terms_days, email=s.email, webhook_url=s.webhook_url,
            contacts=tuple(domain.Contact(c.name, c.email, c.phone, c.role) for c in s.contacts)))
        return pb.CreateSupplierResponse(supplier=supplier_to_proto(supplier))

    def GetSupplier(self, request, context):
        return pb.GetSupplierResponse(supplier=supplier_to_proto(handlers.get_supplier(self.uow(),
                                                                                       request.supplier_id)))

    def ListSuppliers(self, request, context):
        status = _enum_in(pb.SupplierStatus, "SUPPLIER_STATUS_", request.status, domain.SupplierStatus)
        found, token = handlers.list_suppliers(self.uow(), status, request.page.page_size, request.page.page_token)
        return pb.ListSuppliersResponse(suppliers=[supplier_to_proto(s) for s in found], next_page_token=token)

    def UpdateSupplierStatus(self, request, context):
        status = _enum_in(pb.SupplierStatus, "SUPPLIER_STATUS_", request.status, domain.SupplierStatus)
        supplier = handlers.update_supplier_status(self.uow(), request.supplier_id, status)
        return pb.UpdateSupplierStatusResponse(supplier=supplier_to_proto(supplier))

    def SetSupplierPrice(self, request, context):
        p = request.price
        price = handlers.set_supplier_price(
            self.uow(), self.deps, SupplierPrice(p.supplier_id, p.sku, domain.ZERO, p.min_quantity or 1,
                                                 p.lead_time_days, p.preferred),
            p.unit_price.amount, p.unit_price.currency_code)
        return pb.SetSupplierPriceResponse(price=price_to_proto(price, p.unit_price.currency_code))

    def ListSupplierPrices(self, request, context):
        prices = handlers.list_supplier_prices(self.uow(), request.supplier_id, request.sku)
        currencies = {s: handlers.get_supplier(self.uow(), s).currency_code for s in {p.supplier_id for p in prices}}
        return pb.ListSupplierPricesResponse(prices=[price_to_proto(p, currencies[p.supplier_id]) for p in prices])

    # ------------------------------------------------------------ purchase orders

    @in_one_transaction
    def CreatePurchaseOrder(self, request, context):
        order = handlers.create_purchase_order(self.uow(), self.deps, request.request_id, request.supplier_id,
                                               _draft(request.warehouse_code, request.lines, request.note))
        return pb.CreatePurchaseOrderResponse(purchase_order=order_to_proto(order))

    def UpdatePurchaseOrder(self, request, context):
        order = handlers.update_purchase_order(self.uow(), self.deps, request.purchase_order_id,
                                               request.expected_version,
                                               _draft(request.warehouse_code, request.lines, request.note))
        return pb.UpdatePurchaseOrderResponse(purchase_order=order_to_proto(order))

    def SubmitPurchaseOrder(self, request, context):
        order = handlers.submit(self.uow(), self.deps, request.purchase_order_id,
                                 call_context.acting_person(request.submitted_by, "submitted_by"))
        return pb.SubmitPurchaseOrderResponse(purchase_order=order_to_proto(order))

    def ApprovePurchaseOrder(self, request, context):
        order = handlers.approve(self.uow(), self.deps, request.purchase_order_id,
                                 call_context.acting_person(request.approver, "approver"), request.comment)
        return pb.ApprovePurchaseOrderResponse(purchase_order=order_to_proto(order))

    def RejectPurchaseOrder(self, request, context):
        order = handlers.reject(self.uow(), self.deps, request.purchase_order_id,
                                call_context.acting_person(request.approver, "approver"), request.reason)
        return pb.RejectPurchaseOrderResponse(purchase_order=order_to_proto(order))

    def CancelPurchaseOrder(self, request, context):
        order = handlers.cancel(self.uow(), self.deps, request.purchase_order_id, request.reason)
        return pb.CancelPurchaseOrderResponse(purchase_order=order_to_proto(order))

    def ClosePurchaseOrder(self, request, context):
        order = handlers.close(self.uow(), self.deps, request.purchase_order_id, request.reason)
        return pb.ClosePurchaseOrderResponse(purchase_order=order_to_proto(order))

    def GetPurchaseOrder(self, request, context):
        order = handlers.get_purchase_order(self.uow(), request.purchase_order_id)
        return pb.GetPurchaseOrderResponse(purchase_order=order_to_proto(order))

    def ListPurchaseOrders(self, request, context):
        status = _enum_in(pb.PurchaseOrderStatus, "PURCHASE_ORDER_STATUS_", request.status, domain.POStatus)
        found, token = handlers.list_purchase_orders(
            self.uow(), supplier_id=request.supplier_id, status=status,
            created_after=protoconv.optional_moment(request, "created_after"),
            created_before=protoconv.optional_moment(request, "created_before"),
            page_size=request.page.page_size, page_token=request.page.page_token)
        return pb.ListPurchaseOrdersResponse(purchase_orders=[order_to_proto(o) for o in found],
                                             next_page_token=token)

    # ------------------------------------------------------------ goods receipts

    @in_one_transaction
    def RecordGoodsReceipt(self, request, context):
        receipt, order = handlers.receive_goods(self.uow(), self.deps, handlers.ReceiveGoods(
            request.request_id, request.purchase_order_id, tuple((x.line_no, x.quantity) for x in request.lines),
            call_context.acting_person(request.received_by, "received_by"), request.reference))
        return pb.RecordGoodsReceiptResponse(receipt=receipt_to_proto(receipt), purchase_order=order_to_proto(order))

    def ListGoodsReceipts(self, request, context):
        receipts = handlers.list_receipts(self.uow(), request.purchase_order_id)
        return pb.ListGoodsReceiptsResponse(receipts=[receipt_to_proto(r) for r in receipts])
