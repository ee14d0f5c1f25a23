"""The Redis cache on real Redis (embedded and external), and deadline propagation
through the mesh's client interceptor to a real gRPC server."""
from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from concurrent import futures

import grpc
import pytest
import redis
from prometheus_client import REGISTRY

from erp.inventory.v1 import inventory_pb2 as inv
from erp.inventory.v1 import inventory_pb2_grpc
from mesh import call_context
from mesh.cache import Cache
from mesh.interceptors import ClientInterceptor, ServerCalls
from tests import support


@pytest.fixture(params=support.REDIS_KINDS)
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
    # One call: "a" is older than what Redis holds; "c" comes twice, the older second; "d" the newer second.
    cache.set_many_if_newer([("a", 4, b"a4"), ("b", 1, b"b1"), ("c", 7, b"c7"), ("d", 2, b"d2"), ("c", 6, b"c6"),
                             ("d", 3, b"d3"), ("e", 5, b"e5:with:colons")])
    elsewhere = Cache(redis_url, prefix=cache.prefix, ttl_seconds=5)  # no in-process copy: what Redis holds
    assert [elsewhere.get_versioned(k) for k in "abcde"] == [
        (5, b"a5"), (1, b"b1"), (7, b"c7"), (3, b"d3"), (5, b"e5:with:colons")]
    assert all(0 < cache.client.pttl(cache._key(k)) <= 5000 for k in "abcde")  # each with the cache's lifetime
    cache.close()
    elsewhere.close()


def test_values_expire_after_the_ttl(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=0.2)
    cache.set_if_newer("k", 1, b"v")
    assert cache.get_versioned("k") == (1, b"v")
    time.sleep(0.4)
    assert cache.get_versioned("k") is None


def _load(version: int, value: bytes):
    return lambda: (version, value)


def _reads() -> Counter:
    return Counter({where: REGISTRY.get_sample_value("erp_cache_reads_total", {"where": where}) or 0
                    for where in ("local", "redis", "load")})


@contextlib.contextmanager
def _following(cache: Cache):
    """cache.follow_invalidations in a thread, as a service runs it, until the block ends."""
    stop = threading.Event()
    thread = threading.Thread(target=cache.follow_invalidations, args=(stop,), daemon=True)
    thread.start()
    support.wait_for("invalidations to be followed", lambda: cache.tracking)
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
        cache.close()


def test_without_invalidations_another_process_change_is_seen_within_the_local_ttl(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=1.0)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=1.0)  # another process
    there.set_if_newer("k", 1, b"one")
    assert here.read_through("k", _load(0, b"db")) == (1, b"one")  # via Redis, now also kept here
    there.set_if_newer("k", 2, b"two")
    assert there.read_through("k", _load(0, b"db")) == (2, b"two")  # a process sees its own write at once
    assert here.read_through("k", _load(0, b"db")) == (1, b"one")  # the other one: the bound written down
    time.sleep(1.1)
    assert here.read_through("k", _load(0, b"db")) == (2, b"two")
    here.close()
    there.close()


def test_a_write_in_one_process_drops_the_copies_of_the_others(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=0.1)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=0.1)
    with _following(here), _following(there):
        there.set_if_newer("k", 1, b"one")
        time.sleep(0.2)  # that write's own invalidation has reached here
        assert here.read_through("k", _load(0, b"db")) == (1, b"one")
        time.sleep(0.3)  # past local_ttl: with invalidations a copy lives as long as the Redis value
        before = _reads()
        assert here.read_through("k", _load(0, b"db")) == (1, b"one")
        assert _reads() - before == Counter(local=1)  # served from the copy, no Redis round trip
        there.set_many_if_newer([("k", 2, b"two"), ("other", 1, b"x")])
        support.wait_for("the copy to be dropped", lambda: here.local.get("k") is None)
        assert here.read_through("k", _load(0, b"db")) == (2, b"two")
        there.delete("k")
        support.wait_for("the copy to be dropped", lambda: here.local.get("k") is None)
        assert here.read_through("k", _load(7, b"from the database")) == (7, b"from the database")


