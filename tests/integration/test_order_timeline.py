"""An order's timeline on real engines: every step of an order across the services, in time
order, with the service of each; a replayed or republished event adds no step; what a pending
order awaits; the REST route at the gateway and `erp order timeline`."""
from __future__ import annotations

import json
import socket
import uuid

import pytest
import requests
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from erp.events.v1 import envelope_pb2
from erp.orders.v1 import orders_pb2 as pb
from erp_client import cli
from erp_client.client import Line
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery
from services.orders import events as orders_events
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import Harness
from tests.integration.test_order_flow import stock_up
from tests.integration.test_order_to_cash import invoice_of

K = pb.TimelineStepKind
SERVICE_OF = {K.Value(f"TIMELINE_STEP_KIND_{name}"): service for name, service in (
    ("PLACED", "orders"), ("STOCK_RESERVED", "inventory"), ("CREDIT_APPROVED", "crm"), ("CONFIRMED", "orders"),
    ("INVOICED", "finance"), ("NOTIFIED", "notification"), ("CANCELLED", "orders"),
    ("STOCK_RELEASED", "inventory"), ("CREDIT_NOTED", "finance"))}
PLACED, RESERVED, APPROVED, CONFIRMED, INVOICED, NOTIFIED, CANCELLED, RELEASED, CREDITED = SERVICE_OF


class AcceptAll:
    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        return "250 Message accepted for delivery"


@pytest.fixture(scope="module")
def smtp_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(AcceptAll(), hostname="127.0.0.1", port=port)
    controller.start()
    yield f"smtp://127.0.0.1:{port}"
    controller.stop()


def kinds_of(timeline: pb.GetOrderTimelineResponse) -> list[int]:
    return [step.kind for step in timeline.steps]


def timeline_when(client, order_id: str, *kinds: int) -> pb.GetOrderTimelineResponse:
    """The order's timeline once it has every step in kinds (repeated kinds: that many of them)."""
    def has_all(found) -> bool:
        return all(kinds_of(found).count(k) >= kinds.count(k) for k in kinds)

    return client.wait_for(lambda: client.order_timeline(order_id), has_all, timeout=30)


def test_an_order_cancelled_after_its_invoice_shows_every_step_in_order(engines, tmp_path, smtp_url):
    with running_mesh(engines, tmp_path, replicas=2, env={"ERP_SMTP_URL": smtp_url}) as (client, _):
        stock_up(client, {("CHAIR", "MAIN"): 10})
        order = client.place_order("CUST-1", [Line("CHAIR", 5, "10.00")])
        invoice = invoice_of(client, order.order_id)
        # Told by email of its confirmation and its invoice.
        before = timeline_when(client, order.order_id, PLACED, RESERVED, APPROVED, CONFIRMED, INVOICED,
                               NOTIFIED, NOTIFIED)
        assert [(a.service, a.description) for a in before.awaiting] == [
            ("orders", "shipment (someone marks the order shipped)"), ("finance", "payment: 60.00 EUR due")]
        client.cancel_order(order.order_id, "customer changed their mind")
        found = timeline_when(client, order.order_id, CANCELLED, RELEASED, CREDITED)

    kinds = kinds_of(found)
    assert len(kinds) == 10, kinds
    assert kinds[0] == PLACED and sorted(kinds[1:3]) == sorted([RESERVED, APPROVED]) and kinds[3] == CONFIRMED
    assert sorted(kinds[4:7]) == sorted([INVOICED, NOTIFIED, NOTIFIED]) and kinds[7] == CANCELLED
    assert sorted(kinds[8:]) == sorted([RELEASED, CREDITED])
    assert [step.service for step in found.steps] == [SERVICE_OF[k] for k in kinds]
    times = [step.occurred_at.ToDatetime() for step in found.steps]
    assert times == sorted(times)
    details = {step.kind: step.detail for step in found.steps}
    assert details[CANCELLED] == "customer changed their mind; a credit note follows"
    assert details[CREDITED].endswith(f"for invoice {invoice.invoice_id}: 60.00 EUR credited, 60.00 EUR of it unpaid")
    assert found.status == pb.ORDER_STATUS_CANCELLED and list(found.awaiting) == []


