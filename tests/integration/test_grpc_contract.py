"""Bad input gets the right status and a message a caller can act on; the service stays up.
Plus health (per service, NOT_SERVING while the database is unreachable and while
draining) and server reflection."""
from __future__ import annotations

import time

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status
from sqlalchemy.engine import make_url

from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ordpb
from erp_client.client import Line
from mesh import db
from tests.integration.conftest import running_mesh

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def field_violations(err: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None, "INVALID_ARGUMENT must carry google.rpc.Status details"
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field: v.description for v in bad.field_violations}
    raise AssertionError("no BadRequest detail")


def call_fails(fn, *args, code: grpc.StatusCode, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kwargs)
    assert info.value.code() == code, info.value.details()
    return info.value


def test_missing_and_malformed_fields_are_invalid_argument_with_field_violations(embedded_mesh):
    client, _ = embedded_mesh
    err = call_fails(client.orders.PlaceOrder, ordpb.PlaceOrderRequest(), code=grpc.StatusCode.INVALID_ARGUMENT)
    assert {"request_id", "customer_id", "currency_code", "lines"} <= field_violations(err).keys()
    err = call_fails(client.place_order, "CUST-1", [Line("SKU", -3, "1.0"), Line("SKU2", 1, "1e5")],
                     code=grpc.StatusCode.INVALID_ARGUMENT)
    violations = field_violations(err)
    assert "lines[0].quantity" in violations and "lines[1].unit_price.amount" in violations
    assert "Traceback" not in err.details()
    err = call_fails(client.adjust_stock, "SKU", "MAIN", 0, reason="", code=grpc.StatusCode.INVALID_ARGUMENT)
    assert {"quantity_delta", "reason"} <= field_violations(err).keys()


def test_unknown_things_are_not_found(embedded_mesh):
    client, _ = embedded_mesh
    client.create_warehouse("MAIN", "Main")
    err = call_fails(client.get_stock, "NO-SUCH-SKU", "MAIN", code=grpc.StatusCode.NOT_FOUND)
    assert "NO-SUCH-SKU" in err.details()
    call_fails(client.adjust_stock, "NO-SUCH-SKU", "MAIN", 5, reason="count", code=grpc.StatusCode.NOT_FOUND)
    call_fails(client.get_order, "00000000-0000-0000-0000-000000000000", code=grpc.StatusCode.NOT_FOUND)


def test_every_answer_names_the_request_id_it_is_logged_under(embedded_mesh):
    client, _ = embedded_mesh
    _, call = client.inventory.CreateWarehouse.with_call(
        inv.CreateWarehouseRequest(warehouse=inv.Warehouse(code="MAIN", name="Main")),
        metadata=[("x-request-id", "support-case-7")], timeout=10)
    assert ("x-request-id", "support-case-7") in call.trailing_metadata()
    err = call_fails(client.inventory.GetStock, inv.GetStockRequest(sku="NO-SUCH-SKU", warehouse_code="MAIN"),
                     metadata=[("x-request-id", "support-case-8")], code=grpc.StatusCode.NOT_FOUND)
    assert ("x-request-id", "support-case-8") in err.trailing_metadata(), "errors too"
    assert rpc_status.from_call(err).code == grpc.StatusCode.NOT_FOUND.value[0], "the status details still parse"
    _, call = client.inventory.CreateProduct.with_call(inv.CreateProductRequest(
        product=inv.Product(sku="BOLT", name="Bolt", unit_of_measure="EA")), timeout=10)
    assert len(dict(call.trailing_metadata())["x-request-id"]) == 36, "a call without one is given one"


def test_removing_more_than_is_on_hand_is_a_failed_precondition(embedded_mesh):
    client, _ = embedded_mesh
    client.create_warehouse("MAIN", "Main")
    client.create_product("BOLT", "Bolt")
    client.adjust_stock("BOLT", "MAIN", 5, reason="count")
    err = call_fails(client.adjust_stock, "BOLT", "MAIN", -6, reason="broken", code=grpc.StatusCode.FAILED_PRECONDITION)
    assert "only 5 on hand" in err.details()
    assert client.get_stock("BOLT", "MAIN").on_hand == 5


