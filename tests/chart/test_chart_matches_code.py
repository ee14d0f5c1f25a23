"""The chart and the code agree.

Statically: every service in values.yaml exists, has the port and gRPC service name the code has, every
service the code runs (services.RUNNABLE) has an enabled entry, every method the chart grants exists in
the generated descriptors, and every ERP_* variable the chart sets is one the code reads.

By running it: the chart is rendered, the migration Job's container and then each service's container
are started locally with exactly the rendered command, args and env (secrets filled with test values,
cluster host names mapped to the local PostgreSQL, Redis and RabbitMQ), and the probes the chart declares
(gRPC port + service name) must answer SERVING; the metrics port must serve /metrics; the service must
have declared its queue on the RabbitMQ the chart pointed it at; and SIGTERM must end it within the pod's
terminationGracePeriodSeconds. A renamed env var or a wrong port in the chart fails this; the last test
proves it by breaking the rendered Deployment on purpose.
"""
from __future__ import annotations

import ast
import copy
import importlib
import json
import os
import re
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pika
import pytest
import sqlalchemy as sa
import yaml
from google.protobuf import descriptor_pool
from sqlalchemy.engine import make_url

from mesh import db, settings
from services import EDGE, PORTS, RUNNABLE
from tests import support
from tests.chart import podrun
from tests.chart.conftest import CHART, COMBINATIONS, NAMESPACE, RELEASE, documents, render

ROOT = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())


def _service_descriptor(full_name: str):
    package = full_name.rsplit(".", 1)[0]  # erp.orders.v1
    domain = package.split(".")[1]
    importlib.import_module(f"{package}.{domain}_pb2")
    return descriptor_pool.Default().FindServiceByName(full_name)


def _all_values() -> list[dict]:
    return [VALUES] + [yaml.safe_load(p.read_text()) for files in COMBINATIONS.values() for p in files]


@pytest.mark.parametrize("name", sorted(VALUES["services"]))
def test_each_chart_service_is_the_code_s_service(name):
    svc = VALUES["services"][name]
    assert (ROOT / "services" / name / "__main__.py").is_file(), f"no services/{name}: `python -m services.{name}` fails"
    assert svc["port"] == PORTS[name], "values.yaml and services.PORTS disagree"
    spec = importlib.import_module(f"services.{name}.service").spec()
    assert svc["grpcService"] in spec.grpc_services, \
        f"the probes ask health for {svc['grpcService']}, the service registers {spec.grpc_services}"
    _service_descriptor(svc["grpcService"])


def test_every_method_the_chart_grants_exists():
    grants = []
    for values in _all_values():
        for caller, svc in (values.get("services") or {}).items():
            grants += [(f"services.{caller}.calls", callee, m) for callee, ms in (svc.get("calls") or {}).items() for m in ms]
            grants += [(f"services.{caller}.callers", caller, m) for c in svc.get("callers") or [] for m in c["methods"]]
        for callee, ms in ((values.get("loadtest") or {}).get("calls") or {}).items():
            grants += [("loadtest.calls", callee, m) for m in ms]
    assert grants
    for where, callee, method in grants:
        service = _service_descriptor(VALUES["services"][callee]["grpcService"])
        assert method == "*" or method in service.methods_by_name, \
            f"{where}: {service.full_name} has no method {method} (it has {sorted(service.methods_by_name)})"


