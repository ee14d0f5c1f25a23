"""The load tests' data set, and loading it through the public API (idempotently).

    .venv/bin/python -m loadtests.seed [--skus 4000]      # targets and token as `erp` reads them (ERP_TARGET...)

Catalog: LOAD-000001 ... in several warehouses (every SKU in MAIN, every 2nd in EAST, every 4th in WEST,
every 8th in NORTH), each stocked with a large quantity, plus one scarce SKU (LOAD-SCARCE in MAIN) whose
stock the order suite sets at its start so that concurrent orders really compete for it. Customers:
LOAD-CUST-001 ... with a large credit limit, and LOAD-CUST-TIGHT with a small one (its orders get rejected
by the credit check: the compensation path). Popularity is Zipf-like: a few SKUs get most lookups.

Loading twice changes nothing: creates are identical, adjustments carry fixed request ids, and a
BatchGetStock first finds what is already there.
"""
from __future__ import annotations

import argparse
import bisect
import itertools
import os
import random
import time
from collections.abc import Callable, Iterable

from erp.common.v1 import money_pb2
from erp.crm.v1 import crm_pb2 as crm
from erp.inventory.v1 import inventory_pb2 as inv

SKU_COUNT = int(os.environ.get("LOAD_SKUS", "4000"))
WAREHOUSES = [("MAIN", "Main warehouse", 1), ("EAST", "East distribution centre", 2),
              ("WEST", "West distribution centre", 4), ("NORTH", "North depot", 8)]
OPENING_STOCK = 1_000_000
SCARCE_SKU = "LOAD-SCARCE"
CUSTOMERS = [f"LOAD-CUST-{i:03d}" for i in range(1, 51)]
TIGHT_CUSTOMER = "LOAD-CUST-TIGHT"
CREDIT_LIMIT = "1000000000.00"
TIGHT_LIMIT = "100.00"
CALL_TIMEOUT = 10.0


def sku(i: int) -> str:
    return f"LOAD-{i:06d}"


def stock_keys(skus: int = SKU_COUNT) -> list[tuple[str, str]]:
    """Every (sku, warehouse) the catalog stocks, in a fixed order."""
    return [(sku(i), code) for i in range(1, skus + 1) for code, _, every in WAREHOUSES if i % every == 0 or every == 1]


def unit_price(s: str) -> str:
    """A stable price per SKU, 1.00 to 250.99."""
    h = sum(map(ord, s)) * 2654435761 % 25000
    return f"{1 + h / 100:.2f}"


class Zipf:
    """Draws items with probability proportional to 1/rank**s (the items are shuffled once, with a fixed
    seed, so popularity is not tied to SKU numbers)."""

    def __init__(self, items: list, s: float = 1.0, seed: int = 42) -> None:
        self.items = list(items)
        random.Random(seed).shuffle(self.items)
        self.cumulative = list(itertools.accumulate(1 / rank**s for rank in range(1, len(self.items) + 1)))

    def draw(self, rng: random.Random = random) -> object:
        return self.items[bisect.bisect_left(self.cumulative, rng.random() * self.cumulative[-1])]

    def share_of_top(self, n: int) -> float:
        return self.cumulative[n - 1] / self.cumulative[-1]


def _windowed(calls: Iterable[Callable[[], object]], window: int = 32) -> None:
    """Runs the calls (each returns a grpc future) with up to `window` in flight; raises the first error."""
    in_flight = []
    for call in calls:
        in_flight.append(call())
        if len(in_flight) >= window:
            in_flight.pop(0).result()
    for future in in_flight:
        future.result()


def seed_catalog(inventory, skus: int = SKU_COUNT, log=print) -> int:
    """Creates the warehouses, products and opening stock that are missing; returns how many stock rows
    it adjusted (0 when everything was there)."""
    started = time.monotonic()
    keys = stock_keys(skus)
    for code, name, _ in WAREHOUSES:
        inventory.CreateWarehouse(inv.CreateWarehouseRequest(warehouse=inv.Warehouse(code=code, name=name)),
                                  timeout=CALL_TIMEOUT)
    missing_stock: list[tuple[str, str]] = []
    missing_products: set[str] = set()
    for start in range(0, len(keys), 1000):
        chunk = keys[start:start + 1000]
        reply = inventory.BatchGetStock(inv.BatchGetStockRequest(
            keys=[inv.StockKey(sku=s, warehouse_code=w) for s, w in chunk]), timeout=CALL_TIMEOUT)
        missing_products |= {k.sku for k in reply.missing}
        have = {(x.sku, x.warehouse_code) for x in reply.stocks if x.on_hand > 0 or x.version > 0}
        missing_stock += [k for k in chunk if k not in have]
    products = sorted(missing_products | ({SCARCE_SKU} if skus else set()))
    _windowed(lambda s=s: inventory.CreateProduct.future(inv.CreateProductRequest(
        product=inv.Product(sku=s, name=f"Load test item {s}", unit_of_measure="EA")), timeout=CALL_TIMEOUT)
        for s in products)
    _windowed(lambda k=k: inventory.AdjustStock.future(inv.AdjustStockRequest(
        request_id=f"load-seed-{k[0]}-{k[1]}", sku=k[0], warehouse_code=k[1], quantity_delta=OPENING_STOCK,
        reason="load test opening stock"), timeout=CALL_TIMEOUT) for k in missing_stock)
    if missing_stock or products:
        log(f"seeded {len(products)} products, {len(missing_stock)} stock rows in {time.monotonic() - started:.1f}s")
    return len(missing_stock)


def seed_customers(customers_stub) -> None:
    def create(customer_id: str, limit: str):
        customer = crm.Customer(customer_id=customer_id, name=f"Load test customer {customer_id}",
                                email=f"{customer_id.lower()}@load.example", payment_terms_days=30,
                                credit_limit=money_pb2.Money(currency_code="EUR", amount=limit))
        return customers_stub.CreateCustomer.future(crm.CreateCustomerRequest(customer=customer), timeout=CALL_TIMEOUT)

    _windowed([lambda c=c: create(c, CREDIT_LIMIT) for c in CUSTOMERS] + [lambda: create(TIGHT_CUSTOMER, TIGHT_LIMIT)])


def set_available(inventory, sku_: str, warehouse: str, available: int, request_id: str) -> int:
    """Adjusts on hand so that exactly `available` units are free; returns the available quantity."""
    level = inventory.GetStock(inv.GetStockRequest(sku=sku_, warehouse_code=warehouse), timeout=CALL_TIMEOUT).stock
    delta = available - level.available
    if delta:
        level = inventory.AdjustStock(inv.AdjustStockRequest(
            request_id=request_id, sku=sku_, warehouse_code=warehouse, quantity_delta=delta,
            reason="load test: reset scarce stock"), timeout=CALL_TIMEOUT).stock
    return level.available


def main() -> int:
    from erp_client import ErpClient

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=SKU_COUNT)
    args = parser.parse_args()
    # Targets, TLS and token as the `erp` command reads them (ERP_TARGET for a gateway, ERP_TOKEN...).
    with ErpClient.from_env(timeout=CALL_TIMEOUT) as erp:
        seed_catalog(erp.inventory, args.skus)
        seed_customers(erp.crm)
    print(f"catalog ready: {len(stock_keys(args.skus))} stock rows, {len(CUSTOMERS) + 1} customers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
