"""gRPC at the edge: what the gateway forwards to the service and back."""
from __future__ import annotations

import dataclasses
import time

import grpc
import pytest
import requests
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from erp.orders.v1 import orders_pb2
from mesh import access
from tests.integration.gateway_harness import Harness, RecordingBackend

GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
LIST_ORDERS = "/erp.orders.v1.OrderService/ListOrders"


@pytest.fixture
def backend():
    backend = RecordingBackend()
    yield backend
    backend.stop()


@pytest.fixture
def gateway(redis_server, tmp_path, backend):
    harness = Harness(redis_server, tmp_path, {"orders": f"127.0.0.1:{backend.port}"})
    yield harness
    harness.close()


def token(gateway):
    return gateway.issuer.token(["orders.read"])


def test_request_and_response_bytes_are_forwarded_unchanged(gateway, backend):
    # Field 1 twice and an unknown field 99: re-serializing would merge, reorder or drop them.
    request = orders_pb2.GetOrderRequest(order_id="a").SerializeToString() + b"\x0a\x01b" + b"\x98\x06\x07"
    reply = orders_pb2.GetOrderResponse(order=orders_pb2.Order(order_id="x", version=3)).SerializeToString() \
        + b"\xf8\x06\x2a"
    backend.replies[GET_ORDER] = reply
    response, _ = gateway.call(GET_ORDER, request, token=token(gateway))
    assert backend.seen[-1].request == request
    assert response == reply


def test_the_deadline_reaches_the_service_and_is_capped(gateway, backend):
    # grpc-timeout travels rounded up (to 10 ms from 1 s on, 100 ms from 10 s), twice on the way here,
    # so a deadline can arrive a little above itself: 7 s, not the cap of 30
    gateway.call(GET_ORDER, token=token(gateway), timeout=7)
    assert 0 < backend.seen[-1].time_remaining <= 7.1
    gateway.call(GET_ORDER, token=token(gateway), timeout=3600)
    assert 0 < backend.seen[-1].time_remaining <= 31, "capped at ERP_GATEWAY_MAX_DEADLINE_SECONDS"
    gateway.call(GET_ORDER, token=token(gateway), timeout=None)
    assert 0 < backend.seen[-1].time_remaining <= 31, "a call without a deadline gets the cap"


def test_cancellation_reaches_the_service(gateway, backend):
    def hang(_request, ctx):
        while ctx.is_active():
            time.sleep(0.01)
        backend.cancelled.set()
        return b""

    backend.replies[GET_ORDER] = hang
    md = [("authorization", f"Bearer {token(gateway)}")]
    future = gateway.channel.unary_unary(GET_ORDER).future(b"", metadata=md, timeout=60)
    while not backend.seen:
        time.sleep(0.01)
    future.cancel()
    assert backend.cancelled.wait(20), "the service's call was not cancelled"


def test_status_details_and_trailers_come_back(gateway, backend):
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="order_id", description="is required")])
    packed = any_pb2.Any()
    packed.Pack(bad)

    def fail(_request, ctx):
        status = rpc_status.to_status(status_pb2.Status(code=3, message="order_id: is required", details=[packed]))
        # abort_with_status sends the status's trailers only: add the service's own one to them
        ctx.abort_with_status(status._replace(trailing_metadata=(("x-service-note", "kept"), *status.trailing_metadata)))

    backend.replies[GET_ORDER] = fail
    with pytest.raises(grpc.RpcError) as caught:
        gateway.call(GET_ORDER, token=token(gateway))
    err = caught.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details() == "order_id: is required"
    status = rpc_status.from_call(err)
    got = error_details_pb2.BadRequest()
    status.details[0].Unpack(got)
    assert got == bad
    assert ("x-service-note", "kept") in tuple(err.trailing_metadata())


def test_initial_metadata_of_the_service_comes_back(gateway, backend):
    def reply(_request, ctx):
        ctx.send_initial_metadata((("x-served-by", "orders-1"),))
        return b""

    backend.replies[GET_ORDER] = reply
    _, call = gateway.call(GET_ORDER, token=token(gateway))
    assert ("x-served-by", "orders-1") in tuple(call.initial_metadata())


def test_internal_error_text_never_reaches_the_caller(gateway, backend):
    backend.replies[GET_ORDER] = lambda _r, ctx: ctx.abort(grpc.StatusCode.INTERNAL, "psycopg: password=hunter2")
    with pytest.raises(grpc.RpcError) as caught:
        gateway.call(GET_ORDER, token=token(gateway))
    assert caught.value.code() == grpc.StatusCode.INTERNAL and "hunter2" not in caught.value.details()


def test_unknown_methods_are_unimplemented(gateway, backend):
    for method in ("/erp.orders.v1.OrderService/DropAllOrders", "/grpc.other.v1.X/Y", "/nonsense"):
        with pytest.raises(grpc.RpcError) as caught:
            gateway.call(method, token=token(gateway))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert backend.seen == []


def test_internal_only_methods_are_refused_over_grpc_and_rest(redis_server, tmp_path, backend):
    rules = dict(access.table())
    rules[LIST_ORDERS] = dataclasses.replace(rules[LIST_ORDERS], internal_only=True)
    harness = Harness(redis_server, tmp_path, {"orders": f"127.0.0.1:{backend.port}"}, rules=rules)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            harness.call(LIST_ORDERS, token=token(harness))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        response = requests.get(f"{harness.base_url}/v1/orders", timeout=10,
                                headers={"Authorization": f"Bearer {token(harness)}"})
        # no GET route left on /v1/orders; PlaceOrder's POST is still there
        assert response.status_code == 405 and response.headers["Allow"] == "POST"
        assert backend.seen == []
        harness.call(GET_ORDER, token=token(harness))  # its neighbours still pass
        assert len(backend.seen) == 1
    finally:
        harness.close()


def test_health_and_reflection_answer_at_the_gateway(gateway):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(gateway.channel)
    assert stub.Check(health_pb2.HealthCheckRequest(service="erp.gateway"), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING


def test_calls_through_the_gateway_are_counted(gateway):
    from mesh import metrics

    service, method = GET_ORDER.lstrip("/").split("/")
    rpc = {"grpc_type": "unary", "grpc_service": service, "grpc_method": method}

    def counts():
        sample = metrics.REGISTRY.get_sample_value
        return (sample("grpc_server_started_total", rpc),
                sample("grpc_server_handled_total", {**rpc, "grpc_code": "OK"}),
                sample("grpc_server_handled_total", {**rpc, "grpc_code": "UNAUTHENTICATED"}),
                sample("grpc_client_handled_total", {**rpc, "grpc_code": "OK"}),
                sample("http_requests_total", {"method": "GET", "handler": "/v1/orders/{order_id}", "status": "401"}),
                sample("http_request_duration_seconds_count", {"method": "GET", "handler": "/v1/orders/{order_id}"}))

    gateway.call(GET_ORDER, token=token(gateway))  # every series exists from here on
    before = counts()
    gateway.call(GET_ORDER, token=token(gateway))
    with pytest.raises(grpc.RpcError):
        gateway.call(GET_ORDER)
    requests.get(f"{gateway.base_url}/v1/orders/o-1", timeout=10)
    # two started, one OK and one refused at the edge, one upstream call, one REST 401 (0 before: None)
    assert counts() == (before[0] + 2, before[1] + 1, (before[2] or 0) + 1, before[3] + 1,
                        (before[4] or 0) + 1, (before[5] or 0) + 1)
