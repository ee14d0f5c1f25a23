"""`erp`'s output and exit codes, against real gRPC servers standing in for the services: an
OrderService that knows a few orders, and health servers (one of them down, one NOT_SERVING)."""
from __future__ import annotations

import json
import socket
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from erp.common.v1 import money_pb2
from erp.orders.v1 import orders_pb2 as pb
from erp.orders.v1 import orders_pb2_grpc
from erp_client import cli
from erp_client.client import ErpClient

ORDERS = {
    "confirmed": pb.Order(order_id="confirmed", customer_id="CUST-1", status=pb.ORDER_STATUS_CONFIRMED,
                          total=money_pb2.Money(currency_code="EUR", amount="179.80"),
                          lines=[pb.OrderLine(sku="CHAIR-OAK", warehouse_code="MAIN", quantity=2)]),
    "rejected": pb.Order(order_id="rejected", customer_id="CUST-2", status=pb.ORDER_STATUS_REJECTED),
    "cancelled": pb.Order(order_id="cancelled", customer_id="CUST-2", status=pb.ORDER_STATUS_CANCELLED),
    "pending": pb.Order(order_id="pending", customer_id="CUST-2", status=pb.ORDER_STATUS_PENDING),
}


class Orders(orders_pb2_grpc.OrderServiceServicer):
    def __init__(self) -> None:
        self.metadata = []

    def GetOrder(self, request, context):  # noqa: N802
        self.metadata.append(dict(context.invocation_metadata()))
        if request.order_id not in ORDERS:
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id} not found")
        return pb.GetOrderResponse(order=ORDERS[request.order_id])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    import os

    for name in [n for n in os.environ if n.startswith("ERP_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def orders(monkeypatch):
    servicer = Orders()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    orders_pb2_grpc.add_OrderServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    monkeypatch.setenv("ERP_ORDERS_TARGET", f"127.0.0.1:{port}")
    yield servicer
    server.stop(0)


def test_order_get_json_is_the_proto3_mapping_with_enums_by_name(orders, capsys):
    assert cli.main(["order", "get", "confirmed", "--output", "json"]) == cli.OK
    order = json.loads(capsys.readouterr().out)
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    assert order["total"] == {"currency_code": "EUR", "amount": "179.80"}
    assert order["lines"][0]["quantity"] == "2" and order["lines"][0]["sku"] == "CHAIR-OAK"


def test_order_get_table_names_fields_and_statuses(orders, capsys):
    assert cli.main(["--output", "table", "order", "get", "confirmed"]) == cli.OK
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert rows["status"] == "ORDER_STATUS_CONFIRMED"
    assert rows["total.amount"] == "179.80" and rows["lines[0].sku"] == "CHAIR-OAK"


def test_wait_exits_non_zero_when_the_order_ends_rejected_or_cancelled(orders, capsys):
    assert cli.main(["order", "get", "confirmed", "--wait"]) == cli.OK
    capsys.readouterr()
    assert cli.main(["order", "get", "rejected", "--wait", "-o", "json"]) == cli.ORDER_NOT_CONFIRMED == 3
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "ORDER_STATUS_REJECTED"
    assert "ended ORDER_STATUS_REJECTED" in captured.err
    assert cli.main(["order", "get", "cancelled", "--wait"]) == cli.ORDER_NOT_CONFIRMED
    assert cli.main(["order", "get", "pending", "--wait", "--wait-timeout", "0.2"]) == cli.WAIT_TIMED_OUT == 4
    assert "still ORDER_STATUS_PENDING" in capsys.readouterr().err
    assert "3 --wait: the order ended REJECTED or CANCELLED" in cli.parser().format_help()


def test_a_failed_call_exits_1_with_the_status_by_name(orders, capsys):
    assert cli.main(["order", "get", "unknown"]) == cli.FAILED
    assert "error: NOT_FOUND: order unknown not found" in capsys.readouterr().err


def test_the_token_flag_goes_with_the_call(orders, tmp_path, capsys):
    token = tmp_path / "token"
    token.write_text("file-token\n")
    assert cli.main(["order", "get", "confirmed", "--token-file", str(token)]) == cli.OK
    assert orders.metadata[-1]["authorization"] == "Bearer file-token"
    assert cli.main(["--token", "flag-token", "order", "get", "confirmed"]) == cli.OK
    assert orders.metadata[-1]["authorization"] == "Bearer flag-token"
    assert cli.main(["order", "get", "confirmed", "--token-file", str(tmp_path / "missing")]) == cli.FAILED
    assert "cannot read the token file" in capsys.readouterr().err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_health_lists_every_service_and_the_gateway_even_when_some_are_down(monkeypatch, capsys):
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        for name in ("", *ErpClient.GRPC_SERVICES.values()):
            servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        monkeypatch.setenv("ERP_TARGET", f"127.0.0.1:{port}")  # a gateway answering for every service
        assert cli.main(["health"]) == cli.OK
        assert all(line.split()[1] == "SERVING" for line in capsys.readouterr().out.splitlines())

        servicer.set("erp.finance.v1.FinanceService", health_pb2.HealthCheckResponse.NOT_SERVING)
        monkeypatch.setenv("ERP_CRM_TARGET", f"127.0.0.1:{closed_port()}")  # crm is down
        assert cli.main(["health", "--output", "json"]) == cli.FAILED
        statuses = json.loads(capsys.readouterr().out)
        assert statuses == {"inventory": "SERVING", "orders": "SERVING", "crm": "UNAVAILABLE",
                            "finance": "NOT_SERVING", "notification": "SERVING", "procurement": "SERVING",
                            "gateway": "SERVING"}
        assert cli.main(["health"]) == cli.FAILED
        table = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.splitlines()}
        assert table["crm"] == "UNAVAILABLE" and table["gateway"] == "SERVING" and len(table) == 7
    finally:
        server.stop(0)
