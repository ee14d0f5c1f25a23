"""`erp trace`: spans written by a process's JsonLinesExporter, read back as a tree."""
from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from mesh import tracing
from mesh.tools import traces


def write_one_order(directory) -> str:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing.JsonLinesExporter(directory, "orders")))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("erp.orders.v1.OrderService/PlaceOrder", kind=SpanKind.SERVER,
                                      attributes={"erp.service": "orders", "erp.order_id": "o-1"}) as root:
        with tracer.start_as_current_span("INSERT", attributes={"db.system": "postgresql"}):
            pass
        with tracer.start_as_current_span("process OrderPlaced",
                                          attributes={"erp.service": "inventory", "erp.aggregate_id": "o-1"}):
            pass
    with tracer.start_as_current_span("unrelated", attributes={"erp.service": "crm"}):
        pass
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def test_an_order_id_prints_its_trace_as_a_tree(tmp_path, capsys):
    trace_id = write_one_order(tmp_path)
    assert traces.main(["o-1", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"trace {trace_id}  3 spans, " + out[0].split(", ")[1]
    assert out[1].endswith("orders: erp.orders.v1.OrderService/PlaceOrder  (+1 sql/redis)")
    assert out[2].endswith("  inventory: process OrderPlaced")  # indented: the placement's child
    assert len(out) == 3  # the database span counted, not shown; the unrelated trace left out


def test_a_trace_id_finds_the_same_trace_and_sql_shows_the_statements(tmp_path, capsys):
    trace_id = write_one_order(tmp_path)
    assert traces.main([trace_id.upper(), "--dir", str(tmp_path), "--sql"]) == 0
    out = capsys.readouterr().out
    assert "INSERT" in out and "unrelated" not in out


def test_nothing_found_says_where_it_looked(tmp_path, capsys):
    assert traces.main(["nope", "--dir", str(tmp_path)]) == 1
    assert str(tmp_path) in capsys.readouterr().err
