"""Traces (mesh.tracing), collected in memory from the real parts: the libraries' database and
Redis spans, the event path through outbox, relay and consumers on each transport, and one
order placed through the gateway as one trace across every service."""
from __future__ import annotations

import logging

import redis
import requests
import sqlalchemy as sa
from opentelemetry import trace

from erp.events.v1 import inventory_events_pb2 as inv_ev
from mesh import db, logs, tracing
from mesh.events.consumer import Consumer
from mesh.events.relay import Relay
from mesh.uow import UnitOfWork
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import Harness
from tests.integration.test_event_backbone import (  # noqa: F401 - probe is a fixture
    ADJUSTED,
    MAX_ATTEMPTS,
    drain,
    emit,
    probe,
    recording_handlers,
)
from tests.integration.test_order_flow import stock_up


def statement_of(span) -> str:
    return str(span.attributes.get("db.statement") or span.attributes.get("db.query.text") or "")


def test_the_pinned_sqlalchemy_emits_database_spans(spans, embedded_pg):
    # The guard: an instrumentation that silently stops working with this SQLAlchemy fails here.
    engine = db.create_engine(embedded_pg, pool_size=1)
    tracing.instrument_engine(engine)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT 41 + 1")).scalar() == 42
    engine.dispose()
    found = [s for s in spans if "SELECT 41 + 1" in statement_of(s)]
    assert found, f"no database span from SQLAlchemy {sa.__version__}: {[s.name for s in spans]}"
    assert found[0].kind == trace.SpanKind.CLIENT
    assert found[0].attributes.get("db.system") == "postgresql"


def test_redis_commands_are_spans(spans, embedded_redis):
    client = redis.Redis.from_url(embedded_redis)
    client.set("erptest-traced", "1")
    assert [s for s in spans if s.attributes.get("db.system") == "redis" and s.name == "SET"]


def test_log_lines_carry_the_trace_id(spans):
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "inside a span", None, None)
    with tracing.tracer.start_as_current_span("call") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        json_line = logs.JsonFormatter("tests").format(record)
        text_line = logs.TextFormatter("tests").format(record)
    assert f'"trace_id": "{trace_id}"' in json_line
    assert f"trace_id={trace_id}" in text_line


def test_the_event_path_continues_the_stored_context_and_a_rollback_publishes_nothing(spans, probe):  # noqa: F811
    engine, transport, _ = probe
    tracing.instrument_engine(engine)
    engine.dispose()  # the pool's connections from before are not instrumented: new ones are
    subscription = transport.subscribe("probe", [ADJUSTED])
    with tracing.tracer.start_as_current_span("caller") as caller:
        [kept] = emit(engine, 1)
        with UnitOfWork(engine, "probe") as uow:
            dropped = uow.emit(aggregate_type="stock", aggregate_id="agg-x", version=1,
                               payload=inv_ev.StockAdjusted())
            uow.rollback()
    assert Relay(engine, "probe", transport.publisher).publish_pending() == 1
    consumer = Consumer(recording_handlers(), lambda: UnitOfWork(engine, "probe"), MAX_ATTEMPTS, 20)
    drain(subscription, consumer)
    subscription.close()

    caller_ctx = caller.get_span_context()
    publishes = spans.named("publish StockAdjusted")
    assert [s.attributes["messaging.message.id"] for s in publishes] == [kept]  # none for `dropped`
    assert dropped != kept
    [publish], [batch] = publishes, spans.named("relay publish")
    assert publish.parent.span_id == caller_ctx.span_id and publish.context.trace_id == caller_ctx.trace_id
    assert [link.context.span_id for link in publish.links] == [batch.context.span_id]
    assert publish.kind == trace.SpanKind.PRODUCER
    [process] = spans.named("process StockAdjusted")
    assert process.parent.span_id == caller_ctx.span_id and process.context.trace_id == caller_ctx.trace_id
    assert process.kind == trace.SpanKind.CONSUMER and process.attributes["erp.service"] == "probe"
    # the handler's statements are the process span's children
    [insert] = [s for s in spans if "INSERT INTO effects" in statement_of(s)]
    assert insert.parent.span_id == process.context.span_id


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# The order-to-cash saga's hops, each (service, span name), all in the caller's trace.
HOPS = [("gateway", "POST /v1/orders"), ("orders", "erp.orders.v1.OrderService/PlaceOrder"),
        ("orders", "publish OrderPlaced"), ("inventory", "process OrderPlaced"), ("crm", "process OrderPlaced"),
        ("inventory", "publish StockReserved"), ("crm", "publish CreditApproved"),
        ("orders", "process StockReserved"), ("orders", "process CreditApproved"),
        ("orders", "publish OrderConfirmed"), ("finance", "process OrderConfirmed"),
        ("notification", "process OrderConfirmed"), ("finance", "publish InvoiceIssued"),
        ("orders", "process InvoiceIssued"), ("notification", "process InvoiceIssued")]


