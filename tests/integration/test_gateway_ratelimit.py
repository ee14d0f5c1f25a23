"""Rate limits at the gateway: GCRA per client and rate class in the real Redis, spent
from local leases (services/gateway/ratelimit.py)."""
from __future__ import annotations

import asyncio
import socket
import uuid

import grpc
import pytest
import redis.asyncio as aioredis
import requests
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.gateway.config import RateLimit
from services.gateway.ratelimit import GCRA, RateLimiter, lease_cells
from tests.integration.gateway_harness import Harness, RecordingBackend

GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
PLACE = "/erp.orders.v1.OrderService/PlaceOrder"
BURST = 50
# One call per 1000 s sustained: within a test only the burst can pass, whatever the timing.
LIMITS = {"ERP_GATEWAY_RATE_LIMITS": f"read=0.001/{BURST},write=0.001/2,report=1/1"}


@pytest.fixture
def backend():
    backend = RecordingBackend()
    yield backend
    backend.stop()


@pytest.fixture
def gateway(redis_server, tmp_path, backend):
    harness = Harness(redis_server, tmp_path, {"orders": f"127.0.0.1:{backend.port}"}, env=LIMITS)
    yield harness
    harness.close()


def retry_delay(err: grpc.RpcError) -> float:
    info = error_details_pb2.RetryInfo()
    assert rpc_status.from_call(err).details[0].Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


def test_exactly_the_burst_passes_under_300_concurrent_calls(gateway, backend):
    token = gateway.issuer.token(["orders.read"])
    md = [("authorization", f"Bearer {token}")]
    calls = [gateway.channel.unary_unary(GET_ORDER).future(b"", metadata=md, timeout=60) for _ in range(300)]
    for call in calls:
        call.exception()  # waits for it to finish
    failures = [c.exception() for c in calls if c.exception() is not None]
    assert 300 - len(failures) == BURST
    assert {f.code() for f in failures} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert all(990 <= retry_delay(f) <= 1000 for f in failures), "RetryInfo says when the next call may pass"
    assert len(backend.seen) == BURST


def test_rest_gets_429_with_a_right_retry_after(gateway):
    headers = {"Authorization": f"Bearer {gateway.issuer.token(['orders.write'])}"}
    assert requests.post(gateway.base_url + "/v1/orders:none", timeout=10, headers=headers).status_code == 404
    passed = [requests.post(gateway.base_url + "/v1/orders/o-1:cancel", json={}, timeout=10, headers=headers)
              for _ in range(3)]
    assert [r.status_code for r in passed] == [200, 200, 429]
    refused = passed[-1]
    assert refused.json()["code"] == 8
    # the write class: burst 2, one call per 1000 s; rounded up to whole seconds
    assert 990 <= int(refused.headers["Retry-After"]) <= 1000


def test_clients_and_classes_are_isolated(gateway):
    def call(client_id, method=GET_ORDER, scopes=("orders.read", "orders.write")):
        token = gateway.issuer.token(list(scopes), client_id=client_id)
        try:
            gateway.call(method, token=token)
            return "ok"
        except grpc.RpcError as err:
            return err.code().name

    assert [call("greedy") for _ in range(BURST + 1)][-2:] == ["ok", "RESOURCE_EXHAUSTED"]
    assert call("modest") == "ok", "another client has its own budget"
    assert call("greedy", PLACE) == "ok", "another rate class has its own budget"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("mode, expected", [("open", "ok"), ("closed", "UNAVAILABLE")])
def test_with_redis_down_the_limiter_fails_as_configured(tmp_path, backend, mode, expected):
    harness = Harness(f"redis://127.0.0.1:{closed_port()}/0", tmp_path, {"orders": f"127.0.0.1:{backend.port}"},
                      env={**LIMITS, "ERP_GATEWAY_RATE_LIMIT_WHEN_REDIS_DOWN": mode})
    try:
        results = []
        for _ in range(3):
            try:
                harness.call(GET_ORDER, token=harness.issuer.token(["orders.read"]))
                results.append("ok")
            except grpc.RpcError as err:
                results.append(err.code().name)
        assert results == [expected] * 3
        # authentication never depends on Redis: no token is refused either way
        with pytest.raises(grpc.RpcError) as caught:
            harness.call(GET_ORDER)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        harness.close()


# The limiter itself, replicas as several RateLimiters on one real Redis. One cell per 1000 s
# sustained: within a test only the burst exists, so every count below is exact.
SLOW = RateLimit(0.001, 100)


def limiters(redis_url: str, *lease_sizes: int, limit: RateLimit = SLOW) -> list[RateLimiter]:
    """Replicas sharing one limit in Redis, each taking leases of at most the given size (64: the default)."""
    prefix = "erptest:rl:" + uuid.uuid4().hex
    return [RateLimiter(redis_url, {"read": limit}, prefix=prefix, max_lease_cells=most) for most in lease_sizes]


