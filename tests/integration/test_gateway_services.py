"""The gateway in front of the real services, which check its internal token
(ERP_INTERNAL_AUTH): reached directly, around the gateway, they refuse."""
from __future__ import annotations

from concurrent import futures

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2, health_pb2_grpc

from erp.orders.v1 import orders_pb2, orders_pb2_grpc
from mesh import access, call_context, identity
from mesh.interceptors import InternalAuth, ServerCalls
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness

GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"


@pytest.fixture
def orders(embedded_engines, tmp_path):
    with running_mesh(embedded_engines, tmp_path, services=("orders",), internal_auth=True,
                      internal_token_secret=SECRET) as (_client, started):
        yield f"127.0.0.1:{started['orders'].port}"


def direct(target, token=None):
    with grpc.insecure_channel(target) as channel:
        md = [(identity.HEADER, token)] if token else []
        return orders_pb2_grpc.OrderServiceStub(channel).GetOrder(
            orders_pb2.GetOrderRequest(order_id="00000000-0000-0000-0000-000000000000"), metadata=md, timeout=10)


def code_of(fn, *args) -> grpc.StatusCode:
    try:
        fn(*args)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def test_a_service_called_directly_without_the_internal_token_refuses(orders):
    reader = identity.Identity("user-1", frozenset({"orders.read"}))
    assert code_of(direct, orders) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(direct, orders, "forged") == grpc.StatusCode.UNAUTHENTICATED
    other_secret = identity.mint("another-secret-of-32-bytes-or-more!!", reader, GET_ORDER)
    assert code_of(direct, orders, other_secret) == grpc.StatusCode.UNAUTHENTICATED
    for_another_method = identity.mint(SECRET, reader, "/erp.orders.v1.OrderService/ListOrders")
    assert code_of(direct, orders, for_another_method) == grpc.StatusCode.UNAUTHENTICATED
    without_scope = identity.mint(SECRET, identity.Identity("user-1", frozenset({"orders.write"})), GET_ORDER)
    assert code_of(direct, orders, without_scope) == grpc.StatusCode.PERMISSION_DENIED
    # the right token passes the interceptor: the order does not exist
    assert code_of(direct, orders, identity.mint(SECRET, reader, GET_ORDER)) == grpc.StatusCode.NOT_FOUND
    with grpc.insecure_channel(orders) as channel:  # the probes need no token
        assert health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_through_the_gateway_over_rest_and_grpc(orders, embedded_redis, tmp_path):
    gateway = Harness(embedded_redis, tmp_path, {"orders": orders})
    try:
        auth = {"Authorization": f"Bearer {gateway.issuer.token(['orders.read', 'orders.write'])}"}
        placed = requests.post(gateway.base_url + "/v1/orders", headers=auth, timeout=10, json={
            "requestId": "req-1", "customerId": "CUST-1", "currencyCode": "EUR",
            "lines": [{"sku": "CHAIR-OAK", "warehouseCode": "MAIN", "quantity": "2",
                       "unitPrice": {"currencyCode": "EUR", "amount": "89.90"}}]})
        assert placed.status_code == 200, placed.text
        order = placed.json()["order"]
        assert order["status"] == "ORDER_STATUS_PENDING" and order["lines"][0]["quantity"] == "2"
        got = requests.get(f"{gateway.base_url}/v1/orders/{order['orderId']}", headers=auth, timeout=10)
        assert got.status_code == 200 and got.json()["order"]["orderId"] == order["orderId"]
        missing = requests.get(gateway.base_url + "/v1/orders/00000000-0000-0000-0000-000000000000", headers=auth,
                               timeout=10)
        assert missing.status_code == 404 and missing.json()["code"] == 5
        invalid = requests.post(gateway.base_url + "/v1/orders", headers=auth, timeout=10, json={"customerId": ""})
        assert invalid.status_code == 400
        assert invalid.json()["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        reply, _ = gateway.call(GET_ORDER, orders_pb2.GetOrderRequest(order_id=order["orderId"]).SerializeToString(),
                                token=gateway.issuer.token(["orders.read"]))
        assert orders_pb2.GetOrderResponse.FromString(reply).order.order_id == order["orderId"]
    finally:
        gateway.close()


def test_the_verified_caller_reaches_handlers_through_mesh_context():
    method = "/erp.orders.v1.OrderService/GetOrder"
    rules = {method: access.table()[method]}

    def who(_request, _ctx):
        return f"{call_context.subject.get()}|{' '.join(sorted(call_context.scopes.get()))}".encode()

    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            return grpc.unary_unary_rpc_method_handler(who) if details.method == method else None

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         interceptors=[ServerCalls(InternalAuth(SECRET, rules))])
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        token = identity.mint(SECRET, identity.Identity("approver-7", frozenset({"orders.read", "x"})), method)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = channel.unary_unary(method)(b"", metadata=[(identity.HEADER, token)], timeout=10)
        assert reply == b"approver-7|orders.read x"
    finally:
        server.stop(0)


def test_a_service_calling_another_acts_on_its_own_authority_for_the_caller():
    import dataclasses

    from mesh.channels import channel_to
    from mesh.settings import load

    method = "/erp.orders.v1.OrderService/GetOrder"
    rules = {method: access.table()[method]}

    def who() -> str:
        return f"{call_context.subject.get()}|{' '.join(sorted(call_context.scopes.get()))}"

    class Handler(grpc.GenericRpcHandler):
        def service(self, details):
            return grpc.unary_unary_rpc_method_handler(lambda _r, _c: who().encode()) \
                if details.method == method else None

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         interceptors=[ServerCalls(InternalAuth(SECRET, rules))])
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    settings = dataclasses.replace(load("inventory"), targets={"orders": f"127.0.0.1:{port}"}, internal_auth=True,
                                   internal_token_secret=SECRET)
    try:
        with channel_to(settings, "orders") as channel:
            call = channel.unary_unary(method)
            # a caller holding no orders scope: inventory calls orders on its own authority, for user-9
            with call_context.scope(caller="user-9", caller_scopes=frozenset({"inventory.read"})):
                assert call(b"", timeout=10) == b"user-9|orders.read"
            # an event handler's call: no caller, the service itself
            assert call(b"", timeout=10) == b"service:inventory|orders.read"
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # the same call without a token: refused
            assert code_of(channel.unary_unary(method), b"") == grpc.StatusCode.UNAUTHENTICATED
    finally:
        server.stop(0)
