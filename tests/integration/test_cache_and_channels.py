"""The Redis cache on real Redis (embedded and external), and deadline propagation
through the mesh's client interceptor to a real gRPC server."""
from __future__ import annotations

import time
import uuid
from concurrent import futures

import grpc
import pytest

from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc
from mesh import context
from mesh.cache import Cache
from mesh.interceptors import ClientInterceptor, ServerInterceptor


@pytest.fixture(params=["embedded", "external"])
def redis_url(request) -> str:
    return request.getfixturevalue(f"{request.param}_redis")


def test_an_older_version_never_replaces_a_newer_one(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=5)
    cache.set_if_newer("k", 2, b"two")
    cache.set_if_newer("k", 1, b"one")  # a slow reader arriving late
    assert cache.get_versioned("k") == (2, b"two")
    cache.set_if_newer("k", 3, b"three")
    assert cache.get_versioned("k") == (3, b"three")
    cache.delete("k")
    assert cache.get_versioned("k") is None
    cache.close()


def test_several_values_set_in_one_round_trip_keep_the_newer_version_rule(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=5)
    cache.set_if_newer("a", 5, b"a5")
    cache.set_many_if_newer([("a", 4, b"a4"), ("b", 1, b"b1"), ("c", 7, b"c7")])
    elsewhere = Cache(redis_url, prefix=cache.prefix, ttl_seconds=5)  # no in-process copy: what Redis holds
    assert [elsewhere.get_versioned(k) for k in "abc"] == [(5, b"a5"), (1, b"b1"), (7, b"c7")]
    cache.close()
    elsewhere.close()


def test_values_expire_after_the_ttl(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=0.2)
    cache.set_if_newer("k", 1, b"v")
    assert cache.get_versioned("k") == (1, b"v")
    time.sleep(0.4)
    assert cache.get_versioned("k") is None


def test_the_in_process_copy_is_fresh_for_own_writes_and_stale_at_most_its_ttl_for_others(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=2.0)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=2.0)  # another process
    there.set_if_newer("k", 1, b"one")
    assert here.get_versioned("k") == (1, b"one")  # read through Redis, now also kept in this process
    there.set_if_newer("k", 2, b"two")
    assert there.get_versioned("k") == (2, b"two")  # a process sees its own write at once
    assert here.get_versioned("k") == (1, b"one")  # the other one: the bound written down
    time.sleep(2.1)
    assert here.get_versioned("k") == (2, b"two")
    here.set_if_newer("k", 3, b"three")
    assert here.get_versioned("k") == (3, b"three")
    here.set_if_newer("k", 2, b"late reader")  # never replaces a newer value here either
    assert here.get_versioned("k") == (3, b"three")
    here.delete("k")
    assert here.get_versioned("k") is None
    here.close()
    there.close()


def test_a_dead_redis_makes_reads_miss_instead_of_fail():
    cache = Cache("redis://127.0.0.1:1/0", prefix="erptest", ttl_seconds=5)  # nothing listens on port 1
    assert cache.get_versioned("k") is None
    cache.set_if_newer("k", 1, b"v")
    cache.delete("k")
    assert not cache.ping()


class SlowInventory(inventory_pb2_grpc.InventoryServiceServicer):
    """Records the deadline each call arrived with."""

    def __init__(self) -> None:
        self.remaining: list[float] = []
        self.correlations: list[str] = []

    def GetStock(self, request, ctx):
        self.remaining.append(ctx.time_remaining())
        self.correlations.append(context.correlation_id.get())
        return inv.GetStockResponse(stock=inv.StockLevel(sku=request.sku))


def test_outgoing_calls_inherit_the_incoming_deadline_and_correlation_id():
    servicer = SlowInventory()
    server = grpc.server(futures.ThreadPoolExecutor(4), interceptors=[ServerInterceptor()])
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), ClientInterceptor(30.0))
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        stub.GetStock(inv.GetStockRequest(sku="A", warehouse_code="MAIN"))
        with context.scope(correlation="corr-1", timeout=0.5):  # as inside a call with 0.5 s left
            stub.GetStock(inv.GetStockRequest(sku="B", warehouse_code="MAIN"))
        channel.close()
    finally:
        server.stop(0)
    without, within = servicer.remaining
    # the default timeout; the grpc-timeout header's encoding can put it a little above (30.098 s seen in CI)
    assert 25 < without <= 30.2
    assert 0 < within <= 0.51  # capped by the caller's own deadline (clocks differ by microseconds)
    assert servicer.correlations[1] == "corr-1"
    assert servicer.correlations[0] not in ("", "corr-1")  # a fresh one when the caller has none
