"""The standard health check at the gateway, per routed service: answered from the owning
service's own health (the real orders service behind the gateway), NOT_SERVING when the
upstream says so, cannot be reached, or does not answer in time; the gateway's own names
answer for the gateway; names it does not route are NOT_FOUND."""
from __future__ import annotations

import socket
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness

Status = health_pb2.HealthCheckResponse
ORDERS, INVENTORY, CRM = "erp.orders.v1.OrderService", "erp.inventory.v1.InventoryService", "erp.crm.v1.CustomerService"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent():
    """A port that accepts connections and never answers: a hung upstream."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def behind_gateway(embedded_engines, embedded_redis, tmp_path, silent):
    """The real orders service (internal auth on) behind the gateway; inventory's target is a
    closed port, crm's one that never answers."""
    with running_mesh(embedded_engines, tmp_path, services=("orders",), internal_auth=True,
                      internal_token_secret=SECRET) as (_client, started):
        gateway = Harness(embedded_redis, tmp_path, {"orders": f"127.0.0.1:{started['orders'].port}",
                                                     "inventory": f"127.0.0.1:{closed_port()}",
                                                     "crm": f"127.0.0.1:{silent}"},
                          env={"ERP_GATEWAY_HEALTH_CACHE_SECONDS": "0.2", "ERP_GATEWAY_HEALTH_TIMEOUT_SECONDS": "0.5"})
        try:
            yield gateway, started["orders"]
        finally:
            gateway.close()


def check(gateway: Harness, name: str):
    stub = health_pb2_grpc.HealthStub(gateway.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5).status


def check_code(gateway: Harness, name: str) -> grpc.StatusCode:
    try:
        check(gateway, name)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


def routed_services(gateway: Harness) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(gateway.channel)
    [reply] = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
    return {s.name for s in reply.list_services_response.service} - {"grpc.health.v1.Health",
                                                                      "grpc.reflection.v1alpha.ServerReflection"}


def test_every_service_listed_in_reflection_has_a_health_answer(behind_gateway):
    gateway, _orders = behind_gateway
    listed = routed_services(gateway)
    assert ORDERS in listed and INVENTORY in listed
    for name in listed:  # the ones not running here are NOT_SERVING: none is NOT_FOUND
        assert check_code(gateway, name) == grpc.StatusCode.OK, name


def test_a_routed_service_is_as_healthy_as_its_upstream(behind_gateway):
    gateway, orders = behind_gateway
    assert check(gateway, ORDERS) == Status.SERVING
    assert check(gateway, "") == Status.SERVING  # the gateway itself
    assert check(gateway, "erp.gateway") == Status.SERVING
    assert check_code(gateway, "erp.nothing.v1.NoService") == grpc.StatusCode.NOT_FOUND
    # the upstream reports NOT_SERVING (it drains): so does the gateway for it, once the cache expires
    orders.health.enter_graceful_shutdown()
    time.sleep(0.3)
    assert check(gateway, ORDERS) == Status.NOT_SERVING
    assert check(gateway, "") == Status.SERVING  # the gateway is fine, only orders is not


def test_an_unreachable_or_hung_upstream_is_not_serving(behind_gateway):
    gateway, _orders = behind_gateway
    assert check(gateway, INVENTORY) == Status.NOT_SERVING  # connection refused
    started = time.monotonic()
    assert check(gateway, CRM) == Status.NOT_SERVING  # accepts, never answers: the short deadline
    assert time.monotonic() - started < 3


def test_watch_follows_the_upstream(behind_gateway):
    gateway, orders = behind_gateway
    stub = health_pb2_grpc.HealthStub(gateway.channel)
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=ORDERS), timeout=20)
    try:
        assert next(stream).status == Status.SERVING
        orders.health.enter_graceful_shutdown()
        assert next(stream).status == Status.NOT_SERVING
    finally:
        stream.cancel()
    unknown = stub.Watch(health_pb2.HealthCheckRequest(service="erp.nothing.v1.NoService"), timeout=5)
    try:
        assert next(unknown).status == Status.SERVICE_UNKNOWN
    finally:
        unknown.cancel()


def test_a_draining_gateway_is_not_serving_for_every_name(behind_gateway):
    gateway, _orders = behind_gateway
    assert check(gateway, ORDERS) == Status.SERVING
    gateway.loop.run(gateway.gateway.health.enter_graceful_shutdown())
    assert check(gateway, "") == Status.NOT_SERVING
    assert check(gateway, ORDERS) == Status.NOT_SERVING