def test_one_order_placed_through_the_gateway_is_one_trace(spans, engines, tmp_path):
    with running_mesh(engines, tmp_path) as (client, started):
        stock_up(client, {("CHAIR", "MAIN"): 5})
        gateway = Harness(engines.redis_url, tmp_path, {n: f"127.0.0.1:{r.port}" for n, r in started.items()})
        try:
            token = gateway.issuer.token(["orders.write"])
            placed = requests.post(gateway.base_url + "/v1/orders", timeout=10, json={
                "requestId": "traced-order-1", "customerId": "CUST-1", "currencyCode": "EUR",
                "lines": [{"sku": "CHAIR", "warehouseCode": "MAIN", "quantity": "1",
                           "unitPrice": {"currencyCode": "EUR", "amount": "89.90"}}]},
                headers={"Authorization": f"Bearer {token}", "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
            assert placed.status_code == 200, placed.text
            order_id = placed.json()["order"]["orderId"]

            def seen() -> set[tuple[str, str]]:
                return {(s.attributes.get("erp.service"), s.name) for s in list(spans)
                        if format(s.context.trace_id, "032x") == TRACE_ID}

            support.wait_for("every hop of the saga in the trace", lambda: set(HOPS) <= seen(), timeout=60)
        finally:
            gateway.close()
    in_trace = [s for s in list(spans) if format(s.context.trace_id, "032x") == TRACE_ID]
    [placement] = [s for s in in_trace if s.name == "erp.orders.v1.OrderService/PlaceOrder"]
    assert placement.attributes["erp.order_id"] == order_id
    # every span of the order's events is in this one trace
    about_order = [s for s in list(spans) if s.attributes.get("erp.aggregate_id") == order_id]
    assert about_order and {format(s.context.trace_id, "032x") for s in about_order} == {TRACE_ID}
    # the gateway's upstream call is a client span between its server span and the service's
    [edge] = [s for s in in_trace if s.name == "POST /v1/orders"]
    assert placement.parent.span_id != edge.context.span_id
    [upstream] = [s for s in in_trace if s.context.span_id == placement.parent.span_id]
    assert upstream.kind == trace.SpanKind.CLIENT and upstream.parent.span_id == edge.context.span_id


def test_a_service_calling_another_makes_a_client_span_the_callee_continues(spans, embedded_engines, tmp_path):
    from erp.inventory.v1 import inventory_pb2, inventory_pb2_grpc
    from mesh.channels import channel_to

    with running_mesh(embedded_engines, tmp_path, services=("inventory",)) as (client, started):
        client.create_product("CHAIR", "Chair")
        settings = support.settings_for("procurement", embedded_engines, tmp_path,
                                        targets={"inventory": f"127.0.0.1:{started['inventory'].port}"})
        stub = inventory_pb2_grpc.InventoryServiceStub(channel_to(settings, "inventory"))
        assert stub.GetProduct(inventory_pb2.GetProductRequest(sku="CHAIR")).product.sku == "CHAIR"
    [call] = [s for s in spans if s.kind == trace.SpanKind.CLIENT and s.name.endswith("InventoryService/GetProduct")]
    [served] = [s for s in spans if s.kind == trace.SpanKind.SERVER and s.name.endswith("InventoryService/GetProduct")]
    assert served.parent.span_id == call.context.span_id and served.context.trace_id == call.context.trace_id
