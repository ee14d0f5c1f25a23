"""Cancellations racing their own orders, seen from outside: the consistency check of issue 14.

Starts a local mesh with several processes per service (as the chart's two replicas, and with
competing consumers on RabbitMQ too, unlike the default, so handlers race each other; --consumers),
places orders through the public API and cancels a share of them right after placement,
so that each order's OrderPlaced / OrderConfirmed and OrderCancelled reach the consumers together.
When every order has settled and every outbox is drained, it counts what must be zero:

- units still reserved by orders that are cancelled or rejected;
- cancelled orders with an invoice and no credit note;
- oversold balances and balances that differ from the stock ledger;
- orders still PENDING.

    .venv/bin/python -m loadtests.cancel_race --orders 600 --cancel-share 0.4 --processes 2

Exit status 0 when every count is zero, 1 otherwise. Only 127.0.0.1 engines (loadtests.localmesh).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import random
import sys
import time
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
import psycopg  # noqa: E402

from erp_client import ErpClient  # noqa: E402
from erp_client.client import Line  # noqa: E402
from loadtests import localmesh  # noqa: E402

SKUS = [f"RACE-{i:02d}" for i in range(20)]
CUSTOMERS = [f"RACE-CUST-{i:02d}" for i in range(10)]

CHECKS = {
    "units reserved by closed orders": """
        SELECT coalesce(sum(r.quantity), 0) FROM inventory.reservations r JOIN orders.orders o USING (order_id)
        WHERE r.status = 'reserved' AND o.status IN ('cancelled', 'rejected')""",
    "cancelled orders invoiced without a credit note": """
        SELECT count(*) FROM finance.invoices i JOIN orders.orders o USING (order_id)
        WHERE o.status = 'cancelled' AND NOT EXISTS (SELECT 1 FROM finance.credit_notes c WHERE c.order_id = i.order_id)""",
    "oversold balances": "SELECT count(*) FROM inventory.stock_balances WHERE reserved > on_hand OR reserved < 0",
    "balances not matching the ledger": """
        SELECT count(*) FROM inventory.stock_balances b LEFT JOIN (
            SELECT sku, warehouse_code, sum(on_hand_delta) oh, sum(reserved_delta) rs FROM inventory.stock_ledger
            GROUP BY 1, 2) s USING (sku, warehouse_code)
        WHERE coalesce(s.oh, 0) <> b.on_hand OR coalesce(s.rs, 0) <> b.reserved""",
    "orders still pending": "SELECT count(*) FROM orders.orders WHERE status = 'pending'",
}
SETTLING = """SELECT (SELECT count(*) FROM orders.orders WHERE status = 'pending')
    + (SELECT count(*) FROM orders.outbox WHERE published_at IS NULL)
    + (SELECT count(*) FROM inventory.outbox WHERE published_at IS NULL)
    + (SELECT count(*) FROM crm.outbox WHERE published_at IS NULL)
    + (SELECT count(*) FROM finance.outbox WHERE published_at IS NULL)"""
MOVES = "SELECT (SELECT count(*) FROM inventory.stock_ledger) + (SELECT count(*) FROM finance.journal_entries)"


def seed(client: ErpClient) -> None:
    client.create_warehouse("MAIN", "Main")
    for sku in SKUS:
        client.create_product(sku, sku)
        client.adjust_stock(sku, "MAIN", 1_000_000, reason="opening stock", request_id=f"open-{sku}")
    for customer in CUSTOMERS:
        client.create_customer(customer, customer, "1000000000.00", "EUR", email=f"{customer.lower()}@example.test")


def place_and_maybe_cancel(client: ErpClient, rng: random.Random, cancel_share: float) -> bool:
    lines = [Line(sku, rng.randint(1, 5), "10.00") for sku in rng.sample(SKUS, rng.randint(1, 3))]
    order = client.place_order(rng.choice(CUSTOMERS), lines, request_id=str(uuid.uuid4()))
    if rng.random() >= cancel_share:
        return False
    try:
        client.cancel_order(order.order_id, "changed their mind")
        return True
    except grpc.RpcError as err:  # already rejected: nothing to cancel
        if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
            raise
        return False


def wait_settled(database_url: str, timeout: float) -> float:
    """Seconds until no order is pending, every outbox is drained and nothing moved for 3 s."""
    start, last, still_since = time.monotonic(), None, time.monotonic()
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() - start < timeout:
            busy = conn.execute(SETTLING).fetchone()[0]
            moves = conn.execute(MOVES).fetchone()[0]
            if busy or moves != last:
                last, still_since = moves, time.monotonic()
            elif time.monotonic() - still_since >= 3:
                return time.monotonic() - start
            time.sleep(0.25)
    return -1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--cancel-share", type=float, default=0.4, help="share of orders cancelled right after placement")
    parser.add_argument("--processes", type=int, default=2, help="processes per service")
    parser.add_argument("--consumers", choices=("competing", "single"), default="competing",
                        help="ERP_AMQP_CONSUMERS of the mesh")
    parser.add_argument("--concurrency", type=int, default=16, help="orders placed at once")
    parser.add_argument("--settle-timeout", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    namespace = "race-" + uuid.uuid4().hex[:8]
    eng = localmesh.engines()
    eng = eng.database(namespace.replace("-", "_"))
    print(f"engines: {eng.description}; {args.processes} processes per service; namespace {namespace}")
    try:
        with localmesh.mesh(eng, namespace, processes=args.processes,
                            extra_env={"ERP_AMQP_CONSUMERS": args.consumers}) as targets:
            with ErpClient(**{f"{name}_target": t for name, t in targets.items()}) as client:
                seed(client)
                rng = random.Random(args.seed)
                seeds = [rng.random() for _ in range(args.orders)]
                started = time.monotonic()
                with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                    cancelled = sum(pool.map(
                        lambda s: place_and_maybe_cancel(client, random.Random(s), args.cancel_share), seeds))
                placed_in = time.monotonic() - started
                settled_in = wait_settled(eng.database_url, args.settle_timeout)
            with psycopg.connect(eng.database_url) as conn:
                found = {name: conn.execute(sql).fetchone()[0] for name, sql in CHECKS.items()}
    finally:
        if eng.amqp_url:
            localmesh.delete_amqp_namespace(eng.amqp_url, namespace)
        if eng.server_url:
            localmesh.drop_database(eng)
    print(f"{args.orders} orders placed in {placed_in:.1f} s, {cancelled} cancelled right after placement; "
          + (f"settled {settled_in:.1f} s later" if settled_in >= 0 else f"NOT settled after {args.settle_timeout:.0f} s"))
    for name, value in found.items():
        print(f"  {name:<50} {value}")
    ok = settled_in >= 0 and not any(found.values())
    print("verdict:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
