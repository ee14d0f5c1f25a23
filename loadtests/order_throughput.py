"""Order throughput: concurrent users place multi-line orders and follow each one until it is fully processed.

    locust -f loadtests/order_throughput.py --headless -u 100 -r 20 -t 60s

Each user places an order (1-5 lines of real catalog SKUs, Zipf-skewed, for one of the load test's
customers), then follows it: GetOrder until it is INVOICED (confirmed and invoiced) or REJECTED, then
ListDeliveries until the notification for it is sent (InvoiceIssued or OrderRejected, matched by the
order id in the subject; or given up after its last attempt). Reported rows:
  grpc  PlaceOrder         the placement RPC
  saga  order processed    placement start -> order final + invoice + notification sent; its
                           requests/s is the number of orders fully processed per second
  grpc  GetOrder / ListDeliveries   the follow-up polls (every LOAD_POLL_SECONDS, default 0.1 s: the saga
                           time is accurate to about that much)
About 3% of the orders also ask for LOAD-SCARCE, whose free stock is set to LOAD_SCARCE_UNITS (default
200) at test start, so concurrent orders really compete for the last units; about 2% come from a customer
with a 100 EUR credit limit, so the credit check rejects them and the reservation is compensated.

At test stop (the verdict; failures are reported as request_type "check" and make Locust exit with 3):
  * every order placed reached a final state (waits up to LOAD_DRAIN_SECONDS, default 30, for the rest);
  * nothing oversold: reserved <= on_hand for every SKU used (BatchGetStock), and the confirmed orders
    hold no more LOAD-SCARCE units than were free at the start;
  * invoices agree with orders: for a sample of invoiced orders, exactly one invoice whose total is the
    order's invoiced amount.
Each Locust process checks the orders it placed itself (standalone, or each worker when distributed).
"""
from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gevent  # noqa: E402
import grpc  # noqa: E402
from locust import between, events, task  # noqa: E402
from locust import stats as locust_stats  # noqa: E402

from erp.common.v1 import money_pb2  # noqa: E402
from erp.crm.v1 import crm_pb2_grpc  # noqa: E402
from erp.finance.v1 import finance_pb2 as fin  # noqa: E402
from erp.finance.v1 import finance_pb2_grpc  # noqa: E402
from erp.inventory.v1 import inventory_pb2 as inv  # noqa: E402
from erp.inventory.v1 import inventory_pb2_grpc  # noqa: E402
from erp.notification.v1 import notification_pb2 as notif  # noqa: E402
from erp.orders.v1 import orders_pb2 as ord_pb  # noqa: E402
from erp.orders.v1 import orders_pb2_grpc  # noqa: E402
from loadtests import seed  # noqa: E402
from loadtests.grpc_user import GrpcUser, channel_for  # noqa: E402

POLL_SECONDS = float(os.environ.get("LOAD_POLL_SECONDS", "0.1"))
SAGA_TIMEOUT = float(os.environ.get("LOAD_SAGA_TIMEOUT", "30"))
DRAIN_SECONDS = float(os.environ.get("LOAD_DRAIN_SECONDS", "30"))
SCARCE_UNITS = int(os.environ.get("LOAD_SCARCE_UNITS", "200"))
THINK = float(os.environ.get("LOAD_ORDER_THINK_SECONDS", "0"))
WAREHOUSE = "MAIN"
ORDER_SKUS = seed.Zipf([seed.sku(i) for i in range(1, seed.SKU_COUNT + 1)], s=0.8, seed=7)
PROCESSED = {ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_REJECTED, ord_pb.ORDER_STATUS_CANCELLED,
             ord_pb.ORDER_STATUS_SHIPPED, ord_pb.ORDER_STATUS_COMPLETED}
HOLDS_STOCK = {ord_pb.ORDER_STATUS_CONFIRMED, ord_pb.ORDER_STATUS_INVOICED, ord_pb.ORDER_STATUS_SHIPPED,
               ord_pb.ORDER_STATUS_COMPLETED}
NOTICE = {ord_pb.ORDER_STATUS_INVOICED: "erp.events.v1.InvoiceIssued",
          ord_pb.ORDER_STATUS_REJECTED: "erp.events.v1.OrderRejected"}


@dataclasses.dataclass
class Placed:
    order_id: str
    customer_id: str
    lines: list[tuple[str, str, int]]
    status: int = ord_pb.ORDER_STATUS_PENDING
    invoiced_amount: str = ""


