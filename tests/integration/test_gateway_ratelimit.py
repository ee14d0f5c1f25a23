"""Rate limits at the gateway: GCRA per client and rate class in the real Redis."""
from __future__ import annotations

import socket

import grpc
import pytest
import requests
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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