def test_the_check_runs_before_the_key_leaves_the_process_and_not_on_a_kept_copy(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=5.0)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=5.0)
    there.set_if_newer("k", 1, b"one")  # in Redis, not kept here yet

    def refuse() -> None:
        raise ValueError("bad key")

    before = _reads()
    with pytest.raises(ValueError, match="bad key"):
        here.read_through("k", _load(0, b"db"), refuse)
    assert _reads() - before == Counter()  # neither Redis nor the loader was asked
    checked = []
    assert here.read_through("k", _load(0, b"db"), lambda: checked.append(1)) == (1, b"one")
    assert checked == [1]
    assert here.read_through("k", _load(0, b"db"), refuse) == (1, b"one")  # the copy kept here: no check
    here.close()
    there.close()


class _Loads:
    """A loader that counts its calls (each a read of the database), from any thread."""

    def __init__(self, version: int, value: bytes) -> None:
        self.version, self.value, self.calls = version, value, 0

    def __call__(self) -> tuple[int, bytes]:
        self.calls += 1
        return self.version, self.value


def test_a_value_read_near_its_end_is_loaded_again_in_the_background_and_lives_on(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=10)  # due in its last 1-2 s
    load = _Loads(1, b"one")
    assert cache.read_through("k", load) == (1, b"one")
    assert cache.read_through("k", load) == (1, b"one")
    assert load.calls == 1 and not cache._refreshing  # not due
    cache.client.pexpire(cache._key("k"), 600)  # its last 0.6 s
    before = _reads()
    assert cache.read_through("k", load) == (1, b"one")  # served at once, from Redis
    assert _reads() - before == Counter(redis=1)
    support.wait_for("the background refresh", lambda: load.calls == 2 and not cache._refreshing)
    assert cache.client.pttl(cache._key("k")) > 8000  # its lifetime renewed
    time.sleep(0.7)  # past the life it had: no caller loads it
    assert cache.read_through("k", load) == (1, b"one")
    assert load.calls == 2
    cache.close()


def test_keys_cached_together_come_due_apart():
    cache = Cache("redis://127.0.0.1:1/0", prefix="erptest", ttl_seconds=60)  # (no round trip here)
    windows = [cache._due_within(f"stock:MAIN:SKU-{i}") for i in range(1000)]
    assert all(6.0 <= w <= 12.0 for w in windows)  # within the last tenth to fifth of the 60 s
    assert max(windows) - min(windows) > 5.0
    assert cache._due_within("stock:MAIN:SKU-1") == windows[1]  # fixed for a key


def test_a_refresh_renews_only_the_value_it_read_and_never_brings_back_a_deleted_key(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=30)  # due in its last 3-6 s
    key = cache._key("k")

    def due(value: bytes) -> None:  # Redis holds value with under 3 s left
        cache.client.set(key, value, px=1000)

    due(b"2:two")
    assert cache._refresh("k", _load(1, b"one")) == "refused"  # read before a writer's commit: kept
    assert cache.get_versioned("k") == (2, b"two") and cache.client.pttl(key) <= 1000
    assert cache._refresh("k", _load(2, b"two, reordered")) == "refused"  # same version, another value:
    assert cache.get_versioned("k") == (2, b"two")  # left to expire (its writer deletes it)
    assert cache._refresh("k", _load(2, b"two")) == "renewed"
    assert cache.get_versioned("k") == (2, b"two") and cache.client.pttl(key) > 20_000
    assert cache._refresh("k", _load(3, b"three")) == "skipped"  # renewed already (by another replica)
    due(b"2:two")
    assert cache._refresh("k", _load(3, b"three")) == "renewed"
    assert cache.get_versioned("k") == (3, b"three")
    cache.client.delete(key)  # a writer deleted it
    assert cache._refresh("k", _load(3, b"three, stale")) == "skipped"
    assert cache.client.exists(key) == 0
    cache.close()


def test_a_key_deleted_while_its_refresh_read_the_database_is_not_brought_back(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=30)
    cache.client.set(cache._key("k"), b"2:two", px=1000)

    def load_then_a_writer_deletes() -> tuple[int, bytes]:
        cache.client.delete(cache._key("k"))  # the writer commits and deletes after this read
        return 2, b"two"

    assert cache._refresh("k", load_then_a_writer_deletes) == "refused"
    assert cache.client.exists(cache._key("k")) == 0
    cache.close()


def test_a_closed_cache_stops_refreshing(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=10)
    load = _Loads(1, b"one")
    cache.read_through("k", load)
    cache.client.pexpire(cache._key("k"), 800)
    cache.read_through("k", load)
    support.wait_for("the background refresh", lambda: load.calls == 2 and not cache._refreshing)
    refresher = cache._refresher
    cache.close()
    assert refresher is not None and not refresher.is_alive()
    cache._refresh_soon("k", load)  # after close: nothing queued
    assert not cache._refreshing


