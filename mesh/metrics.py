"""Prometheus metrics every process exposes on ERP_METRICS_PORT (0: off) at /metrics.

RPCs carry the go-grpc-prometheus names (grpc_server_handled_total and its family) rather than
OpenTelemetry's RPC conventions: Prometheus dashboards and alerts people already run (Grafana's
gRPC dashboards, the prometheus-operator mixins) query these names and labels as they are, while
OpenTelemetry's rpc.server.duration reaches Prometheus under names that change with the exporter.
The REST edge uses the usual http_requests_total / http_request_duration_seconds. The rest is
the ERP's own, prefixed erp_. Gauges read from a service's database (outbox, dead letters,
orders) are sampled on scrape by backbone.py; two replicas report the same value, so rules
aggregate them with max by (service)."""
from __future__ import annotations

import functools
import time
from typing import TypeVar

from prometheus_client import REGISTRY as REGISTRY  # re-exported: tests read samples from it
from prometheus_client import Counter, Gauge, Histogram, start_http_server
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_RPC = ["grpc_type", "grpc_service", "grpc_method"]

GRPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server", _RPC)
GRPC_HANDLED = Counter("grpc_server_handled_total", "RPCs completed on the server, by status code",
                       [*_RPC, "grpc_code"])
GRPC_SECONDS = Histogram("grpc_server_handling_seconds", "time the server took to answer an RPC", _RPC,
                         buckets=_LATENCY_BUCKETS)
GRPC_CLIENT_HANDLED = Counter("grpc_client_handled_total", "RPCs this process called and got an answer to, by code",
                              [*_RPC, "grpc_code"])
GRPC_CLIENT_SECONDS = Histogram("grpc_client_handling_seconds", "time from calling an RPC to its answer", _RPC,
                                buckets=_LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("http_requests_total", "REST calls at the gateway", ["method", "handler", "status"])
HTTP_SECONDS = Histogram("http_request_duration_seconds", "time the gateway took to answer a REST call",
                         ["method", "handler"], buckets=_LATENCY_BUCKETS)

EVENTS_HANDLED = Counter("erp_events_handled_total", "deliveries consumed, by outcome (ack, retry, dead_letter)",
                         ["consumer", "event_type", "outcome"])
EVENT_LATENCY = Histogram("erp_event_latency_seconds",
                          "from an event's creation (its envelope) to its handling by a consumer",
                          ["consumer", "event_type"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
# A batch's statements, commit and broker round trips are shared by its events: small batches make events dear.
EVENT_BATCH_SIZE = Histogram("erp_event_batch_size",
                             "events per consumer batch (stage consumed: one transaction) and per relay round "
                             "(stage published: the rows one broker transaction took)", ["service", "stage"],
                             buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
EVENT_BATCH_FALLBACKS = Counter("erp_event_batch_fallbacks_total",
                                "batches of deliveries rolled back and applied one event at a time", ["consumer"])
EVENTS_PUBLISHED = Counter("erp_events_published_total", "outbox rows handed to the transport, by result",
                           ["service", "result"])  # ok; unrouted (no queue took it: kept, tried again);
#                                                        parked (unrouted past the grace period); error (transport);
#                                                        unsubscribed (a type no service consumes, that no queue took)
ROWS_PRUNED = Counter("erp_rows_pruned_total", "outbox, inbox and idempotency-key rows deleted past their retention",
                      ["service", "table"])
CACHE_READS = Counter("erp_cache_reads_total", "read-through cache reads, by where the value came from",
                      ["where"])  # local (this process's copy), redis, or load (the database)
CACHE_REFRESHES = Counter("erp_cache_refreshes_total",
                          "values due for a background refresh before they expire, by outcome", ["outcome"])
# renewed, refused (a newer or different value in Redis), skipped (gone, or renewed elsewhere), failed
CACHE_TRACKING = Gauge("erp_cache_invalidations_following", "1 while Redis pushes this process its invalidations")
SERVING = Gauge("erp_serving", "1 while this process reports SERVING to health checks", ["service"])
SERVING_CHANGES = Counter("erp_serving_changes_total", "times this process's health status flipped", ["service"])
# The order-to-cash saga's deadline (services/orders/deadline.py): a PENDING order past it is driven
# again (its OrderPlaced published anew), then rejected with its compensations once the tries are spent.
ORDERS_DRIVEN_AGAIN = Counter("erp_orders_driven_again_total",
                              "pending orders past their deadline whose saga requests were published again")
ORDERS_REJECTED_BY_DEADLINE = Counter("erp_orders_rejected_by_deadline_total",
                                      "pending orders rejected because their saga was still unanswered after every try")
# Notification's events about a customer it had no contact data for (services/notification/domain.py
# Held): counted as they start waiting, are released by the customer's CustomerUpdated, or are
# given up (no_such_customer) after ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS.
HELD_NOTIFICATIONS = Counter("erp_held_notifications_total",
                             "notifications held for a customer not known yet, by the status they entered",
                             ["status"])  # waiting, released, no_such_customer
RELAY_UNAVAILABLE = Counter("erp_notification_relay_unavailable_total",
                            "times the SMTP relay could not be reached; emails then wait without an attempt")
HELD_WAITING = Gauge("erp_held_notifications_waiting",
                     "notifications waiting for their customer's contact data (as of the last give-up sweep)")


@functools.cache
def labelled(metric: M, *labels: str) -> M:
    """metric.labels(*labels), looked up once: .labels() takes a lock and builds a key on every
    call, which showed on hot paths (every RPC, every event)."""
    return metric.labels(*labels)


@functools.cache
def rpc_labels(method: str) -> tuple[str, str, str]:
    """("unary", service, method) of a full method name /pkg.Service/Method."""
    service, _, name = method.lstrip("/").partition("/")
    return "unary", service, name


class RpcServed:
    """The server-side counters of one unary method, resolved once per method."""

    def __init__(self, method: str) -> None:
        labels = rpc_labels(method)
        self._labels = labels
        self.started = GRPC_STARTED.labels(*labels)
        self.seconds = GRPC_SECONDS.labels(*labels)
        self._handled: dict[str, Counter] = {}

    def done(self, code: str, started: float) -> None:
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = GRPC_HANDLED.labels(*self._labels, code)
        handled.inc()
        self.seconds.observe(time.perf_counter() - started)


@functools.cache
def rpc_served(method: str) -> RpcServed:
    return RpcServed(method)


def observe_client(method: str, code: str, started: float) -> None:
    labels = rpc_labels(method)
    labelled(GRPC_CLIENT_HANDLED, *labels, code).inc()
    labelled(GRPC_CLIENT_SECONDS, *labels).observe(time.perf_counter() - started)


def observe_http(method: str, handler: str, status: int, started: float) -> None:
    labelled(HTTP_REQUESTS, method, handler, str(status)).inc()
    labelled(HTTP_SECONDS, method, handler).observe(time.perf_counter() - started)


_serving_now: dict[str, bool] = {}


def serving(service: str, ok: bool) -> None:
    """Records the health status a service reports; a change after the first is a flip."""
    if service in _serving_now and _serving_now[service] != ok:
        SERVING_CHANGES.labels(service).inc()
    _serving_now[service] = ok
    SERVING.labels(service).set(float(ok))
    SERVING_CHANGES.labels(service)  # the series exists from the start, at 0


def serve(port: int, host: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=host)
