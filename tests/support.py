"""Test helpers: which engines are reachable, fresh databases, in-process services."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import uuid
from concurrent import futures
from urllib.parse import urlparse

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mesh import db, probes
from mesh.events.amqp import delete_namespace
from mesh.settings import GRPC_WORKERS, Settings, load

# In CI the external engines are part of the contract: their absence fails the run.
REQUIRE_EXTERNAL = os.environ.get("ERP_TEST_REQUIRE_EXTERNAL", "").lower() in ("1", "true", "yes") or \
    os.environ.get("CI", "").lower() == "true"
EXTERNAL_PG = os.environ.get("ERP_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
EXTERNAL_REDIS = os.environ.get("ERP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
EXTERNAL_AMQP = os.environ.get("ERP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# Tests that run on both servers of a kind do so where the external one runs (in CI it must);
# on a newcomer's machine they run on the embedded one alone instead of skipping the other.
EXTERNAL_PG_RUNS = REQUIRE_EXTERNAL or probes.pg_reachable(EXTERNAL_PG)
EXTERNAL_REDIS_RUNS = REQUIRE_EXTERNAL or probes.redis_reachable(EXTERNAL_REDIS)
POSTGRES_KINDS = ["embedded", "external"] if EXTERNAL_PG_RUNS else ["embedded"]
REDIS_KINDS = ["embedded", "external"] if EXTERNAL_REDIS_RUNS else ["embedded"]


def wait_for(what: str, check, timeout: float = 20.0):
    """check()'s first truthy result, asked every 20 ms; fails naming `what` after `timeout` seconds."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}; last saw {result!r}")
        time.sleep(0.02)


def waits_on_a_lock(engine: sa.Engine, count: int = 1) -> bool:
    """Whether `count` sessions of the engine's database (or more) are waiting for a lock (a forced
    interleaving's "the other side is blocked now")."""
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                    " AND wait_event_type = 'Lock'")).scalar_one() >= count


def need(name: str, url: str, reachable: bool) -> None:
    """Skip (newcomer's machine) or fail (CI) when an external engine is not reachable."""
    if reachable:
        return
    message = f"external {name} at {redact(url)} is not reachable"
    if REQUIRE_EXTERNAL:
        pytest.fail(message + " (CI requires it: start it, see .ci/run)", pytrace=False)
    pytest.skip(message + "; set ERP_TEST_* or start it to run these tests")


def redact(url: str) -> str:
    parsed = urlparse(url)
    return url.replace(f":{parsed.password}@", ":***@") if parsed.password else url


@contextlib.contextmanager
def fresh_database(server_url: str):
    """A new, empty database on the server of server_url; dropped afterwards."""
    name = "erp_test_" + uuid.uuid4().hex[:10]
    url = make_url(db.sqlalchemy_url(server_url)).set(database=name).render_as_string(hide_password=False)
    db.ensure_database(url)
    try:
        yield url
    finally:
        admin = sa.create_engine(make_url(db.sqlalchemy_url(server_url)).set(database="postgres"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@dataclasses.dataclass(frozen=True)
class Engines:
    """Where a test's services keep data and send events."""

    database_url: str
    redis_url: str
    transport: str  # "postgres" or "amqp"
    amqp_url: str = ""
    namespace: str = "erp"


def settings_for(service: str, engines: Engines, data_dir, **overrides) -> Settings:
    """Hermetic settings: nothing from the developer's ERP_* environment leaks in."""
    base = dict(
        data_dir=data_dir, database_url=engines.database_url, redis_url=engines.redis_url,
        amqp_url=engines.amqp_url, event_transport=engines.transport, amqp_namespace=engines.namespace,
        grpc_host="127.0.0.1", grpc_port=0, metrics_port=0, migrate_on_start=True, db_pool_size=10, cache_ttl_seconds=5.0,
        cache_local_seconds=0.1,
        cache_prefix=engines.namespace,
        event_max_attempts=3, event_retry_base_ms=20, event_consumer_threads=1, relay_poll_seconds=0.05,
        unroutable_grace_seconds=300.0, health_check_seconds=0.2, shutdown_grace_seconds=2.0,
        grpc_max_workers=GRPC_WORKERS, grpc_max_concurrent_rpcs=256, grpc_max_message_bytes=4 * 1024 * 1024,
        log_level="INFO", log_format="text", env={},
        internal_auth=False, internal_token_secret="",
    )
    base.update(overrides)
    return dataclasses.replace(load(service), **base)


def stop_all(runnings, grace: float = 1) -> None:
    """Stops in-process services side by side: each waits up to half a second for its consumer
    thread's receive to return, and one after another that was ~3 s of every mesh's teardown.
    Every one is stopped; the first failure is raised after."""
    runnings = list(runnings)
    if runnings:
        with futures.ThreadPoolExecutor(len(runnings), thread_name_prefix="stop") as pool:
            outcomes = [pool.submit(r.stop, grace) for r in runnings]
        for outcome in outcomes:
            outcome.result()


def delete_amqp_namespace(url: str, namespace: str, services: list[str], base_ms: int = 20,
                          max_attempts: int = 3) -> None:
    """Removes a test run's exchange and queues from the broker: the retry queues of the tests'
    settings and of the defaults, which services started as processes use."""
    defaults = load("probe")
    delete_namespace(url, namespace, services,
                     [(base_ms, max_attempts), (defaults.event_retry_base_ms, defaults.event_max_attempts)])


def handle_batch_behind_a_lock(engine, lock_sql: str, consumer, batch: list, hold_seconds: float = 0.5,
                               while_held=None) -> list:
    """Runs consumer.handle_batch(batch) while another transaction holds the row lock of lock_sql
    for hold_seconds (then releases it); while_held() runs just before the release. The outcomes."""
    holder = engine.connect()
    holder.begin()
    holder.execute(sa.text(lock_sql))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(outcomes=consumer.handle_batch(batch)))
    worker.start()
    try:
        time.sleep(hold_seconds)
        if while_held is not None:
            while_held()
    finally:
        holder.rollback()
        holder.close()
    worker.join(20)
    return result["outcomes"]


@contextlib.contextmanager
def wrapped_method(behaviour, request_type, response_type):
    """One unary method, behind mesh's per-call wrap (mesh.interceptors), on a gRPC server of
    its own on 127.0.0.1; yields a callable that calls it."""
    import grpc

    from mesh.interceptors import ServerCalls

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.unary_unary_rpc_method_handler(behaviour, request_deserializer=request_type.FromString,
                                                  response_serializer=response_type.SerializeToString)
    ServerCalls().wrapping(server).add_registered_method_handlers("test.Wrapped", {"Call": handler})
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel.unary_unary("/test.Wrapped/Call", request_serializer=request_type.SerializeToString,
                                      response_deserializer=response_type.FromString, _registered_method=True)
    finally:
        server.stop(0)
