"""A NUL character in a string field is the caller's mistake (PostgreSQL refuses it in text):
INVALID_ARGUMENT naming the field, from a real service and through the gateway's REST edge
(400) alike, never INTERNAL."""
from __future__ import annotations

import grpc
import pytest
import requests

from erp.orders.v1 import orders_pb2 as ordpb
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness
from tests.integration.test_grpc_contract import field_violations


def order_with_sku(sku: str) -> ordpb.PlaceOrderRequest:
    request = ordpb.PlaceOrderRequest(request_id="r-nul", customer_id="CUST-1", currency_code="EUR",
                                      lines=[ordpb.OrderLine(sku=sku, warehouse_code="MAIN", quantity=1)])
    request.lines[0].unit_price.currency_code = "EUR"
    request.lines[0].unit_price.amount = "1.00"
    return request


def test_a_nul_in_a_request_is_invalid_argument_naming_the_field(embedded_mesh):
    client, _ = embedded_mesh
    with pytest.raises(grpc.RpcError) as info:
        client.orders.PlaceOrder(order_with_sku("CHAIR\x00OAK"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "lines[0].sku" in field_violations(info.value)
    client.orders.PlaceOrder(order_with_sku("CHAIR-OAK"), timeout=10)  # and the service still serves


@pytest.fixture
def orders(embedded_engines, tmp_path):
    with running_mesh(embedded_engines, tmp_path, services=("orders",), internal_auth=True,
                      internal_token_secret=SECRET) as (_client, started):
        yield f"127.0.0.1:{started['orders'].port}"


def test_a_nul_through_the_rest_edge_is_a_400_naming_the_field(orders, embedded_redis, tmp_path):
    gateway = Harness(embedded_redis, tmp_path, {"orders": orders})
    try:
        auth = {"Authorization": f"Bearer {gateway.issuer.token(['orders.read', 'orders.write'])}"}
        body = ('{"requestId": "r-1", "customerId": "CUST\\u00001", "currencyCode": "EUR", "lines": [{"sku": "A",'
                ' "warehouseCode": "MAIN", "quantity": "1", "unitPrice": {"currencyCode": "EUR", "amount": "1"}}]}')
        reply = requests.post(gateway.base_url + "/v1/orders", headers={**auth, "Content-Type": "application/json"},
                              data=body, timeout=10)
        assert reply.status_code == 400, reply.text
        assert reply.json()["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        bad = reply.json()["details"][0]
        assert bad["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert [v["field"] for v in bad["fieldViolations"]] == ["customer_id"]
        got = requests.get(gateway.base_url + "/v1/orders/abc%00def", headers=auth, timeout=10)
        assert got.status_code == 400, got.text
    finally:
        gateway.close()
