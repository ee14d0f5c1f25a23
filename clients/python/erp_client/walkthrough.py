"""`erp demo`: one order from placement to payment, then procure to pay (a shortage, the
purchase order it raises, two deliveries, the supplier's bill), with each service's view.

Needs a running mesh with the demo data (`make run` loads it)."""
from __future__ import annotations

from decimal import Decimal

from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ord_pb
from erp.procurement.v1 import procurement_pb2 as proc
from erp_client.client import ErpClient, Line


def _status(order: ord_pb.Order) -> str:
    return (f"{ord_pb.OrderStatus.Name(order.status).removeprefix('ORDER_STATUS_')} "
            f"(fulfilment {ord_pb.FulfilmentStatus.Name(order.fulfilment_status).removeprefix('FULFILMENT_STATUS_')}, "
            f"payment {ord_pb.PaymentStatus.Name(order.payment_status).removeprefix('PAYMENT_STATUS_')})")


def _stock(level: inv.StockLevel) -> str:
    return f"{level.sku}@{level.warehouse_code}: on hand {level.on_hand}, reserved {level.reserved}, available {level.available}"


def run(erp: ErpClient, customer_id: str = "CUST-1", out=print) -> ord_pb.Order:
    lines = [Line("CHAIR-OAK", 4, "89.90"), Line("DESK-150", 1, "349.00")]
    out(f"1. orders: {customer_id} places {', '.join(f'{x.quantity} x {x.sku} at {x.unit_price}' for x in lines)}")
    order = erp.place_order(customer_id, lines, "EUR")
    out(f"   order {order.order_id} is {_status(order)}, total {order.total.amount} EUR before tax")
    order = erp.wait_for_order(order.order_id)
    out(f"2. inventory reserved the stock and crm approved the credit (or one refused): {_status(order)}")
    for line in lines:
        out(f"   inventory: {_stock(erp.get_stock(line.sku, line.warehouse_code or 'MAIN'))}")
    exposure = erp.get_customer(customer_id).exposure
    out(f"   crm: exposure {exposure.total.amount} of which open orders {exposure.open_orders.amount}; "
        f"credit available {exposure.available_credit.amount}")
    if order.status == ord_pb.ORDER_STATUS_REJECTED:
        out(f"   the order was rejected: {order.rejection_reason}")
        return order
    [invoice] = erp.wait_for(lambda: erp.invoices_for_order(order.order_id), bool)
    out(f"3. finance issued invoice {invoice.number}: subtotal {invoice.subtotal.amount} + tax {invoice.tax.amount}"
        f" = {invoice.total.amount} EUR, due {invoice.due_at.ToDatetime():%Y-%m-%d}")
    order = erp.wait_for(lambda: erp.get_order(order.order_id), lambda o: o.invoice_id)
    out(f"   orders: {_status(order)}")
    deliveries = erp.wait_for(lambda: erp.deliveries(customer_id=customer_id), bool, timeout=15)
    for d in deliveries[:3]:
        out(f"4. notification: {d.event_type.rsplit('.', 1)[-1]} -> {d.recipient}: \"{d.subject}\" "
            f"({'delivered' if d.delivered else 'pending'})")
    before = erp.get_stock("CHAIR-OAK", "MAIN")
    order = erp.mark_shipped(order.order_id)
    out(f"5. warehouse ships it: {_status(order)}")
    stock = erp.wait_for(lambda: erp.get_stock("CHAIR-OAK", "MAIN"), lambda s: s.on_hand < before.on_hand)
    out(f"   inventory issued the reserved stock: {_stock(stock)}")
    half = str((Decimal(invoice.total.amount) / 2).quantize(Decimal("0.01")))
    paid = erp.record_payment(invoice.invoice_id, half)
    out(f"6. finance records a payment of {half}: invoice {fin.InvoiceStatus.Name(paid.invoice.status)}, "
        f"due {paid.invoice.amount_due.amount}")
    paid = erp.record_payment(invoice.invoice_id, paid.invoice.amount_due.amount)
    out(f"   and the rest: invoice {fin.InvoiceStatus.Name(paid.invoice.status)}")
    order = erp.wait_for(lambda: erp.get_order(order.order_id), lambda o: o.status == ord_pb.ORDER_STATUS_COMPLETED)
    out(f"7. orders: {_status(order)}")
    _trial_balance(erp, out)
    return order


def _trial_balance(erp: ErpClient, out) -> None:
    balance = erp.trial_balance("EUR")
    out("   finance trial balance:")
    for row in balance.lines:
        out(f"     {row.account} {row.name:<30} debit {row.debit.amount:>12} credit {row.credit.amount:>12}")
    out(f"     {'':4} {'total':<30} debit {balance.total_debit.amount:>12} credit {balance.total_credit.amount:>12}")


