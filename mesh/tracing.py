"""OpenTelemetry traces: one trace per business flow, across gRPC calls and events.

Off unless one of these is set, so an untraced process pays one boolean test per call:
- the standard OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (OTLP over HTTP,
  a collector's port 4318; OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER and
  the exporter's other OTEL_* variables are read by the SDK as usual);
- ERP_TRACES_DIR: spans as JSON lines in <dir>/<service>-<pid>.jsonl, which `erp trace` reads
  (`make run` sets it to .data/traces).
OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off whatever else is set.

What is traced, and by what:
- gRPC servers: by hand (server_span), in the per-method wrapper mesh/interceptors.py already
  runs: the instrumentation library's server interceptor would put grpc's interceptor pipeline
  back on every call, which the wrapper exists to avoid. Attributes follow the RPC conventions.
- gRPC clients (service to service, gateway to service): the library's client interceptors.
- PostgreSQL (psycopg, per engine; see instrument_engine) and Redis: the libraries' instrumentations.
- Events: by hand (mesh/events), because no library carries a context through an outbox. The
  span current when an event is emitted is stored in its envelope (trace_context), in the same
  transaction as the outbox row; the relay's publish span is that context's child, linked to
  its batch; a consumer's process span is its child too, whichever transport carried it. Pika's
  instrumentation is not used: it would overwrite the stored context on publish.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy as sa
    from sqlalchemy.pool import ConnectionPoolEntry

    from erp.events.v1.envelope_pb2 import EventEnvelope

log = logging.getLogger("mesh.tracing")

class _State(TypedDict):
    enabled: bool
    service: str


_state: _State = {"enabled": False, "service": ""}
tracer = trace.get_tracer("erp-mesh")


def enabled() -> bool:
    return _state["enabled"]


def wanted(env: Mapping[str, str]) -> bool:
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" or env.get("OTEL_TRACES_EXPORTER", "") == "none":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or env.get("ERP_TRACES_DIR"))


def configure(service: str, env: Mapping[str, str] | None = None) -> bool:
    """Installs the tracer provider for this process when wanted(); True when tracing is on."""
    env = os.environ if env is None else env
    if not wanted(env):
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": env.get("OTEL_SERVICE_NAME")
                                                        or f"erp-{service}", "erp.service": service}))
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if env.get("ERP_TRACES_DIR"):
        provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(Path(env["ERP_TRACES_DIR"]), service)))
    trace.set_tracer_provider(provider)
    enable(service)
    return True


def enable(service: str = "") -> None:
    """Turns on the mesh's own spans and the libraries' instrumentation, on whatever tracer
    provider is installed (configure()'s, or a test's)."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if not RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().instrument()
    _state.update({"enabled": True, "service": service or _state["service"]})


def disable() -> None:
    """Undoes enable() (tests: tracing on for some, off for the rest)."""
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    if RedisInstrumentor().is_instrumented_by_opentelemetry:
        RedisInstrumentor().uninstrument()
    _state.update({"enabled": False})


def instrument_engine(engine: sa.Engine) -> None:
    """Database spans for the connections of one engine (every engine a service creates while
    tracing is on; not the health checks' engine), from the driver's instrumentation.

    Why psycopg's and not SQLAlchemy's: the SQLAlchemy instrumentation declares sqlalchemy < 2.1
    and, on the 2.1 pinned here, logs one line and instruments nothing; forced past its version
    check it fails to import without greenlet. psycopg's supports the psycopg 3 used here, and
    tests/integration/test_tracing.py fails if it stops producing spans."""
    if not enabled():
        return
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def traced(dbapi_connection: psycopg.Connection[Any], _record: ConnectionPoolEntry) -> None:  # the psycopg driver's
        PsycopgInstrumentor.instrument_connection(dbapi_connection)