def test_the_gateway_in_the_chart_is_the_code_s_gateway(helm):
    """The gateway has a block of its own (gateway:, no database, no events), enabled by default; its
    Deployment (the generic one, from erp.components) probes a name the gateway registers."""
    gateway = VALUES["gateway"]
    assert gateway["enabled"] and gateway["port"] == PORTS["gateway"]
    spec = importlib.import_module("services.gateway.service").spec()
    deployment = next(d for d in render(helm) if d["kind"] == "Deployment"
                      and d["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["grpc"] == {"port": gateway["port"], "service": container[probe]["grpc"]["service"]}
        assert container[probe]["grpc"]["service"] in spec.grpc_services, "the probes ask for another name"


def test_services_in_the_code_have_a_chart_entry():
    """Every service the code runs is deployed by default: a new service without a chart entry fails here."""
    runnable = set(RUNNABLE) | {p.parent.name for p in (ROOT / "services").glob("*/__main__.py")} - set(EDGE)
    missing = sorted(name for name in runnable if name not in VALUES["services"])
    assert not missing, (f"services {missing} exist in services/ but not in helm/erp/values.yaml: add them (a values "
                         "change: port, grpcService, postgresql) and their databases to k8s/postgres.yaml")
    disabled = sorted(name for name in runnable if not VALUES["services"][name]["enabled"])
    assert not disabled, f"services {disabled} run with `make run` but are disabled in helm/erp/values.yaml"


class _Recorder(dict):
    """os.environ stand-in that records the names the code asks for."""

    def __init__(self):
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return default

    def __getitem__(self, key):
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key):
        self.asked.add(key)
        return False


def _names_spelled_in_the_code() -> set[str]:
    """ERP_* names the code spells out whole as string literals: a service's own settings
    (ERP_FINANCE_TAX_RATE, ERP_WEBHOOK_SECRET...) are read with Settings.get, not by settings.load."""
    names = set()
    for path in [*(ROOT / "mesh").rglob("*.py"), *(ROOT / "services").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"ERP_[A-Z0-9_]+", node.value):
                names.add(node.value)
    return names


def _names_the_code_reads(monkeypatch) -> set[str]:
    recorder = _Recorder()
    monkeypatch.setattr(os, "environ", recorder)
    read_text = settings.Variables.text  # every typed read of a variable goes through it

    def recording(variables, name, default=""):
        recorder.asked.add(name)
        return read_text(variables, name, default)

    monkeypatch.setattr(settings.Variables, "text", recording)
    for name in PORTS:
        settings.load(name)
    monkeypatch.undo()
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(ERP_[A-Z0-9_]+)`", readme))
    return recorder.asked | documented | _names_spelled_in_the_code()


@pytest.mark.parametrize("combination", COMBINATIONS)
def test_every_setting_the_chart_passes_is_one_the_code_reads(helm, renderings, combination, monkeypatch):
    read = _names_the_code_reads(monkeypatch)
    assert {"ERP_GRPC_PORT", "ERP_AMQP_URL", "ERP_INVENTORY_DATABASE_URL", "ERP_FINANCE_TAX_RATE",
            "ERP_WEBHOOK_SECRET", "ERP_SMTP_URL"} <= read
    for doc in documents(renderings[combination]):
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                if env["name"].startswith("ERP_"):  # ERP_<SERVICE>_TARGET: read by its pattern
                    assert env["name"] in read or settings.TARGET_VARIABLE.fullmatch(env["name"]), \
                        f"{doc['kind']}/{doc['metadata']['name']} sets {env['name']}, which no code reads (renamed?)"


# --------------------------------------------------------------------------------------------------
# Running the rendered containers.

def _url_parts(url: str):
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port, unquote(parts.username or ""), unquote(parts.password or "")


@pytest.fixture
def cluster(helm, external_amqp, external_pg, external_redis, tmp_path):
    """The chart rendered for the local engines, with a fresh database and RabbitMQ namespace. The
    pods reach their servers over TCP, as in a cluster: the external ones (the broker asked first,
    so that without one the skip names it)."""
    namespace = "erpchart-" + uuid.uuid4().hex[:8]
    enabled = sorted(n for n, s in VALUES["services"].items() if s["enabled"])
    ports = podrun.free_ports(len(enabled) + 3)
    pg_host, pg_port, pg_user, pg_password = _url_parts(external_pg)
    redis_host, redis_port, _, redis_password = _url_parts(external_redis)
    amqp_host, amqp_port, amqp_user, amqp_password = _url_parts(external_amqp)
    redis_parts = urlsplit(external_redis)
    with support.fresh_database(external_pg) as database_url:
        database = make_url(db.sqlalchemy_url(database_url)).database
        overrides = {
            "metrics.port": ports[-1],
            "gateway.port": ports[-2],
            "gateway.httpPort": ports[-3],
            "postgresql.sslmode": "prefer",
            "postgresql.port": pg_port or 5432,
            "redis.port": redis_port or 6379,
            "redis.db": int(redis_parts.path.strip("/") or 0),
            "amqp.port": amqp_port or 5672,
            "amqp.vhost": unquote(urlsplit(external_amqp).path[1:]) or "/",
            "config.amqpNamespace": namespace,
            "config.shutdownGraceSeconds": 3,
            "config.preStopSleepSeconds": 1,
            # one call inside the release, so the rendered targets are exercised too
            "services.orders.calls": {"inventory": ["GetStock"]},
        }
        for name, port in zip(enabled, ports, strict=False):
            overrides[f"services.{name}.port"] = port
            overrides[f"services.{name}.postgresql.database"] = database
        docs = render(helm, set_json={k: json.dumps(v) for k, v in overrides.items()})
        secrets: dict[tuple[str, str], str] = {}
        hosts: dict[str, str] = {}
        for name in enabled:
            pg = {**VALUES["postgresql"], **VALUES["services"][name].get("postgresql", {})}
            secrets[(pg["existingSecret"], pg["usernameKey"])] = pg_user
            secrets[(pg["existingSecret"], pg["passwordKey"])] = pg_password
            hosts[pg["host"]] = pg_host
            for suffix in ("", "-headless"):
                hosts[f"{RELEASE}-{name}{suffix}.{NAMESPACE}.svc"] = "127.0.0.1"
        for name in enabled:
            for setting, ref in (VALUES["services"][name].get("secretEnv") or {}).items():
                secrets[(ref["secretName"], ref["key"])] = f"chart-test-{setting.lower()}"
        secrets[(VALUES["internalAuth"]["existingSecret"], VALUES["internalAuth"]["key"])] = \
            "chart-test-internal-token-secret-" + uuid.uuid4().hex
        secrets[(VALUES["redis"]["existingSecret"], VALUES["redis"]["passwordKey"])] = redis_password
        secrets[(VALUES["amqp"]["existingSecret"], VALUES["amqp"]["usernameKey"])] = amqp_user
        secrets[(VALUES["amqp"]["existingSecret"], VALUES["amqp"]["passwordKey"])] = amqp_password
        hosts[VALUES["redis"]["host"]] = redis_host
        hosts[urlsplit(VALUES["gateway"]["jwksUrl"]).hostname] = "127.0.0.1"  # the issuer: not there, keys stay empty
        hosts[VALUES["amqp"]["host"]] = amqp_host
        yield Cluster(docs, secrets, hosts, database_url, external_amqp, namespace, enabled, tmp_path)
    env = Cluster.container_env_of(docs, secrets, hosts, "Deployment", f"{RELEASE}-inventory")
    support.delete_amqp_namespace(external_amqp, namespace, enabled,
                                  base_ms=int(env.get("ERP_EVENT_RETRY_BASE_MS", 200)),
                                  max_attempts=int(env.get("ERP_EVENT_MAX_ATTEMPTS", 5)))


class Cluster:
    def __init__(self, docs, secrets, hosts, database_url, amqp_url, namespace, enabled, tmp):
        self.docs, self.secrets, self.hosts = docs, secrets, hosts
        self.database_url, self.amqp_url, self.namespace = database_url, amqp_url, namespace
        self.enabled, self.tmp = enabled, tmp

    def find(self, kind: str, name: str) -> dict:
        return next(d for d in self.docs if d["kind"] == kind and d["metadata"]["name"] == name)

    @staticmethod
    def container_env_of(docs, secrets, hosts, kind, name) -> dict[str, str]:
        doc = next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
        container = doc["spec"]["template"]["spec"]["containers"][0]
        return podrun.localize(podrun.resolve_env(container, secrets), hosts)

    def env(self, container: dict) -> dict[str, str]:
        return podrun.localize(podrun.resolve_env(container, self.secrets), self.hosts)

    def migrate(self) -> None:
        job = self.find("Job", f"{RELEASE}-migrations")
        container = job["spec"]["template"]["spec"]["containers"][0]
        code, output = podrun.run_to_completion("migrations", container, self.env(container), self.tmp,
                                                timeout=job["spec"]["activeDeadlineSeconds"])
        asked = container.get("args", [])
        done = set(re.findall(r"^(\w+): schema \w+ is at the newest revision", output, re.M))
        hint = ("\nIt migrated every service the Job names and then went on to one it does not: "
                f"services.tools.migrate must migrate only the services named in its arguments {asked} (the chart "
                "passes the enabled ones; the others have no database URL in the Job)"
                if code != 0 and set(asked) <= done else "")
        assert code == 0, f"the migration Job's container failed ({code}):\n{output}{hint}"
        engine = sa.create_engine(db.sqlalchemy_url(self.database_url))
        try:
            with engine.connect() as conn:
                migrated = set(conn.execute(sa.text(
                    "SELECT table_schema FROM information_schema.tables WHERE table_name = 'alembic_version'")).scalars())
        finally:
            engine.dispose()
        assert set(self.enabled) <= migrated, f"the Job migrated {sorted(migrated)}, not {self.enabled}"

    def start(self, deployment: dict) -> podrun.Pod:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return podrun.Pod(deployment["metadata"]["name"], container, self.env(container), self.tmp)

    def check_pod(self, deployment: dict, probe_timeout: float | None = None, consumes_events: bool = True) -> None:
        """Starts the Deployment's container and checks what the kubelet and Prometheus would see."""
        spec = deployment["spec"]["template"]["spec"]
        container = spec["containers"][0]
        ip = podrun.pod_ip()
        pod = self.start(deployment)
        try:
            startup = container["startupProbe"]
            budget = probe_timeout or min(60.0, startup["periodSeconds"] * startup["failureThreshold"])
            pod.wait_health(ip, startup["grpc"]["port"], startup["grpc"].get("service", ""), budget)
            for probe in ("readinessProbe", "livenessProbe"):
                grpc_probe = container[probe]["grpc"]
                pod.wait_health(ip, grpc_probe["port"], grpc_probe.get("service", ""), timeout=5)
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            if "metrics" in ports:
                with urllib.request.urlopen(f"http://{ip}:{ports['metrics']}/metrics", timeout=5) as response:
                    assert response.status == 200 and b"grpc_server_handled_total" in response.read()
            if consumes_events:
                self._check_queue(pod, container["name"], timeout=5 if probe_timeout else 20)
            code = pod.terminate(grace=spec["terminationGracePeriodSeconds"])
            assert code == 0, f"{pod.name} exited with {code} on SIGTERM:\n{pod.output()}"
        finally:
            pod.kill()

    def _check_queue(self, pod: podrun.Pod, service: str, timeout: float) -> None:
        """The service consumes from the RabbitMQ and namespace the chart gave it."""
        queue = f"{self.namespace}.{service}"
        deadline = time.monotonic() + timeout
        while True:
            pod.alive()
            conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
            consumers = 0
            try:
                # A consumer, not only the queue: the migrations Job declares every queue up front.
                consumers = conn.channel().queue_declare(queue, passive=True).method.consumer_count
            except pika.exceptions.ChannelClosedByBroker:
                pass
            finally:
                if conn.is_open:
                    conn.close()
            if consumers:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{pod.name} never consumed from queue {queue}: wrong AMQP URL or namespace?\n"
                                     f"{pod.output()}")
            time.sleep(0.3)


@pytest.mark.external
@pytest.mark.rabbitmq
def test_rendered_pods_start_and_pass_the_probes_the_chart_declares(cluster):
    cluster.migrate()
    for name in cluster.enabled:
        cluster.check_pod(cluster.find("Deployment", f"{RELEASE}-{name}"))
    cluster.check_pod(cluster.find("Deployment", f"{RELEASE}-gateway"), consumes_events=False)


def _break_env(deployment: dict, old: str, new: str) -> dict:
    broken = copy.deepcopy(deployment)
    for env in broken["spec"]["template"]["spec"]["containers"][0]["env"]:
        if env["name"] == old:
            env["name"] = new
            return broken
    raise AssertionError(f"{old} not in the Deployment")


@pytest.mark.external
@pytest.mark.rabbitmq
def test_the_check_fails_on_a_renamed_env_var_or_a_wrong_port(cluster):
    """The previous test is only worth something if it catches the mistakes it is there for."""
    cluster.migrate()
    inventory = cluster.find("Deployment", f"{RELEASE}-inventory")
    container = inventory["spec"]["template"]["spec"]["containers"][0]
    breakages = {
        "renamed database URL": _break_env(inventory, "ERP_INVENTORY_DATABASE_URL", "ERP_INVENTORY_DB_URL"),
        "renamed AMQP URL": _break_env(inventory, "ERP_AMQP_URL", "ERP_RABBITMQ_URL"),
        "renamed gRPC port": _break_env(inventory, "ERP_GRPC_PORT", "ERP_PORT"),
        "renamed gRPC host": _break_env(inventory, "ERP_GRPC_HOST", "ERP_HOST"),
    }
    wrong_port = copy.deepcopy(inventory)
    probe_port = container["readinessProbe"]["grpc"]["port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        wrong_port["spec"]["template"]["spec"]["containers"][0][probe]["grpc"]["port"] = probe_port + 1
    breakages["probes on a wrong port"] = wrong_port
    for what, broken in breakages.items():
        with pytest.raises(AssertionError):
            cluster.check_pod(broken, probe_timeout=4)
        print(f"caught: {what}")