def _po_status(po: proc.PurchaseOrder) -> str:
    return (f"{proc.PurchaseOrderStatus.Name(po.status).removeprefix('PURCHASE_ORDER_STATUS_')} "
            f"(receipt {proc.ReceiptStatus.Name(po.receipt_status).removeprefix('RECEIPT_STATUS_')}, "
            f"billing {proc.BillingStatus.Name(po.billing_status).removeprefix('BILLING_STATUS_')})")


def _replenishment_draft(erp: ErpClient, supplier_id: str, sku: str) -> proc.PurchaseOrder | None:
    drafts = erp.purchase_orders(supplier_id=supplier_id, status=proc.PURCHASE_ORDER_STATUS_DRAFT)
    return next((po for po in drafts if po.origin == proc.PURCHASE_ORDER_ORIGIN_REPLENISHMENT
                 and any(line.sku == sku for line in po.lines)), None)


def procure_to_pay(erp: ErpClient, customer_id: str = "CUST-1", sku: str = "CHAIR-OAK", supplier_id: str = "SUP-WOOD",
                   out=print) -> proc.PurchaseOrder:
    """Sales orders drive a SKU below its reorder point; the draft procurement raises is approved,
    received in two parts, billed and paid."""
    level = erp.get_stock(sku, "MAIN")
    short_by = level.available - level.reorder_point + 1
    if short_by > 0 and _replenishment_draft(erp, supplier_id, sku) is None:
        out(f"8. orders: {customer_id} orders {short_by} x {sku}, which takes it below its reorder point "
            f"{level.reorder_point}")
        order = erp.wait_for_order(erp.place_order(customer_id, [Line(sku, short_by, "89.90")], "EUR").order_id)
        out(f"   order {order.order_id}: {_status(order)}")
    level = erp.get_stock(sku, "MAIN")
    out(f"   inventory: {_stock(level)}")
    draft = erp.wait_for(lambda: _replenishment_draft(erp, supplier_id, sku), lambda po: po is not None)
    out(f"9. procurement raised draft {draft.number} for {supplier_id}: "
        + ", ".join(f"{x.quantity} x {x.sku} at {x.unit_price.amount}" for x in draft.lines)
        + f" = {draft.total.amount} EUR")
    erp.submit_purchase_order(draft.purchase_order_id, "buyer@erp.example")
    po = erp.approve_purchase_order(draft.purchase_order_id, "manager@erp.example", "replenishment")
    for _ in range(po.approvals_required - 1):
        po = erp.approve_purchase_order(draft.purchase_order_id, "director@erp.example")
    out(f"   submitted and approved ({po.approvals_required} approval(s) needed): {_po_status(po)}")
    first = [(x.line_no, max(1, x.quantity // 2)) for x in po.lines]
    po = erp.receive_goods(po.purchase_order_id, first, "goods-in@erp.example", reference="delivery 1").purchase_order
    out(f"10. goods in: first delivery {first} -> {_po_status(po)}")
    rest = [(x.line_no, x.quantity - x.received_quantity) for x in po.lines if x.quantity > x.received_quantity]
    po = erp.receive_goods(po.purchase_order_id, rest, "goods-in@erp.example", reference="delivery 2").purchase_order
    out(f"    second delivery {rest} -> {_po_status(po)}")
    out(f"    inventory: {_stock(erp.wait_for(lambda: erp.get_stock(sku, 'MAIN'), lambda s: s.on_hand > level.on_hand))}")
    # Recorded once: held until finance has heard of the goods, then matched again by finance
    # itself. A repeat of the call would answer what the first call answered (its idempotency
    # key), so the bill's progress is read with GetSupplierBill.
    held = _record_bill(erp, po)
    bill = erp.wait_for(lambda: erp.finance.GetSupplierBill(fin.GetSupplierBillRequest(bill_id=held.bill_id),
                                                            timeout=erp.timeout).bill,
                        lambda b: b.status != fin.SUPPLIER_BILL_STATUS_HELD)
    out(f"11. finance matched the supplier's bill {bill.supplier_bill_number} three ways: "
        f"{fin.SupplierBillStatus.Name(bill.status).removeprefix('SUPPLIER_BILL_STATUS_')}, {bill.total.amount} EUR")
    paid = erp.pay_supplier_bill(bill.bill_id, bill.total.amount).bill
    out(f"    and paid it: {fin.SupplierBillStatus.Name(paid.status).removeprefix('SUPPLIER_BILL_STATUS_')}")
    po = erp.wait_for(lambda: erp.get_purchase_order(po.purchase_order_id),
                      lambda p: p.billing_status == proc.BILLING_STATUS_FULL)
    out(f"12. procurement: {_po_status(po)}")
    _trial_balance(erp, out)
    return po


def _record_bill(erp: ErpClient, po: proc.PurchaseOrder) -> fin.SupplierBill:
    """The supplier's bill for everything received (posted, or held until finance has seen the goods)."""
    return erp.record_supplier_bill(po.purchase_order_id, f"{po.supplier_id}-{po.number}",
                                    [(x.line_no, x.received_quantity, x.unit_price.amount) for x in po.lines],
                                    request_id=f"demo-bill-{po.purchase_order_id}")
