"""Errors at the gateway's edges a caller can act on: a body nested too deeply is a 400."""
from __future__ import annotations

import pytest
import requests

from erp.orders.v1 import orders_pb2
from tests.integration.gateway_harness import Harness, RecordingBackend

GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
SCOPES = ["orders.read", "orders.write", "inventory.read"]


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