def test_a_refresh_that_fails_leaves_the_value_to_expire_and_the_next_reader_loads_it(redis_url):
    cache = Cache(redis_url, prefix="erptest-" + uuid.uuid4().hex[:8], ttl_seconds=10)
    assert cache.read_through("k", _load(1, b"one")) == (1, b"one")
    cache.client.pexpire(cache._key("k"), 400)

    def broken() -> tuple[int, bytes]:
        raise ConnectionError("database down")

    assert cache.read_through("k", broken) == (1, b"one")
    support.wait_for("the refresh to give up", lambda: not cache._refreshing)
    time.sleep(0.5)
    assert cache.read_through("k", _load(2, b"two")) == (2, b"two")  # expired: loaded by this reader
    cache.close()


def test_a_kept_copy_read_near_its_end_is_refreshed_once_and_lives_on(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=10, local_ttl_seconds=0.1)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=10)  # another process, which wrote it
    load = _Loads(1, b"one")
    with _following(here):
        there.set_if_newer("k", 1, b"one")
        there.client.pexpire(there._key("k"), 900)
        time.sleep(0.2)  # that write's invalidation has reached here
        for _ in range(20):  # the first reads Redis and keeps a copy that ends with it; all are due
            assert here.read_through("k", load) == (1, b"one")
        support.wait_for("the background refresh", lambda: load.calls == 1 and not here._refreshing)
        time.sleep(1.0)  # past the life it had: kept here or read from Redis, not loaded
        assert here.read_through("k", load) == (1, b"one")
        assert load.calls == 1
    here.close()
    there.close()


def test_a_kept_copy_never_outlives_the_redis_value_it_was_read_from(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=0.1)
    there = Cache(redis_url, prefix=prefix, ttl_seconds=0.5, local_ttl_seconds=0.1)  # writes short-lived values
    with _following(here):
        there.set_if_newer("k", 1, b"one")
        time.sleep(0.1)
        here.read_through("k", _load(0, b"db"))
        assert here.local.get("k") == (1, b"one")
        time.sleep(0.6)  # Redis may push the expiry's invalidation later than that; the copy is gone anyway
        assert here.local.get("k") is None
    there.close()


