"""`erp demo`: one order from placement to payment, with each service's view of it.

Needs a running mesh with the demo data (`make run` loads it)."""
from __future__ import annotations

from decimal import Decimal

from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ord_pb
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
    balance = erp.trial_balance("EUR")
    out("   finance trial balance:")
    for row in balance.lines:
        out(f"     {row.account} {row.name:<30} debit {row.debit.amount:>12} credit {row.credit.amount:>12}")
    out(f"     {'':4} {'total':<30} debit {balance.total_debit.amount:>12} credit {balance.total_credit.amount:>12}")
    return order