def shutdown() -> None:
    """Flushes spans still queued (a stopping process)."""
    provider = trace.get_tracer_provider()
    if hasattr(provider, "shutdown"):
        provider.shutdown()


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines (mesh.tools.traces reads them), one file per process so that writers
    never interleave; past MAX_FILE_BYTES the file moves to .old, replacing the previous one."""

    MAX_FILE_BYTES = 64 * 1024 * 1024

    def __init__(self, directory: Path, service: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{service}-{os.getpid()}.jsonl"

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span), separators=(",", ":"), default=str) + "\n" for span in spans)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(lines)
            full = out.tell() > self.MAX_FILE_BYTES
        if full:
            self.path.replace(self.path.with_suffix(".jsonl.old"))
        return SpanExportResult.SUCCESS


def span_record(span: ReadableSpan) -> dict[str, Any]:
    # a finished span of the SDK always has its context (ReadableSpan only allows for None)
    context = cast(trace.SpanContext, span.get_span_context())
    return {"trace_id": format(context.trace_id, "032x"), "span_id": format(context.span_id, "016x"),
            "parent_id": format(span.parent.span_id, "016x") if span.parent else None,
            "name": span.name, "kind": span.kind.name, "start_ns": span.start_time, "end_ns": span.end_time,
            "status": span.status.status_code.name, "status_message": span.status.description or "",
            "service": (span.attributes or {}).get("erp.service") or span.resource.attributes.get("erp.service", ""),
            "attributes": dict(span.attributes or {}),
            "links": [format(link.context.span_id, "016x") for link in span.links]}


# --- propagation --------------------------------------------------------------------------------

def carrier_of(ctx: otel_context.Context | None = None) -> dict[str, str]:
    """The W3C trace context (traceparent, tracestate) of ctx or of the current span."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=ctx)
    return carrier


def context_from(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(carrier)


def trace_id() -> str:
    """The current trace's id in hex, or "" outside a sampled span (for log lines)."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else ""


# --- spans --------------------------------------------------------------------------------------

def rpc_attributes(method: str) -> dict[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}


@contextlib.contextmanager
def server_span(method: str, metadata: Mapping[str, str], service: str) -> Iterator[trace.Span]:
    """The span of one gRPC call served, continuing the caller's trace (traceparent metadata)."""
    with tracer.start_as_current_span(method.lstrip("/"), context=context_from(metadata), kind=SpanKind.SERVER,
                                      attributes={**rpc_attributes(method), "erp.service": service},
                                      record_exception=False, set_status_on_exception=False) as span:
        yield span


@contextlib.contextmanager
def http_server_span(method: str, headers: Mapping[str, str], service: str) -> Iterator[trace.Span]:
    """The span of one REST call (the gateway): named by route once routed (http_route)."""
    with tracer.start_as_current_span(method, context=context_from(headers), kind=SpanKind.SERVER,
                                      attributes={"http.request.method": method, "erp.service": service},
                                      record_exception=False, set_status_on_exception=False) as span:
        yield span


def http_route(span: trace.Span, method: str, route: str, status: int) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))


def end_rpc(code_name: str, code_value: int, span: trace.Span | None = None) -> None:
    """Records a call's status on its span (the current one by default)."""
    span = span or trace.get_current_span()
    span.set_attribute("rpc.grpc.status_code", code_value)
    if code_name in ("UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"):
        span.set_status(Status(StatusCode.ERROR, code_name))  # server errors, by the RPC conventions


def event_attributes(envelope: EventEnvelope, operation: str, service: str) -> dict[str, str]:
    return {"messaging.system": "erp", "messaging.operation.type": operation,
            "messaging.destination.name": envelope.event_type, "messaging.message.id": envelope.event_id,
            "erp.service": service, "erp.aggregate_type": envelope.aggregate_type,
            "erp.aggregate_id": envelope.aggregate_id, "erp.correlation_id": envelope.correlation_id}


@contextlib.contextmanager
def process_span(envelope: EventEnvelope, consumer: str) -> Iterator[trace.Span]:
    """A consumer handling one event: a child of the context stored in its envelope."""
    with tracer.start_as_current_span(f"process {envelope.event_type.rsplit('.', 1)[-1]}",
                                      context=context_from(envelope.trace_context), kind=SpanKind.CONSUMER,
                                      attributes=event_attributes(envelope, "process", consumer)) as span:
        yield span


def publish_spans(envelopes: list[EventEnvelope], service: str) -> tuple[trace.Span, list[trace.Span]]:
    """The relay's batch span and, per event, a publish span: the child of the context stored
    in the event's envelope, linked to the batch. The caller ends them."""
    batch = tracer.start_span("relay publish", context=otel_context.Context(), kind=SpanKind.INTERNAL,
                              attributes={"erp.service": service, "messaging.batch.message_count": len(envelopes)})
    link = [Link(batch.get_span_context())]
    spans = [tracer.start_span(f"publish {env.event_type.rsplit('.', 1)[-1]}",
                               context=context_from(env.trace_context), kind=SpanKind.PRODUCER, links=link,
                               attributes=event_attributes(env, "publish", service)) for env in envelopes]
    return batch, spans


def fail(span: trace.Span, error: str) -> None:
    span.set_status(Status(StatusCode.ERROR, error[:200]))

