"""Placing orders through the generated stubs, on every engine set: the saga's first
hop (stock and credit in parallel), idempotent placement, and no oversell under
concurrency."""
from __future__ import annotations

import concurrent.futures
import uuid

import sqlalchemy as sa

from erp.orders.v1 import orders_pb2 as pb
from erp_client.client import Line
from services.inventory.adapters import ledger_mismatches


def stock_up(client, stock: dict[tuple[str, str], int], customers=("CUST-1",), limit="1000000.00") -> None:
    for code in {wh for _, wh in stock}:
        client.create_warehouse(code, f"Warehouse {code}")
    for (sku, wh), qty in stock.items():
        client.create_product(sku, f"Product {sku}")
        if qty:
            client.adjust_stock(sku, wh, qty, reason="opening stock")
    for customer_id in customers:
        client.create_customer(customer_id, f"Customer {customer_id}", limit, "EUR",
                               email=f"{customer_id.lower()}@example.test")


def assert_ledger_agrees(started) -> None:
    with started["inventory"].runtime.engine.connect() as conn:
        assert ledger_mismatches(conn) == []


def test_an_order_is_confirmed_when_every_line_is_reserved_and_credit_approved(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10, ("DESK", "MAIN"): 3})
    order = client.place_order("CUST-1", [Line("CHAIR", 4, "89.90"), Line("DESK", 1, "349.00")], "EUR")
    assert order.status == pb.ORDER_STATUS_PENDING
    assert order.total.amount == "708.60"
    order = client.wait_for_order(order.order_id, timeout=20)
    assert order.status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED)
    chair = client.get_stock("CHAIR", "MAIN")
    assert (chair.on_hand, chair.reserved, chair.available) == (10, 4, 6)
    assert_ledger_agrees(started)


def test_an_order_that_cannot_be_fully_reserved_is_rejected_and_reserves_nothing(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10, ("DESK", "MAIN"): 1})
    order = client.place_order("CUST-1", [Line("CHAIR", 2, "89.90"), Line("DESK", 2, "349.00")], "EUR")
    order = client.wait_for_order(order.order_id, timeout=20)
    assert order.status == pb.ORDER_STATUS_REJECTED
    assert "DESK@MAIN" in order.rejection_reason and "available 1" in order.rejection_reason
    assert client.get_stock("CHAIR", "MAIN").reserved == 0  # all or none
    unknown = client.wait_for_order(client.place_order("CUST-1", [Line("NOPE", 1, "1")]).order_id, timeout=20)
    assert unknown.status == pb.ORDER_STATUS_REJECTED and "unknown sku" in unknown.rejection_reason
    assert_ledger_agrees(started)


def test_placing_twice_with_one_request_id_creates_one_order(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10})
    request_id = str(uuid.uuid4())
    first = client.place_order("CUST-1", [Line("CHAIR", 1, "1.00")], request_id=request_id)
    again = client.place_order("CUST-1", [Line("CHAIR", 1, "1.00")], request_id=request_id)
    assert again.order_id == first.order_id
    client.wait_for_order(first.order_id, timeout=20)
    assert client.get_stock("CHAIR", "MAIN").reserved == 1


def test_fifty_concurrent_orders_for_ten_units_reserve_exactly_ten(mesh):
    client, started = mesh
    customers = [f"CUST-{i}" for i in range(7)]
    stock_up(client, {("SCARCE", "MAIN"): 10, ("PLENTY", "MAIN"): 1000, ("PLENTY", "EAST"): 1000},
             customers=customers)

    def place(i: int):
        # Lines in both orders and across warehouses, so concurrent multi-line
        # reservations cross each other's locks.
        lines = [Line("SCARCE", 1, "5.00"), Line("PLENTY", 1, "1.00"), Line("PLENTY", 2, "1.00", "EAST")]
        return client.place_order(customers[i % 7], lines if i % 2 else lines[::-1]).order_id

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(place, range(50)))
    final = [client.wait_for_order(order_id, timeout=60) for order_id in ids]
    statuses = [o.status for o in final]
    # Finance may already have invoiced a confirmed order.
    assert sum(s in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED) for s in statuses) == 10
    assert statuses.count(pb.ORDER_STATUS_REJECTED) == 40
    # Rejected orders release what they held: only the ten confirmed orders keep stock.
    client.wait_for(lambda: client.get_stock("PLENTY", "EAST"), lambda s: s.reserved == 20, timeout=30)
    scarce = client.get_stock("SCARCE", "MAIN")
    assert (scarce.on_hand, scarce.reserved, scarce.available) == (10, 10, 0)
    assert client.get_stock("PLENTY", "MAIN").reserved == 10
    with started["inventory"].runtime.engine.connect() as conn:
        negative = conn.execute(sa.text(
            "SELECT count(*) FROM stock_balances WHERE on_hand < 0 OR reserved > on_hand")).scalar()
    assert negative == 0
    assert_ledger_agrees(started)


def test_the_saga_shows_in_the_metrics_prometheus_scrapes(mesh):
    from mesh import metrics

    def sample(name: str, **labels) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    client, _ = mesh
    stock_up(client, {("CHAIR", "MAIN"): 5})
    place = {"grpc_type": "unary", "grpc_service": "erp.orders.v1.OrderService", "grpc_method": "PlaceOrder"}
    placed = sample("grpc_server_handled_total", **place, grpc_code="OK")
    order = client.wait_for_order(client.place_order("CUST-1", [Line("CHAIR", 1, "89.90")]).order_id, timeout=20)
    order = client.wait_for(lambda: client.get_order(order.order_id), lambda o: o.status == pb.ORDER_STATUS_INVOICED)
    assert sample("grpc_server_handled_total", **place, grpc_code="OK") == placed + 1
    assert sample("grpc_server_handling_seconds_count", **place) >= placed + 1
    # sampled from the orders table on scrape: this test's database holds this one order
    from services.orders.domain import OrderStatus
    assert {s.name: sample("erp_orders", service="orders", status=s.name) for s in OrderStatus} == \
        {s.name: float(s == OrderStatus.INVOICED) for s in OrderStatus}
    assert metrics.REGISTRY.get_sample_value("erp_orders", {"service": "orders", "status": "PENDING"}) == 0
    assert sample("erp_orders_oldest_pending_age_seconds", service="orders") == 0
    assert sample("erp_order_pending_deadline_seconds", service="orders") == 300
    assert sample("erp_serving", service="orders") == 1
    # the saga's consumers (inventory's and crm's answer to OrderPlaced) acked with a latency
    assert sample("erp_events_handled_total", consumer="inventory", event_type="erp.events.v1.OrderPlaced",
                  outcome="ack") >= 1