@pytest.fixture
def reserved_only(embedded_mesh):
    """An order inventory reserved, on a mesh without crm: it stays PENDING, awaiting credit."""
    client, started = embedded_mesh
    client.create_warehouse("MAIN", "Main")
    client.create_product("CHAIR", "Chair")
    client.adjust_stock("CHAIR", "MAIN", 10, reason="opening stock")
    order = client.place_order("CUST-1", [Line("CHAIR", 2, "10.00")])
    timeline_when(client, order.order_id, PLACED, RESERVED)
    return client, started, order.order_id


def test_a_pending_order_awaits_the_answer_it_has_not_had(reserved_only):
    client, _, order_id = reserved_only
    found = client.order_timeline(order_id)
    assert found.status == pb.ORDER_STATUS_PENDING and kinds_of(found) == [PLACED, RESERVED]
    assert [(a.service, a.description) for a in found.awaiting] == [("crm", "credit decision (approved or rejected)")]


def test_a_replayed_or_republished_event_adds_no_step(reserved_only):
    client, started, order_id = reserved_only
    with started["inventory"].runtime.engine.connect() as conn:
        body = conn.execute(sa.text("SELECT envelope FROM outbox WHERE event_type = 'erp.events.v1.StockReserved' "
                                    "AND aggregate_id = :o"), {"o": order_id}).scalar_one()
    again = envelope_pb2.EventEnvelope.FromString(body)
    again.event_id = str(uuid.uuid4())  # as inventory answers an order driven again: the same answer, a new id
    consumer = Consumer(orders_events.build(), started["orders"].runtime.uow, max_attempts=3, retry_base_ms=20)
    for copy in (bytes(body), bytes(body), again.SerializeToString()):
        assert consumer.handle(Delivery(copy, 0, None)) == Ack()
    assert kinds_of(client.order_timeline(order_id)) == [PLACED, RESERVED]


def test_the_timeline_over_rest_and_in_the_command_line(reserved_only, embedded_redis, tmp_path, monkeypatch,
                                                        capsys):
    client, started, order_id = reserved_only
    gateway = Harness(embedded_redis, tmp_path, {"orders": f"127.0.0.1:{started['orders'].port}"})
    try:
        auth = {"Authorization": f"Bearer {gateway.issuer.token(['orders.read'])}"}
        got = requests.get(f"{gateway.base_url}/v1/orders/{order_id}/timeline?page.pageSize=1", headers=auth,
                           timeout=10)
        assert got.status_code == 200, got.text
        body = got.json()
        assert body["status"] == "ORDER_STATUS_PENDING" and body["nextPageToken"]
        assert [(s["service"], s["kind"]) for s in body["steps"]] == [("orders", "TIMELINE_STEP_KIND_PLACED")]
        assert body["awaiting"] == [{"service": "crm", "description": "credit decision (approved or rejected)"}]
        missing = requests.get(f"{gateway.base_url}/v1/orders/{uuid.uuid4()}/timeline", headers=auth, timeout=10)
        assert missing.status_code == 404 and "no order" in missing.json()["message"]
        bad = requests.get(f"{gateway.base_url}/v1/orders/{order_id}/timeline?page.pageToken=forged", headers=auth,
                           timeout=10)
        assert bad.status_code == 400 and "page.page_token" in bad.json()["message"]
        no_scope = {"Authorization": f"Bearer {gateway.issuer.token(['orders.write'])}"}
        assert requests.get(f"{gateway.base_url}/v1/orders/{order_id}/timeline", headers=no_scope,
                            timeout=10).status_code == 403
    finally:
        gateway.close()

    monkeypatch.setenv("ERP_ORDERS_TARGET", f"127.0.0.1:{started['orders'].port}")
    assert cli.main(["order", "timeline", order_id]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == f"order {order_id}: pending"
    assert table[1].split() == ["time", "(UTC)", "service", "step", "detail"]
    assert table[2].split()[2:4] == ["orders", "placed"] and table[3].split()[2:5] == ["inventory", "stock", "reserved"]
    assert table[-1] == "awaiting: crm: credit decision (approved or rejected)"
    assert cli.main(["order", "timeline", order_id, "--output", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["order_id"] == order_id
    assert cli.main(["order", "timeline", "nope"]) == 1
    assert "NOT_FOUND: no order nope" in capsys.readouterr().err