def test_oversized_and_garbage_requests_are_refused_and_the_service_keeps_serving(embedded_mesh):
    client, started = embedded_mesh
    target = f"127.0.0.1:{started['inventory'].port}"
    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", -1)]) as channel:
        get_stock = channel.unary_unary("/erp.inventory.v1.InventoryService/GetStock",
                                        request_serializer=inv.GetStockRequest.SerializeToString,
                                        response_deserializer=inv.GetStockResponse.FromString)
        with pytest.raises(grpc.RpcError) as info:
            get_stock(inv.GetStockRequest(sku="X" * (5 * 1024 * 1024), warehouse_code="MAIN"), timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        raw = channel.unary_unary("/erp.inventory.v1.InventoryService/GetStock")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as info:
            raw(b"\xff\xff\xff\xff garbage", timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary("/erp.inventory.v1.InventoryService/NoSuchMethod")(b"", timeout=10)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    client.create_warehouse("MAIN", "Main")
    client.create_product("STILL-UP", "Still up")
    assert client.get_stock("STILL-UP", "MAIN").on_hand == 0


def health_of(target: str, service: str = "") -> int:
    with grpc.insecure_channel(target) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service),
                                                         timeout=5).status


def wait_health(target: str, expected: int, service: str = "", timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while health_of(target, service) != expected:
        assert time.monotonic() < end, f"health of {service or 'server'} never became {expected}"
        time.sleep(0.05)


def test_health_is_per_service_and_not_serving_while_the_database_is_unreachable(embedded_engines, tmp_path):
    with running_mesh(embedded_engines, tmp_path, services=("inventory", "orders")) as (client, started):
        target = f"127.0.0.1:{started['inventory'].port}"
        assert health_of(target) == SERVING
        assert health_of(target, "erp.inventory.v1.InventoryService") == SERVING
        with pytest.raises(grpc.RpcError) as info:
            health_of(target, "erp.orders.v1.OrderService")  # not served here
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        name = make_url(db.sqlalchemy_url(embedded_engines.database_url)).database
        admin = sa.create_engine(make_url(db.sqlalchemy_url(embedded_engines.database_url)).set(database="postgres"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                         {"n": name})
        try:
            wait_health(target, NOT_SERVING, "erp.inventory.v1.InventoryService")
            err = call_fails(client.adjust_stock, "SKU", "MAIN", 1, reason="x", code=grpc.StatusCode.UNAVAILABLE)
            assert "psycopg" not in err.details() and "request id" in err.details() and "retry" in err.details()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            admin.dispose()
        wait_health(target, SERVING, "erp.inventory.v1.InventoryService")


def test_a_call_after_the_server_dropped_the_pooled_connections_succeeds(embedded_engines, tmp_path):
    """No pre-ping: the first statement on a dead pooled connection fails, the pool is invalidated,
    the RPC answers UNAVAILABLE and the channel's retry policy repeats it on a new connection."""
    with running_mesh(embedded_engines, tmp_path, services=("inventory",)) as (client, started):
        client.create_warehouse("MAIN", "Main")
        client.create_product("SKU", "A product")
        for _ in range(3):  # a few pooled connections
            client.adjust_stock("SKU", "MAIN", 1, reason="count")
        name = make_url(db.sqlalchemy_url(embedded_engines.database_url)).database
        admin = sa.create_engine(make_url(db.sqlalchemy_url(embedded_engines.database_url)).set(database="postgres"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            killed = conn.execute(sa.text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                          "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name}).scalar()
        admin.dispose()
        assert killed > 0
        assert client.adjust_stock("SKU", "MAIN", 1, reason="count").on_hand == 4
        assert client.get_stock("SKU", "MAIN").on_hand == 4


def test_draining_reports_not_serving_and_finishes_in_flight_calls(embedded_engines, tmp_path):
    with running_mesh(embedded_engines, tmp_path, services=("inventory", "orders")) as (client, started):
        inventory = started["inventory"]
        target = f"127.0.0.1:{inventory.port}"
        inventory.health.enter_graceful_shutdown()
        assert health_of(target) == NOT_SERVING
        assert health_of(target, "erp.inventory.v1.InventoryService") == NOT_SERVING
        client.create_warehouse("MAIN", "Main")  # still answering calls while draining


def test_reflection_lists_the_services(embedded_mesh):
    _, started = embedded_mesh
    with grpc.insecure_channel(f"127.0.0.1:{started['orders'].port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"erp.orders.v1.OrderService", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_calls_are_counted_in_the_prometheus_metrics(embedded_mesh):
    import socket
    import urllib.request

    from mesh import metrics

    client, _ = embedded_mesh
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port, "127.0.0.1")
    with pytest.raises(grpc.RpcError):
        client.get_stock("NOT-THERE", "MAIN")
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert ('grpc_server_handled_total{grpc_code="NOT_FOUND",grpc_method="GetStock",'
            'grpc_service="erp.inventory.v1.InventoryService",grpc_type="unary"}') in text
    assert "grpc_server_handling_seconds_bucket" in text
