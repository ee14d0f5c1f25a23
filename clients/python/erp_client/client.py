"""ErpClient: the mesh's RPCs as typed methods with deadlines, retries and request ids.

    with ErpClient.from_env() as erp:
        erp.adjust_stock("SKU-1", "MAIN", 10, reason="initial count")
        order = erp.place_order("CUST-1", [Line("SKU-1", 2, "9.99")], currency_code="EUR")
        order = erp.wait_for_order(order.order_id)

    # a deployment: every service through its gateway, over TLS, with OAuth2 client credentials
    with ErpClient(target="erp.example.com:443", tls=True,
                   token=ClientCredentials(url, "my-client", secret, scopes=["orders.read"])) as erp:
        ...
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Iterable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from erp.common.v1 import money_pb2, paging_pb2
from erp.crm.v1 import crm_pb2 as crm
from erp.crm.v1 import crm_pb2_grpc as crm_grpc
from erp.finance.v1 import finance_pb2 as fin
from erp.finance.v1 import finance_pb2_grpc as fin_grpc
from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc as inv_grpc
from erp.notification.v1 import notification_pb2 as notif
from erp.notification.v1 import notification_pb2_grpc as notif_grpc
from erp.orders.v1 import orders_pb2 as ord_pb
from erp.orders.v1 import orders_pb2_grpc as ord_grpc
from erp.procurement.v1 import procurement_pb2 as proc
from erp.procurement.v1 import procurement_pb2_grpc as proc_grpc
from erp_client.auth import StaticToken, TokenError, TokenSource, token_from_env
from erp_client.channel import DEFAULT_TIMEOUT_SECONDS, open_channel

FINAL_ORDER_STATES = frozenset({
    ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_REJECTED, ord_pb.ORDER_STATUS_CANCELLED,
    ord_pb.ORDER_STATUS_SHIPPED, ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_COMPLETED,
})


@dataclasses.dataclass(frozen=True)
class Line:
    """One order line: quantity of a SKU at a unit price (a decimal string)."""

    sku: str
    quantity: int
    unit_price: str
    warehouse_code: str = ""


def new_request_id() -> str:
    return str(uuid.uuid4())


class ErpClient:
    """One client for the whole mesh.

    Targets: `target` (a gateway: every service through it, on one channel), else each service's own
    target, else `make run`'s ports; a service's own target wins over `target`. `token` (a string or an
    erp_client.auth token source) goes with every call as `authorization: Bearer ...`; `tls` (or a
    `ca_file`) makes the channels TLS. `gateway_target` is where health() asks for the gateway itself
    (default: `target`, else `make run`'s gateway port)."""

    SERVICES = ("inventory", "orders", "crm", "finance", "notification", "procurement")
    GRPC_SERVICES = {"inventory": "erp.inventory.v1.InventoryService", "orders": "erp.orders.v1.OrderService",
                     "crm": "erp.crm.v1.CustomerService", "finance": "erp.finance.v1.FinanceService",
                     "notification": "erp.notification.v1.NotificationService",
                     "procurement": "erp.procurement.v1.ProcurementService"}
    DEFAULT_PORTS = {"inventory": 50051, "orders": 50052, "crm": 50053, "finance": 50054, "notification": 50056,
                     "procurement": 50055}
    GATEWAY_PORT = 50050

    def __init__(self, inventory_target: str | None = None, orders_target: str | None = None, *,
                 crm_target: str | None = None, finance_target: str | None = None,
                 notification_target: str | None = None, procurement_target: str | None = None,
                 target: str | None = None, gateway_target: str | None = None,
                 token: str | TokenSource | None = None, tls: bool = False, ca_file: str | None = None,
                 credentials: grpc.ChannelCredentials | None = None,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS,
                 interceptors: Iterable[grpc.UnaryUnaryClientInterceptor] = ()) -> None:
        self.timeout = timeout
        self.token = StaticToken(token) if isinstance(token, str) else token
        own = {"inventory": inventory_target, "orders": orders_target, "crm": crm_target,
               "finance": finance_target, "notification": notification_target,
               "procurement": procurement_target}
        self.targets = {name: own[name] or target or f"127.0.0.1:{self.DEFAULT_PORTS[name]}" for name in own}
        self.gateway_target = gateway_target or target or f"127.0.0.1:{self.GATEWAY_PORT}"
        interceptors = tuple(interceptors)
        by_target: dict[str, grpc.Channel] = {}  # one channel per distinct target: a gateway serves all

        def channel(address: str) -> grpc.Channel:
            if address not in by_target:
                by_target[address] = open_channel(address, timeout=timeout, interceptors=interceptors,
                                                  token=self.token, tls=tls, ca_file=ca_file,
                                                  credentials=credentials)
            return by_target[address]

        self._channels = {name: channel(address) for name, address in self.targets.items()}
        self._open = by_target
        self._gateway_channel = lambda: channel(self.gateway_target)
        self.inventory = inv_grpc.InventoryServiceStub(self._channels["inventory"])
        self.orders = ord_grpc.OrderServiceStub(self._channels["orders"])
        self.crm = crm_grpc.CustomerServiceStub(self._channels["crm"])
        self.finance = fin_grpc.FinanceServiceStub(self._channels["finance"])
        self.notification = notif_grpc.NotificationServiceStub(self._channels["notification"])
        self.procurement = proc_grpc.ProcurementServiceStub(self._channels["procurement"])

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **kwargs) -> ErpClient:
        """Settings from the environment, `kwargs` (not None) over them:
        ERP_TARGET (the gateway: every service), ERP_<SERVICE>_TARGET (one service, over ERP_TARGET),
        ERP_GATEWAY_TARGET (where health asks for the gateway), ERP_TLS (1/true) and ERP_TLS_CA_FILE,
        and a token (erp_client.auth.ENV: ERP_TOKEN, ERP_TOKEN_FILE, or ERP_TOKEN_URL with ERP_CLIENT_ID,
        ERP_CLIENT_SECRET or ERP_CLIENT_SECRET_FILE, ERP_TOKEN_SCOPES, ERP_TOKEN_AUDIENCE)."""
        env = os.environ if env is None else env
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        settings: dict = {f"{name}_target": env.get(f"ERP_{name.upper()}_TARGET") or None for name in cls.SERVICES}
        settings.update(target=env.get("ERP_TARGET") or None, gateway_target=env.get("ERP_GATEWAY_TARGET") or None,
                        tls=env.get("ERP_TLS", "").strip().lower() in ("1", "true", "yes", "on"),
                        ca_file=env.get("ERP_TLS_CA_FILE") or None)
        if "target" in kwargs:  # a gateway named by the caller (--target) serves every service
            settings.update({f"{name}_target": None for name in cls.SERVICES})
        if "token" not in kwargs:
            settings["token"] = token_from_env(env)
        return cls(**{**settings, **kwargs})
    def __enter__(self) -> ErpClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for channel in self._open.values():
            channel.close()

    # inventory
    def create_product(self, sku: str, name: str, unit_of_measure: str = "EA") -> inv.Product:
        request = inv.CreateProductRequest(product=inv.Product(sku=sku, name=name, unit_of_measure=unit_of_measure))
        return self.inventory.CreateProduct(request, timeout=self.timeout).product

    def create_warehouse(self, code: str, name: str) -> inv.Warehouse:
        request = inv.CreateWarehouseRequest(warehouse=inv.Warehouse(code=code, name=name))
        return self.inventory.CreateWarehouse(request, timeout=self.timeout).warehouse

    def get_stock(self, sku: str, warehouse_code: str) -> inv.StockLevel:
        request = inv.GetStockRequest(sku=sku, warehouse_code=warehouse_code)
        return self.inventory.GetStock(request, timeout=self.timeout).stock

    def batch_get_stock(self, keys: Iterable[tuple[str, str]]) -> inv.BatchGetStockResponse:
        request = inv.BatchGetStockRequest(keys=[inv.StockKey(sku=s, warehouse_code=w) for s, w in keys])
        return self.inventory.BatchGetStock(request, timeout=self.timeout)

    def adjust_stock(self, sku: str, warehouse_code: str, delta: int, reason: str,
                     request_id: str | None = None) -> inv.StockLevel:
        request = inv.AdjustStockRequest(request_id=request_id or new_request_id(), sku=sku,
                                         warehouse_code=warehouse_code, quantity_delta=delta, reason=reason)
        return self.inventory.AdjustStock(request, timeout=self.timeout).stock

    def set_reorder_point(self, sku: str, warehouse_code: str, reorder_point: int,
                          reorder_quantity: int) -> inv.StockLevel:
        request = inv.SetReorderPointRequest(sku=sku, warehouse_code=warehouse_code, reorder_point=reorder_point,
                                             reorder_quantity=reorder_quantity)
        return self.inventory.SetReorderPoint(request, timeout=self.timeout).stock

    # orders
    def place_order(self, customer_id: str, lines: Iterable[Line], currency_code: str = "EUR",
                    request_id: str | None = None) -> ord_pb.Order:
        request = ord_pb.PlaceOrderRequest(
            request_id=request_id or new_request_id(), customer_id=customer_id, currency_code=currency_code,
            lines=[ord_pb.OrderLine(sku=line.sku, warehouse_code=line.warehouse_code, quantity=line.quantity,
                                    unit_price=money_pb2.Money(currency_code=currency_code, amount=line.unit_price))
                   for line in lines])
        return self.orders.PlaceOrder(request, timeout=self.timeout).order

    def get_order(self, order_id: str) -> ord_pb.Order:
        return self.orders.GetOrder(ord_pb.GetOrderRequest(order_id=order_id), timeout=self.timeout).order

    def wait_for_order(self, order_id: str, timeout: float = 30.0, interval: float = 0.05) -> ord_pb.Order:
        """Polls until the order leaves PENDING; raises TimeoutError when it does not in time."""
        end = time.monotonic() + timeout
        while True:
            order = self.get_order(order_id)
            if order.status in FINAL_ORDER_STATES:
                return order
            if time.monotonic() >= end:
                raise TimeoutError(f"order {order_id} still {ord_pb.OrderStatus.Name(order.status)}")
            time.sleep(interval)

    def list_orders(self, customer_id: str = "", page_size: int = 50, page_token: str = "") -> ord_pb.ListOrdersResponse:
        request = ord_pb.ListOrdersRequest(customer_id=customer_id,
                                           page=paging_pb2.PageRequest(page_size=page_size, page_token=page_token))
        return self.orders.ListOrders(request, timeout=self.timeout)

    def order_timeline(self, order_id: str, page_size: int = 0) -> ord_pb.GetOrderTimelineResponse:
        """Every step of the order, all pages of them, with what it awaits now (from the last page)."""
        merged, token = ord_pb.GetOrderTimelineResponse(), ""
        while True:
            request = ord_pb.GetOrderTimelineRequest(
                order_id=order_id, page=paging_pb2.PageRequest(page_size=page_size, page_token=token))
            page = self.orders.GetOrderTimeline(request, timeout=self.timeout)
            merged.steps.extend(page.steps)
            token = page.next_page_token
            if not token:
                merged.order_id, merged.status = page.order_id, page.status
                merged.awaiting.extend(page.awaiting)
                return merged

    def cancel_order(self, order_id: str, reason: str) -> ord_pb.Order:
        request = ord_pb.CancelOrderRequest(order_id=order_id, reason=reason)
        return self.orders.CancelOrder(request, timeout=self.timeout).order

    def mark_shipped(self, order_id: str) -> ord_pb.Order:
        return self.orders.MarkShipped(ord_pb.MarkShippedRequest(order_id=order_id), timeout=self.timeout).order

    def wait_for(self, read, done, timeout: float = 30.0, interval: float = 0.05):
        """Polls read() until done(result) holds; raises TimeoutError with the last result."""
        end = time.monotonic() + timeout
        while True:
            result = read()
            if done(result):
                return result
            if time.monotonic() >= end:
                raise TimeoutError(f"condition not met in {timeout:.0f}s; last: {result}")
            time.sleep(interval)

    # crm
    def create_customer(self, customer_id: str, name: str, credit_limit: str, currency_code: str = "EUR", *,
                        email: str = "", webhook_url: str = "", payment_terms_days: int = 30) -> crm.Customer:
        customer = crm.Customer(customer_id=customer_id, name=name, email=email, webhook_url=webhook_url,
                                payment_terms_days=payment_terms_days,
                                credit_limit=money_pb2.Money(currency_code=currency_code, amount=credit_limit))
        # The response's webhook_secret (when webhook_url is set) is not returned here: call
        # set_webhook_url, which hands it back, to give a customer its webhook.
        return self.crm.CreateCustomer(crm.CreateCustomerRequest(customer=customer), timeout=self.timeout).customer

    def set_webhook_url(self, customer_id: str, webhook_url: str) -> crm.SetWebhookUrlResponse:
        """Sets (or, with "", removes) a customer's webhook; a new URL's signing secret is in the
        response's webhook_secret, this once: keep it where the receiver can read it."""
        return self.crm.SetWebhookUrl(crm.SetWebhookUrlRequest(customer_id=customer_id, webhook_url=webhook_url),
                                      timeout=self.timeout)

    def rotate_webhook_secret(self, customer_id: str, overlap_seconds: int | None = None) -> crm.RotateWebhookSecretResponse:
        """A new signing secret (in the response, this once); the old one keeps signing beside it for
        overlap_seconds (None: the service's default, a day; 0: it ends now)."""
        request = crm.RotateWebhookSecretRequest(customer_id=customer_id)
        if overlap_seconds is not None:
            request.overlap.FromSeconds(overlap_seconds)
        return self.crm.RotateWebhookSecret(request, timeout=self.timeout)

    def get_customer(self, customer_id: str) -> crm.GetCustomerResponse:
        return self.crm.GetCustomer(crm.GetCustomerRequest(customer_id=customer_id), timeout=self.timeout)

    # finance
    def invoices_for_order(self, order_id: str) -> list[fin.Invoice]:
        return list(self.finance.ListInvoices(fin.ListInvoicesRequest(order_id=order_id),
                                              timeout=self.timeout).invoices)

    def record_payment(self, invoice_id: str, amount: str, currency_code: str = "EUR",
                       request_id: str | None = None) -> fin.RecordPaymentResponse:
        request = fin.RecordPaymentRequest(request_id=request_id or new_request_id(), invoice_id=invoice_id,
                                           amount=money_pb2.Money(currency_code=currency_code, amount=amount))
        return self.finance.RecordPayment(request, timeout=self.timeout)

    def trial_balance(self, currency_code: str = "") -> fin.GetTrialBalanceResponse:
        return self.finance.GetTrialBalance(fin.GetTrialBalanceRequest(currency_code=currency_code),
                                            timeout=self.timeout)

    def record_supplier_bill(self, purchase_order_id: str, supplier_bill_number: str,
                             lines: Iterable[tuple[int, int, str]], currency_code: str = "EUR",
                             request_id: str | None = None) -> fin.SupplierBill:
        """lines: (purchase order line_no, quantity billed, unit price billed)."""
        request = fin.RecordSupplierBillRequest(
            request_id=request_id or new_request_id(), purchase_order_id=purchase_order_id,
            supplier_bill_number=supplier_bill_number,
            lines=[fin.SupplierBillLine(line_no=n, quantity=q, unit_price=money_pb2.Money(
                currency_code=currency_code, amount=price)) for n, q, price in lines])
        return self.finance.RecordSupplierBill(request, timeout=self.timeout).bill

    def pay_supplier_bill(self, bill_id: str, amount: str, currency_code: str = "EUR",
                          request_id: str | None = None) -> fin.PaySupplierBillResponse:
        request = fin.PaySupplierBillRequest(request_id=request_id or new_request_id(), bill_id=bill_id,
                                             amount=money_pb2.Money(currency_code=currency_code, amount=amount))
        return self.finance.PaySupplierBill(request, timeout=self.timeout)

    # notification
    def deliveries(self, customer_id: str = "", recipient: str = "") -> list[notif.Delivery]:
        request = notif.ListDeliveriesRequest(customer_id=customer_id, recipient=recipient)
        return list(self.notification.ListDeliveries(request, timeout=self.timeout).deliveries)

    # procurement
    def create_supplier(self, supplier_id: str, name: str, currency_code: str = "EUR", *, email: str = "",
                        webhook_url: str = "", payment_terms_days: int = 30) -> proc.Supplier:
        supplier = proc.Supplier(supplier_id=supplier_id, name=name, currency_code=currency_code, email=email,
                                 webhook_url=webhook_url, payment_terms_days=payment_terms_days)
        return self.procurement.CreateSupplier(proc.CreateSupplierRequest(supplier=supplier),
                                               timeout=self.timeout).supplier

    def set_supplier_price(self, supplier_id: str, sku: str, unit_price: str, currency_code: str = "EUR", *,
                           preferred: bool = False, min_quantity: int = 1, lead_time_days: int = 0) -> proc.SupplierPrice:
        price = proc.SupplierPrice(supplier_id=supplier_id, sku=sku, preferred=preferred, min_quantity=min_quantity,
                                   lead_time_days=lead_time_days,
                                   unit_price=money_pb2.Money(currency_code=currency_code, amount=unit_price))
        return self.procurement.SetSupplierPrice(proc.SetSupplierPriceRequest(price=price),
                                                 timeout=self.timeout).price

    def create_purchase_order(self, supplier_id: str, lines: Iterable[tuple[str, int, str]], *,
                              warehouse_code: str = "", currency_code: str = "EUR",
                              request_id: str | None = None) -> proc.PurchaseOrder:
        """lines: (sku, quantity, unit price or "" for the supplier's price)."""
        request = proc.CreatePurchaseOrderRequest(
            request_id=request_id or new_request_id(), supplier_id=supplier_id, warehouse_code=warehouse_code,
            lines=[proc.PurchaseOrderLine(sku=sku, quantity=quantity, unit_price=money_pb2.Money(
                currency_code=currency_code, amount=price) if price else None) for sku, quantity, price in lines])
        return self.procurement.CreatePurchaseOrder(request, timeout=self.timeout).purchase_order

    def get_purchase_order(self, purchase_order_id: str) -> proc.PurchaseOrder:
        return self.procurement.GetPurchaseOrder(proc.GetPurchaseOrderRequest(purchase_order_id=purchase_order_id),
                                                 timeout=self.timeout).purchase_order

    def submit_purchase_order(self, purchase_order_id: str, submitted_by: str) -> proc.PurchaseOrder:
        request = proc.SubmitPurchaseOrderRequest(purchase_order_id=purchase_order_id, submitted_by=submitted_by)
        return self.procurement.SubmitPurchaseOrder(request, timeout=self.timeout).purchase_order

    def approve_purchase_order(self, purchase_order_id: str, approver: str, comment: str = "") -> proc.PurchaseOrder:
        request = proc.ApprovePurchaseOrderRequest(purchase_order_id=purchase_order_id, approver=approver,
                                                   comment=comment)
        return self.procurement.ApprovePurchaseOrder(request, timeout=self.timeout).purchase_order

    def receive_goods(self, purchase_order_id: str, lines: Iterable[tuple[int, int]], received_by: str, *,
                      request_id: str | None = None, reference: str = "") -> proc.RecordGoodsReceiptResponse:
        """lines: (purchase order line_no, quantity received)."""
        request = proc.RecordGoodsReceiptRequest(
            request_id=request_id or new_request_id(), purchase_order_id=purchase_order_id,
            received_by=received_by, reference=reference,
            lines=[proc.GoodsReceiptLine(line_no=n, quantity=q) for n, q in lines])
        return self.procurement.RecordGoodsReceipt(request, timeout=self.timeout)

    def purchase_orders(self, supplier_id: str = "", status: int = 0) -> list[proc.PurchaseOrder]:
        request = proc.ListPurchaseOrdersRequest(supplier_id=supplier_id, status=status)
        return list(self.procurement.ListPurchaseOrders(request, timeout=self.timeout).purchase_orders)

    # health
    def health(self, service: str) -> str:
        """SERVING, NOT_SERVING, ... for one service, e.g. "inventory", or "gateway" (the gateway as a
        whole, asked at gateway_target). Through a gateway, a service's status is the gateway's answer."""
        if service == "gateway":
            channel, name = self._gateway_channel(), ""
        else:
            channel, name = self._channels[service], self.GRPC_SERVICES[service]
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=name),
                                                             timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def health_all(self) -> dict[str, str]:
        """Every service's status and the gateway's, by name; one that cannot be asked is reported by the
        call's status code (UNAVAILABLE, DEADLINE_EXCEEDED, NOT_FOUND for a name the server does not know)."""
        statuses = {}
        for service in (*self.SERVICES, "gateway"):
            try:
                statuses[service] = self.health(service)
            except grpc.RpcError as err:
                statuses[service] = err.code().name
            except TokenError:
                statuses[service] = "NO_TOKEN"
        return statuses