class Registry:
    """What this process placed, for the end-of-test checks."""

    def __init__(self) -> None:
        self.orders: dict[str, Placed] = {}
        self.scarce_available = 0
        self.started = time.monotonic()
        self.processed = 0


REGISTRY = Registry()


def order_lines(rng: random.Random) -> list[tuple[str, str, int]]:
    skus: set[str] = set()
    for _ in range(rng.randint(1, 5)):
        skus.add(ORDER_SKUS.draw(rng))
    lines = [(s, WAREHOUSE, rng.randint(1, 3)) for s in sorted(skus)]
    if rng.random() < 0.03:
        lines.append((seed.SCARCE_SKU, WAREHOUSE, rng.randint(1, 2)))
    return lines


def place_request(customer_id: str, lines: list[tuple[str, str, int]]) -> ord_pb.PlaceOrderRequest:
    return ord_pb.PlaceOrderRequest(
        request_id=str(uuid.uuid4()), customer_id=customer_id, currency_code="EUR",
        lines=[ord_pb.OrderLine(sku=s, warehouse_code=w, quantity=q,
                                unit_price=money_pb2.Money(currency_code="EUR", amount=seed.unit_price(s)))
               for s, w, q in lines])


# A notification is done once sent, or given up after its last attempt; pending, it is still work to come.
SETTLED = (notif.DELIVERY_STATUS_DELIVERED, notif.DELIVERY_STATUS_FAILED)


def notified(notification_stub, placed: Placed, event_type: str) -> bool:
    reply = notification_stub.ListDeliveries(notif.ListDeliveriesRequest(customer_id=placed.customer_id))
    return any(d.event_type == event_type and placed.order_id in d.subject and d.status in SETTLED
               for d in reply.deliveries)


@events.test_start.add_listener
def _prepare(environment, **_):
    global REGISTRY
    REGISTRY = Registry()
    with channel_for("inventory", environment.host) as inv_channel, \
            channel_for("crm", environment.host) as crm_channel:
        inventory = inventory_pb2_grpc.InventoryServiceStub(inv_channel)
        if not os.environ.get("LOAD_SKIP_SEED"):
            seed.seed_catalog(inventory)
            seed.seed_customers(crm_pb2_grpc.CustomerServiceStub(crm_channel))
        REGISTRY.scarce_available = seed.set_available(inventory, seed.SCARCE_SKU, WAREHOUSE, SCARCE_UNITS,
                                                       request_id=f"load-scarce-{uuid.uuid4()}")
    REGISTRY.started = time.monotonic()


class OrderUser(GrpcUser):
    services = ("orders", "notification")
    wait_time = between(0, THINK) if THINK > 0 else between(0, 0)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task
    def place_and_follow(self) -> None:
        rng = self.rng
        customer = seed.TIGHT_CUSTOMER if rng.random() < 0.02 else rng.choice(seed.CUSTOMERS)
        lines = order_lines(rng)
        started = time.perf_counter()
        try:
            order = self.orders.PlaceOrder(place_request(customer, lines)).order
        except grpc.RpcError:
            return  # reported by the interceptor as a PlaceOrder failure
        placed = Placed(order.order_id, customer, lines, order.status)
        REGISTRY.orders[placed.order_id] = placed
        error = self.follow(placed, started)
        if error is None:
            REGISTRY.processed += 1
        self.report("saga", "order processed", started, error)

    def follow(self, placed: Placed, started: float) -> Exception | None:
        deadline = started + SAGA_TIMEOUT
        try:
            while placed.status not in PROCESSED:
                if time.perf_counter() > deadline:
                    return TimeoutError(f"order still {ord_pb.OrderStatus.Name(placed.status)} after {SAGA_TIMEOUT:.0f}s")
                gevent.sleep(POLL_SECONDS)
                order = self.orders.GetOrder(ord_pb.GetOrderRequest(order_id=placed.order_id)).order
                placed.status, placed.invoiced_amount = order.status, order.invoiced_amount.amount
            event_type = NOTICE.get(placed.status)
            while event_type and not notified(self.notification, placed, event_type):
                if time.perf_counter() > deadline:
                    return TimeoutError(f"no {event_type} notification after {SAGA_TIMEOUT:.0f}s")
                gevent.sleep(POLL_SECONDS)
        except grpc.RpcError as exc:
            return exc
        return None


def _check(environment, name: str, problems: list[str]) -> bool:
    environment.events.request.fire(
        request_type="check", name=name, response_time=0, response_length=0, response=None, context={},
        exception=AssertionError("; ".join(problems[:5]) + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""))
        if problems else None)
    print(f"check {name}: {'OK' if not problems else 'FAILED: ' + '; '.join(problems[:5])}", flush=True)
    return not problems


