"""Errors at the gateway's edges a caller can act on: a body nested too deeply is a 400, and
transport failures upstream (a closed port, a deadline) never show the caller addresses or
socket errors, over gRPC and REST alike; a status the service set itself passes as it is."""
from __future__ import annotations

import socket
import threading

import grpc
import pytest
import requests
from grpc_status import rpc_status

from erp.inventory.v1 import inventory_pb2
from erp.orders.v1 import orders_pb2
from mesh.errors import to_status
from tests.integration.gateway_harness import Harness, RecordingBackend

GET_STOCK = "/erp.inventory.v1.InventoryService/GetStock"
GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
SCOPES = ["orders.read", "orders.write", "inventory.read"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def backend():
    backend = RecordingBackend()
    yield backend
    backend.stop()


@pytest.fixture
def gateway(redis_server, tmp_path, backend):
    harness = Harness(redis_server, tmp_path, {"orders": f"127.0.0.1:{backend.port}",
                                               "inventory": f"127.0.0.1:{closed_port()}"},
                      env={"ERP_GATEWAY_MAX_DEADLINE_SECONDS": "1"})
    yield harness
    harness.close()


def rest(gateway, verb, path, **kwargs):
    headers = {"Authorization": f"Bearer {gateway.issuer.token(SCOPES)}", **kwargs.pop("headers", {})}
    return requests.request(verb, gateway.base_url + path, headers=headers, timeout=30, **kwargs)


@pytest.mark.parametrize("body", ["[" * 100_000, '{"lines": ' * 50_000, "[" * 100_000 + "]" * 100_000])
def test_a_body_nested_too_deeply_is_a_400_and_the_gateway_keeps_serving(gateway, backend, body):
    reply = rest(gateway, "POST", "/v1/orders", data=body, headers={"Content-Type": "application/json"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["message"] == "the request body is nested too deeply"
    assert backend.seen == []
    backend.replies[GET_ORDER] = orders_pb2.GetOrderResponse(order=orders_pb2.Order(order_id="x")).SerializeToString()
    assert rest(gateway, "GET", "/v1/orders/x").status_code == 200


def test_an_unreachable_service_is_a_generic_unavailable_over_grpc(gateway):
    request = inventory_pb2.GetStockRequest(sku="CHAIR", warehouse_code="MAIN").SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        gateway.call(GET_STOCK, request, token=gateway.issuer.token(SCOPES), timeout=30)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert info.value.details() == "inventory is unavailable, retry later"


def test_an_unreachable_service_is_a_generic_503_over_rest(gateway):
    reply = rest(gateway, "GET", "/v1/warehouses/MAIN/stock/CHAIR")
    assert reply.status_code == 503, reply.text
    assert reply.json()["message"] == "inventory is unavailable, retry later"
    assert "127.0.0.1" not in reply.text and "refused" not in reply.text.lower()


def test_a_deadline_upstream_is_a_generic_message_over_grpc_and_rest(gateway, backend):
    release = threading.Event()

    def stuck(request, ctx):
        release.wait(30)
        return b""

    backend.replies[GET_ORDER] = stuck
    try:
        request = orders_pb2.GetOrderRequest(order_id="x").SerializeToString()
        with pytest.raises(grpc.RpcError) as info:
            gateway.call(GET_ORDER, request, token=gateway.issuer.token(SCOPES), timeout=30)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert info.value.details() == "deadline exceeded calling orders"
        reply = rest(gateway, "GET", "/v1/orders/x")
        assert reply.status_code == 504, reply.text
        assert reply.json()["message"] == "deadline exceeded calling orders"
    finally:
        release.set()


def test_a_services_own_unavailable_passes_but_a_bare_one_is_replaced(gateway, backend):
    own = "the database is unavailable right now (request id r-1); retry"

    def deliberate(request, ctx):
        ctx.abort_with_status(rpc_status.to_status(to_status(grpc.StatusCode.UNAVAILABLE, own)))

    backend.replies[GET_ORDER] = deliberate
    request = orders_pb2.GetOrderRequest(order_id="x").SerializeToString()
    with pytest.raises(grpc.RpcError) as info:
        gateway.call(GET_ORDER, request, token=gateway.issuer.token(SCOPES), timeout=30)
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAVAILABLE, own)
    assert rest(gateway, "GET", "/v1/orders/x").json()["message"] == own

    def bare(request, ctx):  # as a proxy on the way would answer: no google.rpc.Status, addresses in the text
        ctx.abort(grpc.StatusCode.UNAVAILABLE, "upstream connect error: ipv4:10.0.0.7:50052 Connection refused")

    backend.replies[GET_ORDER] = bare
    with pytest.raises(grpc.RpcError) as info:
        gateway.call(GET_ORDER, request, token=gateway.issuer.token(SCOPES), timeout=30)
    assert info.value.details() == "orders is unavailable, retry later"
    assert rest(gateway, "GET", "/v1/orders/x").json()["message"] == "orders is unavailable, retry later"
