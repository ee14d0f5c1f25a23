"""A realistic mix for soak runs: lookups, orders, payments, cancellations, shipments and listings.

    locust -f loadtests/mix.py --headless -u 40 -r 10 -t 30m

Per user, by weight: stock lookups (GetStock 40, BatchGetStock 8, ListStock 3), orders (PlaceOrder 10,
followed lazily: a user looks at its own orders when it pays, cancels or ships them), payments (6: a
full or partial RecordPayment of an invoiced order), cancellations (2: of a confirmed or invoiced order,
before shipment; after invoicing finance issues a credit note), shipments (2: MarkShipped), listings
(ListOrders 5, ListInvoices 3, ListDeliveries 2) and stock adjustments (1). Users run at
LOAD_MIX_RATE tasks per second each (default 5).

It reuses the order suite's set-up (catalog, customers, scarce SKU) and its end-of-test checks (every
order final, nothing oversold, invoices agree with orders) on the orders this process placed.
"""
from __future__ import annotations

import os
import random
import sys
import uuid
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
from locust import constant_throughput, task  # noqa: E402

from erp.common.v1 import money_pb2, paging_pb2  # noqa: E402
from erp.finance.v1 import finance_pb2 as fin  # noqa: E402
from erp.inventory.v1 import inventory_pb2 as inv  # noqa: E402
from erp.notification.v1 import notification_pb2 as notif  # noqa: E402
from erp.orders.v1 import orders_pb2 as ord_pb  # noqa: E402
from loadtests import order_throughput as orders_suite  # noqa: E402  (its test_start/test_stop hooks apply)
from loadtests import seed  # noqa: E402
from loadtests.grpc_user import GrpcUser  # noqa: E402

RATE = float(os.environ.get("LOAD_MIX_RATE", "5"))
KEYS = seed.Zipf(seed.stock_keys(), s=1.0)


class MixUser(GrpcUser):
    services = ("inventory", "orders", "finance", "notification")
    wait_time = constant_throughput(RATE)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.customer = self.rng.choice(seed.CUSTOMERS)
        self.mine: list[str] = []  # this user's open orders, oldest first

    # lookups
    @task(40)
    def get_stock(self) -> None:
        sku, warehouse = KEYS.draw(self.rng)
        self.inventory.GetStock(inv.GetStockRequest(sku=sku, warehouse_code=warehouse))

    @task(8)
    def batch_get_stock(self) -> None:
        keys = {KEYS.draw(self.rng) for _ in range(20)}
        self.inventory.BatchGetStock(inv.BatchGetStockRequest(keys=[inv.StockKey(sku=s, warehouse_code=w)
                                                                    for s, w in keys]))

    @task(3)
    def list_stock(self) -> None:
        self.inventory.ListStock(inv.ListStockRequest(
            warehouse_code=self.rng.choice(seed.WAREHOUSES)[0], page=paging_pb2.PageRequest(page_size=50)))

    @task(1)
    def adjust_stock(self) -> None:
        sku, warehouse = KEYS.draw(self.rng)
        self.inventory.AdjustStock(inv.AdjustStockRequest(
            request_id=str(uuid.uuid4()), sku=sku, warehouse_code=warehouse, quantity_delta=self.rng.choice((-1, 1)),
            reason="load test cycle count"))

    # orders
    @task(10)
    def place_order(self) -> None:
        customer = seed.TIGHT_CUSTOMER if self.rng.random() < 0.02 else self.customer
        lines = orders_suite.order_lines(self.rng)
        order = self.orders.PlaceOrder(orders_suite.place_request(customer, lines)).order
        orders_suite.REGISTRY.orders[order.order_id] = orders_suite.Placed(order.order_id, customer, lines, order.status)
        self.mine.append(order.order_id)
        del self.mine[:-50]

    def _pick(self, statuses: set[int]) -> ord_pb.Order | None:
        """One of this user's orders (oldest first) in one of `statuses`, as it is now."""
        for order_id in list(self.mine[:5]):
            order = self.orders.GetOrder(ord_pb.GetOrderRequest(order_id=order_id)).order
            placed = orders_suite.REGISTRY.orders.get(order_id)
            if placed is not None:
                placed.status, placed.invoiced_amount = order.status, order.invoiced_amount.amount
            if order.status in statuses:
                return order
            if order.status in (ord_pb.ORDER_STATUS_REJECTED, ord_pb.ORDER_STATUS_CANCELLED,
                                ord_pb.ORDER_STATUS_COMPLETED):
                self.mine.remove(order_id)
        return None

    @task(6)
    def pay(self) -> None:
        order = self._pick({ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_SHIPPED})
        if order is None or not order.invoice_id:
            return
        invoice = self.finance.GetInvoice(fin.GetInvoiceRequest(invoice_id=order.invoice_id)).invoice
        due = Decimal(invoice.amount_due.amount or "0")
        if due <= 0:
            return
        amount = due if self.rng.random() < 0.7 else (due / 2).quantize(Decimal("0.01"))
        self.finance.RecordPayment(fin.RecordPaymentRequest(
            request_id=str(uuid.uuid4()), invoice_id=order.invoice_id,
            amount=money_pb2.Money(currency_code=invoice.amount_due.currency_code or "EUR", amount=str(amount))))

    @task(2)
    def cancel(self) -> None:
        order = self._pick({ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_INVOICED})
        if order is None or order.payment_status in (ord_pb.PAYMENT_STATUS_PAID, ord_pb.PAYMENT_STATUS_PARTLY_PAID):
            return
        try:
            result = self.orders.CancelOrder(ord_pb.CancelOrderRequest(order_id=order.order_id,
                                                                       reason="customer changed their mind")).order
        except grpc.RpcError:
            return  # reported; e.g. shipped meanwhile by nobody else: should not happen
        orders_suite.REGISTRY.orders[order.order_id].status = result.status

    @task(2)
    def ship(self) -> None:
        order = self._pick({ord_pb.ORDER_STATUS_INVOICED})
        if order is not None:
            result = self.orders.MarkShipped(ord_pb.MarkShippedRequest(order_id=order.order_id)).order
            orders_suite.REGISTRY.orders[order.order_id].status = result.status

    # listings
    @task(5)
    def list_orders(self) -> None:
        self.orders.ListOrders(ord_pb.ListOrdersRequest(customer_id=self.customer,
                                                        page=paging_pb2.PageRequest(page_size=20)))

    @task(3)
    def list_invoices(self) -> None:
        self.finance.ListInvoices(fin.ListInvoicesRequest(customer_id=self.customer,
                                                          page=paging_pb2.PageRequest(page_size=20)))

    @task(2)
    def list_deliveries(self) -> None:
        self.notification.ListDeliveries(notif.ListDeliveriesRequest(customer_id=self.customer,
                                                                     page=paging_pb2.PageRequest(page_size=20)))
