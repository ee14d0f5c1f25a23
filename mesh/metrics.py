"""Prometheus metrics every service exposes on ERP_METRICS_PORT (0: off) at /metrics."""
from __future__ import annotations

import functools
import time

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_REQUESTS = Counter("erp_rpc_requests_total", "gRPC calls served", ["method", "code"])
RPC_SECONDS = Histogram(
    "erp_rpc_duration_seconds", "gRPC call latency", ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
GATEWAY_REQUESTS = Counter("erp_gateway_requests_total", "calls through the gateway",
                           ["edge", "method", "outcome"])  # edge grpc|rest; outcome: gRPC code or HTTP status
GATEWAY_SECONDS = Histogram(
    "erp_gateway_duration_seconds", "time in the gateway, upstream call included", ["edge"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_HANDLED = Counter("erp_events_handled_total", "events consumed", ["consumer", "event_type", "outcome"])
EVENT_BATCH_FALLBACKS = Counter("erp_event_batch_fallbacks_total",
                                "batches of deliveries rolled back and applied one event at a time", ["consumer"])
EVENTS_PUBLISHED = Counter("erp_events_published_total", "outbox rows confirmed by the transport", ["service"])
CACHE_READS = Counter("erp_cache_reads_total", "read-through cache reads, by where the value came from",
                      ["where"])  # local (this process's copy), redis, or load (the database)
CACHE_TRACKING = Gauge("erp_cache_invalidations_following", "1 while Redis pushes this process its invalidations")
# The order-to-cash saga's deadline (services/orders/deadline.py): a PENDING order past it is driven
# again (its OrderPlaced published anew), then rejected with its compensations once the tries are spent.
ORDERS_DRIVEN_AGAIN = Counter("erp_orders_driven_again_total",
                              "pending orders past their deadline whose saga requests were published again")
ORDERS_REJECTED_BY_DEADLINE = Counter("erp_orders_rejected_by_deadline_total",
                                      "pending orders rejected because their saga was still unanswered after every try")
PUBLISH_FAILURES = Counter("erp_event_publish_failures_total", "outbox rows the transport refused",
                           ["service", "reason"])
# Notification's events about a customer it had no contact data for (services/notification/domain.py
# Held): counted as they start waiting, are released by the customer's CustomerUpdated, or are
# given up (no_such_customer) after ERP_NOTIFICATION_CUSTOMER_WAIT_SECONDS.
HELD_NOTIFICATIONS = Counter("erp_held_notifications_total",
                             "notifications held for a customer not known yet, by the status they entered",
                             ["status"])  # waiting, released, no_such_customer
HELD_WAITING = Gauge("erp_held_notifications_waiting",
                     "notifications waiting for their customer's contact data (as of the last give-up sweep)")


@functools.cache
def labelled(metric, *labels: str):
    """metric.labels(*labels), looked up once: .labels() takes a lock and builds a key on every
    call, which showed on hot paths (every RPC, every event)."""
    return metric.labels(*labels)


def observe_gateway(edge: str, method: str, outcome: str, started: float) -> None:
    GATEWAY_REQUESTS.labels(edge, method, outcome).inc()
    GATEWAY_SECONDS.labels(edge).observe(time.perf_counter() - started)


def serve(port: int, host: str = "0.0.0.0") -> None:
    if port > 0:
        start_http_server(port, addr=host)