@events.test_stop.add_listener
def _verify(environment, **_):
    registry = REGISTRY
    if not registry.orders:
        return
    elapsed = time.monotonic() - registry.started
    orders_ch = channel_for("orders", environment.host)
    inv_ch = channel_for("inventory", environment.host)
    fin_ch = channel_for("finance", environment.host)
    try:
        orders = orders_pb2_grpc.OrderServiceStub(orders_ch)
        inventory = inventory_pb2_grpc.InventoryServiceStub(inv_ch)
        finance = finance_pb2_grpc.FinanceServiceStub(fin_ch)
        ok = True
        # 1. every order final (the ones users were still following when the test stopped, too)
        deadline = time.monotonic() + DRAIN_SECONDS
        open_orders = [p for p in registry.orders.values() if p.status not in PROCESSED]
        while open_orders and time.monotonic() < deadline:
            for placed in open_orders:
                order = orders.GetOrder(ord_pb.GetOrderRequest(order_id=placed.order_id), timeout=5).order
                placed.status, placed.invoiced_amount = order.status, order.invoiced_amount.amount
            open_orders = [p for p in open_orders if p.status not in PROCESSED]
            if open_orders:
                gevent.sleep(0.5)
        ok &= _check(environment, "no lost or stuck orders",
                     [f"{p.order_id} still {ord_pb.OrderStatus.Name(p.status)}" for p in open_orders])
        # 2. nothing oversold
        keys = sorted({(s, w) for p in registry.orders.values() for s, w, _ in p.lines})
        problems = []
        levels = {}
        for start in range(0, len(keys), 1000):
            reply = inventory.BatchGetStock(inv.BatchGetStockRequest(
                keys=[inv.StockKey(sku=s, warehouse_code=w) for s, w in keys[start:start + 1000]]), timeout=10)
            levels.update({(x.sku, x.warehouse_code): x for x in reply.stocks})
        problems += [f"{k[0]}/{k[1]}: reserved {x.reserved} > on hand {x.on_hand}"
                     for k, x in levels.items() if x.reserved > x.on_hand or x.available < 0]
        scarce_held = sum(q for p in registry.orders.values() if p.status in HOLDS_STOCK
                          for s, _, q in p.lines if s == seed.SCARCE_SKU)
        if scarce_held > registry.scarce_available:
            problems.append(f"{seed.SCARCE_SKU}: confirmed orders hold {scarce_held} units, "
                            f"only {registry.scarce_available} were free")
        ok &= _check(environment, "no oversell", problems)
        # 3. invoices agree with orders (a sample)
        invoiced = [p for p in registry.orders.values() if p.status == ord_pb.ORDER_STATUS_INVOICED]
        problems = []
        for placed in random.sample(invoiced, min(50, len(invoiced))):
            invoices = finance.ListInvoices(fin.ListInvoicesRequest(order_id=placed.order_id), timeout=5).invoices
            if len(invoices) != 1:
                problems.append(f"{placed.order_id}: {len(invoices)} invoices")
            elif Decimal(invoices[0].total.amount) != Decimal(placed.invoiced_amount or "0"):
                problems.append(f"{placed.order_id}: invoice {invoices[0].total.amount} != order {placed.invoiced_amount}")
        ok &= _check(environment, "invoices match orders", problems)
    except grpc.RpcError as exc:
        ok = _check(environment, "verification ran", [f"{exc.code().name}: {exc.details()}"])
    finally:
        for channel in (orders_ch, inv_ch, fin_ch):
            channel.close()
    by_status: dict[str, int] = {}
    for placed in registry.orders.values():
        name = ord_pb.OrderStatus.Name(placed.status).removeprefix("ORDER_STATUS_").lower()
        by_status[name] = by_status.get(name, 0) + 1
    print(f"orders placed {len(registry.orders)}, fully processed while followed {registry.processed} "
          f"({registry.processed / elapsed:.1f}/s over {elapsed:.0f}s); final states {by_status}; "
          f"LOAD-SCARCE free at start {registry.scarce_available}", flush=True)
    if not ok:
        environment.process_exit_code = 3
    # Locust's CSV writer snapshots the stats every CSV_STATS_INTERVAL_SEC and does not write again at
    # shutdown: give it one more round so the check rows above reach <prefix>_stats.csv.
    gevent.sleep(locust_stats.CSV_STATS_INTERVAL_SEC + 0.5)
