"""Every metric the chart's dashboards and alerts query exists in a real scrape of the running mesh.

The mesh runs as `make run` runs it (each service its own process, each serving its own /metrics),
plus the gateway; one order goes through the gateway's REST edge to its confirmation, so the series
of calls, events and the saga exist. Then every process is scraped, and each expression of
helm/erp/files/alerts.yaml and helm/erp/dashboards/*.json (tests/chart/promql.py reads them) must find:
- its metric names (a histogram's _bucket, _sum and _count by the histogram's name);
- the labels its selectors match on and its by/on clauses group by, on those metrics;
- the values its exact matchers ask for (grpc_code="OK", consumer="orders", status="PENDING"...).
Labels Prometheus adds when it scrapes (namespace, job, instance, pod) are not the processes' to expose.
"""
from __future__ import annotations

import collections
import os
import urllib.request

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from erp.orders.v1 import orders_pb2 as pb
from erp_client import demo
from services import EDGE, RUNNABLE
from services.devrun import start_mesh, stop_mesh, wait_serving
from tests.chart import promql
from tests.e2e import test_mesh_processes as mesh_processes
from tests.e2e.test_gateway_processes import dev_token
from tests.e2e.test_mesh_processes import client_for, free_ports

pytestmark = pytest.mark.e2e

processes = mesh_processes.processes  # every service as a process, each with its own metrics port


class Scrape:
    """What the processes exposed: per sample name, the label sets seen; and the histograms' names."""

    def __init__(self) -> None:
        self.samples: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
        self.histograms: set[str] = set()

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            if family.type == "histogram":
                self.histograms.add(family.name)
            for sample in family.samples:
                self.samples[sample.name].append(dict(sample.labels))

    def series_of(self, name: str) -> list[dict[str, str]] | None:
        """The label sets of a name a query uses, or None when the scrape lacks it."""
        if name in self.samples:
            return self.samples[name]
        base = promql.base_name(name)
        if base != name and base in self.histograms:
            return self.samples.get(f"{base}_bucket", [])
        return None


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _problems(query: promql.Query, scrape: Scrape) -> list[str]:
    problems = []
    series: list[dict[str, str]] = []
    for selector in promql.selectors(query.expr):
        found = scrape.series_of(selector.metric)
        if found is None:
            problems.append(f"no metric {selector.metric}")
            continue
        series += found
        for label, operator, value in selector.matchers:
            if label in promql.TARGET_LABELS:
                continue
            values = {s[label] for s in found if label in s}
            if not values:
                problems.append(f"{selector.metric} has no label {label}")
            elif operator == "=" and value not in values:
                problems.append(f'{selector.metric}{{{label}="{value}"}}: no such series (seen: {sorted(values)})')
    for label in promql.grouping_labels(query.expr) - promql.TARGET_LABELS - {"le"}:
        if series and not any(label in s for s in series):
            problems.append(f"groups by {label}, which none of its metrics has")
    return problems


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_dashboards_and_alerts_name_only_metrics_the_mesh_exposes(processes, engines, tmp_path):
    started, ports = processes
    gateway_metrics, http_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update(ERP_REDIS_URL=engines.redis_url, ERP_CACHE_PREFIX=engines.namespace, ERP_DATA_DIR=str(tmp_path),
               ERP_LOG_FORMAT="text", ERP_SHUTDOWN_GRACE_SECONDS="3", ERP_GATEWAY_DEV_ISSUER="true",
               ERP_GATEWAY_HTTP_PORT=str(http_port))
    gateway = start_mesh(EDGE, env, ports=ports, metrics_ports={"gateway": gateway_metrics})
    try:
        wait_serving(gateway[0][2], timeout=60)
        with client_for(ports) as erp:
            demo.load(erp)
            base = f"http://127.0.0.1:{http_port}"
            auth = {"Authorization": f"Bearer {dev_token(env, 'orders.read', 'orders.write')}"}
            placed = requests.post(f"{base}/v1/orders", headers=auth, timeout=10, json={
                "requestId": "metrics-contract-1", "customerId": "CUST-1", "currencyCode": "EUR",
                "lines": [{"sku": "CHAIR-OAK", "warehouseCode": "MAIN", "quantity": "2",
                           "unitPrice": {"currencyCode": "EUR", "amount": "89.90"}}]})
            assert placed.status_code == 200, placed.text
            order_id = placed.json()["order"]["orderId"]
            confirmed = erp.wait_for_order(order_id, timeout=30)
            assert confirmed.status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED)
            assert requests.get(f"{base}/v1/orders/{order_id}", headers=auth, timeout=10).status_code == 200
        scrape = Scrape()
        metrics_ports = {name: proc.metrics_port for name, proc, _ in started}
        metrics_ports["gateway"] = gateway_metrics
        assert set(metrics_ports) == {*RUNNABLE, *EDGE}
        for port in metrics_ports.values():
            scrape.add(_scrape(port))
    finally:
        stop_mesh(gateway)
    queries = promql.all_queries()
    assert {q.kind for q in queries} == {"alert", "panel", "variable"} and len(queries) > 50
    failures = {f"{q.where}: {q.expr}": p for q in queries if (p := _problems(q, scrape))}
    missing = sorted({p.removeprefix("no metric ") for ps in failures.values() for p in ps if p.startswith("no metric")})
    assert not failures, f"metrics missing from the scrape: {missing}\n" + "\n".join(
        f"- {where}\n    " + "\n    ".join(problems) for where, problems in failures.items())