def test_a_lost_invalidation_connection_drops_the_copies_until_it_is_back(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    here = Cache(redis_url, prefix=prefix, ttl_seconds=30, local_ttl_seconds=0.1)
    with _following(here):
        here.set_if_newer("k", 1, b"one")
        time.sleep(0.2)
        here.read_through("k", _load(0, b"db"))
        assert here.local.get("k") == (1, b"one")
        admin = redis.Redis.from_url(redis_url)
        [tracker] = [c for c in admin.client_list() if c["name"] == f"invalidations:{prefix}"]
        admin.client_kill_filter(_id=tracker["id"])
        support.wait_for("the lost connection to be noticed", lambda: not here.tracking)
        assert here.local.get("k") is None
        support.wait_for("a new invalidation connection", lambda: here.tracking)
        admin.close()


def test_an_update_made_while_the_breaker_is_open_deletes_the_stale_value_once_redis_answers(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    writer = Cache(redis_url, prefix=prefix, ttl_seconds=60)
    elsewhere = Cache(redis_url, prefix=prefix, ttl_seconds=60)  # what Redis holds
    writer.set_if_newer("k", 1, b"one")
    writer._trip(redis.ConnectionError("a blip"))  # the breaker opens: the next update skips Redis
    writer.set_if_newer("k", 2, b"two")
    assert elsewhere.get_versioned("k") == (1, b"one")  # stale in Redis for now
    writer._open_until = 0.0  # the breaker closes
    writer.set_if_newer("other", 1, b"x")  # the next write settles what was left
    assert elsewhere.get_versioned("k") is None
    assert elsewhere.get_versioned("other") == (1, b"x")
    writer.close()
    elsewhere.close()


def test_a_process_following_invalidations_settles_without_waiting_for_its_next_write(redis_url):
    prefix = "erptest-" + uuid.uuid4().hex[:8]
    writer = Cache(redis_url, prefix=prefix, ttl_seconds=60, local_ttl_seconds=0.1)
    elsewhere = Cache(redis_url, prefix=prefix, ttl_seconds=60)
    with _following(writer):
        writer.set_if_newer("k", 1, b"one")
        writer._trip(redis.ConnectionError("a blip"))
        writer.delete("k")  # skipped while the breaker is open
        assert elsewhere.get_versioned("k") == (1, b"one")
        writer._open_until = 0.0
        support.wait_for("the stale value to be deleted", lambda: elsewhere.get_versioned("k") is None)
    elsewhere.close()


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
        self.correlations.append(call_context.correlation_id.get())
        return inv.GetStockResponse(stock=inv.StockLevel(sku=request.sku))


@pytest.mark.parametrize("installed", ["at registration", "as interceptor"])
def test_outgoing_calls_inherit_the_incoming_deadline_and_correlation_id(installed):
    servicer = SlowInventory()
    if installed == "as interceptor":
        server = grpc.server(futures.ThreadPoolExecutor(1), interceptors=[ServerCalls()])
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, server)
    else:  # as mesh.service does it
        server = grpc.server(futures.ThreadPoolExecutor(1))
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, ServerCalls().wrapping(server))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), ClientInterceptor(30.0))
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        stub.GetStock(inv.GetStockRequest(sku="A", warehouse_code="MAIN"))
        with call_context.scope(correlation="corr-1", timeout=0.5):  # as inside a call with 0.5 s left
            stub.GetStock(inv.GetStockRequest(sku="B", warehouse_code="MAIN"))
        stub.GetStock(inv.GetStockRequest(sku="C", warehouse_code="MAIN"))
        channel.close()
    finally:
        server.stop(0)
    without, within, _ = servicer.remaining
    # the default timeout; the grpc-timeout header's encoding can put it a little above (30.098 s seen in CI)
    assert 25 < without <= 30.2
    assert 0 < within <= 0.51  # capped by the caller's own deadline (clocks differ by microseconds)
    assert servicer.correlations[1] == "corr-1"
    assert servicer.correlations[0] not in ("", "corr-1")  # a fresh one when the caller has none
    # ids are not undone after a call (mesh.call_context.begin_call): each call has a context of its own,
    # so the next one on the same (only) worker thread does not inherit corr-1
    assert servicer.correlations[2] not in ("", "corr-1", servicer.correlations[0])


@pytest.mark.parametrize("engines", [f"pgbus-{kind}" for kind in support.POSTGRES_KINDS], indirect=True)
def test_two_inventory_processes_see_each_others_stock_changes_at_once(engines, tmp_path):
    """Copies that would otherwise live a minute: only Redis's invalidations make the
    second process see the first one's adjustment."""
    from mesh import service
    from services.inventory import service as inventory

    settings = support.settings_for("inventory", engines, tmp_path, cache_ttl_seconds=60.0, cache_local_seconds=60.0)
    writer, reader = service.start(inventory.spec(), settings), service.start(inventory.spec(), settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{writer.port}") as w, grpc.insecure_channel(f"127.0.0.1:{reader.port}") as r:
            writes, reads = inventory_pb2_grpc.InventoryServiceStub(w), inventory_pb2_grpc.InventoryServiceStub(r)
            writes.CreateProduct(inv.CreateProductRequest(product=inv.Product(sku="NEAR-1", name="n", unit_of_measure="EA")))
            writes.CreateWarehouse(inv.CreateWarehouseRequest(warehouse=inv.Warehouse(code="NEARWH", name="n")))

            def adjust(delta: int) -> None:
                writes.AdjustStock(inv.AdjustStockRequest(request_id=str(uuid.uuid4()), sku="NEAR-1",
                                                          warehouse_code="NEARWH", quantity_delta=delta, reason="count"))

            def on_hand() -> int:
                return reads.GetStock(inv.GetStockRequest(sku="NEAR-1", warehouse_code="NEARWH")).stock.on_hand

            support.wait_for("invalidations to be followed", lambda: reader.runtime.cache.tracking)
            adjust(5)
            support.wait_for("the first adjustment", lambda: on_hand() == 5)
            time.sleep(0.2)
            assert on_hand() == 5  # now kept in the reader's copy
            adjust(3)
            support.wait_for("the reader to see the second adjustment", lambda: on_hand() == 8, timeout=5.0)
    finally:
        support.stop_all([writer, reader])