async def closing(items):
    for limiter in items:
        await limiter.close()


def count_round_trips(limiter: RateLimiter) -> list[int]:
    trips = [0]
    script = limiter.script

    async def counted(**kwargs):
        trips[0] += 1
        return await script(**kwargs)

    limiter.script = counted
    return trips


def test_a_lease_is_a_tenth_of_the_burst_from_1_to_64_cells():
    assert [lease_cells(RateLimit(1, burst)) for burst in (1, 5, 19, 20, 100, 640, 10_000)] == [1, 1, 1, 2, 10, 64, 64]
    assert lease_cells(RateLimit(1, 100), most=4) == 4


def test_replicas_share_one_limit(redis_server):
    """Two gateway replicas, each spending leased cells, admit exactly the burst between them."""
    async def run():
        a, b = limiters(redis_server, 64, 64)
        try:
            allowed = {"a": 0, "b": 0}
            for _ in range(150):
                for name, limiter in (("a", a), ("b", b)):
                    allowed[name] += (await limiter.check("client:c", "read")).allowed
            return allowed
        finally:
            await closing((a, b))

    allowed = asyncio.run(run())
    assert sum(allowed.values()) == SLOW.burst
    assert allowed["a"] >= 40 and allowed["b"] >= 40, "both replicas take leases from the same budget"


def test_a_replica_takes_one_lease_at_a_time_and_spends_it_before_asking_again(redis_server):
    async def run():
        greedy, exact = limiters(redis_server, 64, 1)
        trips = count_round_trips(greedy)
        try:
            first = await greedy.check("client:c", "read")
            after_one = trips[0]
            # the other replicas see the lease's cells gone from the shared budget at once
            rest = [(await exact.check("client:c", "read")).allowed for _ in range(100)]
            # the cells in hand are spent without Redis, then the shared limit refuses
            held = [(await greedy.check("client:c", "read")).allowed for _ in range(20)]
            return first.allowed, after_one, sum(rest), held, trips[0]
        finally:
            await closing((greedy, exact))

    first, after_one, rest, held, trips = asyncio.run(run())
    lease = lease_cells(SLOW)
    assert first and after_one == 1
    assert rest == SLOW.burst - lease
    assert held == [True] * (lease - 1) + [False] * (21 - lease)
    assert trips == 2, "nine calls from the lease, then one refusal kept locally for the other ten"


def test_concurrent_calls_wait_for_one_lease_and_admit_exactly_the_burst(redis_server):
    async def run():
        limiter, = limiters(redis_server, 64)
        trips = count_round_trips(limiter)
        try:
            decisions = await asyncio.gather(*(limiter.check("client:c", "read") for _ in range(300)))
            return decisions, trips[0]
        finally:
            await closing((limiter,))

    decisions, trips = asyncio.run(run())
    assert sum(d.allowed for d in decisions) == SLOW.burst
    refused = [d for d in decisions if not d.allowed]
    assert all(990 <= d.retry_after_seconds <= 1000 and not d.redis_down for d in refused)
    assert trips == SLOW.burst // lease_cells(SLOW) + 1, "ten leases one after the other, then one refusal"


def test_a_lease_takes_what_is_left_when_less_than_a_lease_is(redis_server):
    async def run():
        exact, leasing = limiters(redis_server, 1, 64)
        trips = count_round_trips(leasing)
        try:
            assert sum([(await exact.check("c", "read")).allowed for _ in range(95)]) == 95
            return [(await leasing.check("c", "read")).allowed for _ in range(20)], trips[0]
        finally:
            await closing((exact, leasing))

    granted, trips = asyncio.run(run())
    assert granted == [True] * 5 + [False] * 15
    assert trips == 2, "one lease of the 5 cells left, then one refusal"


@pytest.mark.parametrize("mode", ["open", "closed"])
def test_cells_in_hand_are_spent_when_redis_goes_away_then_it_fails_as_configured(redis_server, mode):
    async def run():
        limiter, = limiters(redis_server, 64)
        limiter.when_redis_down = mode
        try:
            first = await limiter.check("c", "read")
            # Redis goes away: the limiter's connection now leads to a closed port
            await limiter.close()
            limiter.client = aioredis.Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_timeout=0.25,
                                                     socket_connect_timeout=0.25)
            limiter.script = limiter.client.register_script(GCRA)
            return [first, *[await limiter.check("c", "read") for _ in range(11)]]
        finally:
            await limiter.close()

    decisions = asyncio.run(run())
    lease = lease_cells(SLOW)
    assert [d.allowed for d in decisions[:lease]] == [True] * lease
    assert all(not d.redis_down for d in decisions[:lease])
    assert all(d.redis_down and d.allowed == (mode == "open") for d in decisions[lease:])
