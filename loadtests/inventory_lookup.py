"""Inventory lookups: single-SKU GetStock and BatchGetStock over a realistic catalog, with ~2% AdjustStock.

    locust -f loadtests/inventory_lookup.py --headless -u 50 -r 50 -t 30s

The catalog (loadtests/seed.py: thousands of SKUs in four warehouses) is loaded through the public API at
test start when it is missing. Popularity is Zipf-like (s = 1.0): with 4,000 SKUs the top 1% of stock rows
get about a third of the lookups, the long tail keeps missing the cache. Adjustments (+1/-1 on a popular
row, each with a fresh request id) invalidate cached rows the way real stock movements do, so the cache is
exercised honestly: after an adjustment the next GetStock must see the new level (checked).

Offered load: each user runs at LOAD_LOOKUP_RATE tasks per second (default 20), so `-u 50` offers
about 1,000 calls/s; LOAD_LOOKUP_RATE=0 runs flat out (wait nothing).
"""
from __future__ import annotations

import os
import random
import sys
import uuid
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import between, constant_throughput, events, task  # noqa: E402

from erp.inventory.v1 import inventory_pb2 as inv  # noqa: E402
from loadtests import seed  # noqa: E402
from loadtests.grpc_user import GrpcUser, channel_for  # noqa: E402

RATE = float(os.environ.get("LOAD_LOOKUP_RATE", "20"))
BATCH_SIZE = int(os.environ.get("LOAD_BATCH_SIZE", "50"))
KEYS = seed.Zipf(seed.stock_keys(), s=1.0)


@events.test_start.add_listener
def _seed(environment, **_):
    from locust.runners import WorkerRunner

    from erp.inventory.v1 import inventory_pb2_grpc

    if os.environ.get("LOAD_SKIP_SEED") or isinstance(environment.runner, WorkerRunner):
        return  # with several Locust processes the master seeds, once
    with channel_for("inventory", environment.host) as channel:
        seed.seed_catalog(inventory_pb2_grpc.InventoryServiceStub(channel))


class InventoryLookupUser(GrpcUser):
    services = ("inventory",)
    wait_time = constant_throughput(RATE) if RATE > 0 else between(0, 0)

    def on_start(self) -> None:
        self.rng = random.Random()

    @task(80)
    def get_stock(self) -> None:
        sku, warehouse = KEYS.draw(self.rng)
        self.inventory.GetStock(inv.GetStockRequest(sku=sku, warehouse_code=warehouse))

    @task(18)
    def batch_get_stock(self) -> None:
        keys = {KEYS.draw(self.rng) for _ in range(BATCH_SIZE)}
        self.inventory.BatchGetStock(inv.BatchGetStockRequest(
            keys=[inv.StockKey(sku=s, warehouse_code=w) for s, w in keys]))

    @task(2)
    def adjust_stock(self) -> None:
        sku, warehouse = KEYS.draw(self.rng)
        level = self.inventory.AdjustStock(inv.AdjustStockRequest(
            request_id=str(uuid.uuid4()), sku=sku, warehouse_code=warehouse,
            quantity_delta=self.rng.choice((-1, 1)), reason="load test cycle count")).stock
        seen = self.inventory.GetStock(inv.GetStockRequest(sku=sku, warehouse_code=warehouse)).stock
        # Read-your-write through the cache, reported every time (a success too): the verdict needs the row
        # to count how often it was checked, and a row that only appears on failure reads as "missing".
        stale = seen.version < level.version
        self.environment.events.request.fire(
            request_type="check", name="fresh after adjust", response_time=0, response_length=0,
            response=None, context={},
            exception=AssertionError(f"{sku}/{warehouse}: cache served version {seen.version} < {level.version}")
            if stale else None)
