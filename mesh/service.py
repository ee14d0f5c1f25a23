"""Running a service: database and migrations, cache, event backbone, gRPC server,
health, reflection, and a graceful shutdown. Every service's __main__ calls run()."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from types import FrameType
from typing import Generic, TypeVar, cast

import grpc
import sqlalchemy as sa
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from sqlalchemy.engine import make_url

from mesh import db, embedded, idempotency, logs, metrics, retention, sampled, tracing
from mesh.cache import Cache
from mesh.events import topology
from mesh.events.amqp import AmqpTransport
from mesh.events.consumer import Consumer, EventHandlers
from mesh.events.pgbus import PgTransport
from mesh.events.relay import Relay
from mesh.events.transport import Subscription
from mesh.interceptors import HandlerRegistry, InternalAuth, ServerCalls
from mesh.settings import Settings, load
from mesh.uow import UnitOfWork

log = logging.getLogger("mesh.service")
# The service's own unit of work (a UnitOfWork subclass with its repositories): what runtime.uow()
# returns to its servicers, handlers and background work.
U = TypeVar("U", bound=UnitOfWork)


@dataclasses.dataclass(frozen=True)
class ServiceSpec(Generic[U]):
    """What makes one service: its name, schema migrations, gRPC servicers and event handlers."""

    name: str
    migrations_dir: Path
    grpc_services: tuple[str, ...]  # full names, for health and reflection
    # registers the servicers on a grpc.Server's stand-in that wraps each method (mesh.interceptors)
    add_servicers: Callable[[HandlerRegistry, Runtime[U]], None]
    uow_class: type[U]
    # Every consuming service's event types (services/topology.py): declared before this service
    # publishes anything, so no event finds a consumer's queue missing.
    consumers: Callable[[], topology.Consumers]
    build_handlers: Callable[[Runtime[U]], EventHandlers] | None = None
    # Other long-running work of the service (for example notification's dispatcher): run in
    # its own thread with the runtime and the stop event; it must return soon after stop is set.
    background: Callable[[Runtime[U], threading.Event], None] | None = None
    # The service reads through the cache's in-process copy (Cache.read_through): follow
    # Redis's invalidations in a thread, so those copies stay fresh.
    near_cache: bool = False
    # Gauges of the service's own, read from its database on scrape (mesh.sampled), beside the
    # outbox and dead-letter gauges every service has.
    gauges: Callable[[Runtime[U]], sampled.Gauges] | None = None
    # Its gRPC port when ERP_GRPC_PORT is not set (services.PORTS; a deployment sets the variable).
    port: int = 0


@dataclasses.dataclass
class Runtime(Generic[U]):
    """The adapters a service's handlers use, built once per process."""

    settings: Settings
    engine: sa.Engine
    cache: Cache
    transport: AmqpTransport | PgTransport
    relay: Relay
    uow_class: type[U]
    health_engine: sa.Engine  # a new connection per check, short timeouts (db.health_engine)

    def database_answers(self) -> bool:
        """Whether the database answers within seconds, asked on a connection of its own."""
        return db.ping(self.health_engine)

    def uow(self) -> U:
        """A new unit of work of the service's own class (enter it: `with runtime.uow() as uow:`)."""
        return self.uow_class(self.engine, self.settings.service, on_events=self.relay.wake.set)


@dataclasses.dataclass
class RunningService(Generic[U]):
    spec: ServiceSpec[U]
    runtime: Runtime[U]
    server: grpc.Server
    port: int
    health: health.HealthServicer
    stop_event: threading.Event
    threads: list[threading.Thread]
    unwatch: Callable[[], None] = lambda: None  # stops serving the service's sampled gauges

    def stop(self, grace: float | None = None) -> None:
        """Graceful: report NOT_SERVING, refuse new calls, drain in-flight ones, close pools."""
        grace = self.runtime.settings.shutdown_grace_seconds if grace is None else grace
        log.info("draining (grace %.1fs)", grace)
        self.health.enter_graceful_shutdown()
        metrics.serving(self.runtime.settings.service, False)
        self.server.stop(grace).wait()
        self.unwatch()
        self.stop_event.set()
        self.runtime.relay.wake.set()
        for thread in self.threads:
            thread.join(timeout=10)
        self.runtime.cache.close()
        self.runtime.engine.dispose()
        log.info("stopped")


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded.postgres_url(settings.data_dir)


def redis_url(settings: Settings) -> str:
    return settings.redis_url or embedded.redis_url(settings.data_dir)


def build_runtime(spec: ServiceSpec[U], settings: Settings) -> Runtime[U]:
    url = database_url(settings)
    db.ensure_database(url)
    engine = db.create_engine(url, schema=settings.schema, pool_size=settings.db_pool_size,
                              timeouts=db.Timeouts.from_env(settings.env))
    tracing.instrument_engine(engine)
    if settings.migrate_on_start:
        db.migrate(engine, settings.schema, spec.migrations_dir)
    cache = Cache(redis_url(settings), prefix=f"{settings.cache_prefix}:{settings.service}",
                  ttl_seconds=settings.cache_ttl_seconds, local_ttl_seconds=settings.cache_local_seconds,
                  socket_timeout=settings.redis_socket_timeout_seconds,
                  connect_timeout=settings.redis_connect_timeout_seconds)
    if settings.event_transport == "amqp":
        transport: AmqpTransport | PgTransport = AmqpTransport.from_settings(settings)
    else:
        transport = PgTransport(engine, libpq_dsn(url))
    # Every consumer's queue and bindings exist before this service publishes anything.
    consumers = spec.consumers()
    topology.declare_at_start(transport, consumers)
    relay = Relay(engine, settings.service, topology.declaring(transport, consumers), settings.relay_poll_seconds,
                  settings.unroutable_grace_seconds, consumed=topology.consumed(consumers))
    return Runtime(settings, engine, cache, transport, relay, spec.uow_class,
                   db.health_engine(url, schema=settings.schema))


def internal_auth(settings: Settings) -> InternalAuth | None:
    """ERP_INTERNAL_AUTH on: every erp call must carry the gateway's internal token."""
    if not settings.internal_auth:
        return None
    return InternalAuth(settings.internal_token_secret)


def grpc_server(settings: Settings, reuse_port: bool = False) -> grpc.Server:
    """A service's gRPC server, not started, with nothing registered yet."""
    return grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.grpc_max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
            ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
            ("grpc.so_reuseport", 1 if reuse_port else 0),
            # Clients reconnect (and re-resolve DNS) every few minutes, so replicas added
            # by an autoscaler get traffic; in-flight calls get 30 s to finish.
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
        ],
        maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
    )


def libpq_dsn(url: str) -> str:
    return make_url(db.sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def start(spec: ServiceSpec[U], settings: Settings, reuse_port: bool = False) -> RunningService[U]:
    """Starts the service; binds settings.grpc_port (0 picks a free port, for tests).
    reuse_port: share the port with sibling processes (SO_REUSEPORT); otherwise a port
    already taken is an error, not a silent split of the traffic."""
    runtime = build_runtime(spec, settings)
    stop_event = threading.Event()
    threads = [threading.Thread(target=runtime.relay.run, args=(stop_event,), name="relay", daemon=True)]
    if spec.near_cache:
        threads.append(threading.Thread(target=runtime.cache.follow_invalidations, args=(stop_event,),
                                        name="cache-invalidations", daemon=True))
    handlers = spec.build_handlers(runtime) if spec.build_handlers else None
    if handlers is not None and handlers.handlers:
        consumer = Consumer(handlers, runtime.uow, settings.event_max_attempts, settings.event_retry_base_ms,
                            ready=runtime.database_answers)

        def subscribe() -> Subscription:
            return runtime.transport.subscribe(spec.name, handlers.event_types)

        threads += [threading.Thread(target=consumer.run, args=(subscribe, stop_event), name=f"consumer-{i}",
                                     daemon=True) for i in range(settings.event_consumer_threads)]
    if spec.background is not None:
        threads.append(threading.Thread(target=spec.background, args=(runtime, stop_event),
                                        name=f"{spec.name}-background", daemon=True))
    server = grpc_server(settings, reuse_port)
    calls: HandlerRegistry = ServerCalls(internal_auth(settings), service=spec.name).wrapping(server)
    guard = idempotency_guard(spec, runtime)
    if guard is not None:  # only a service with mutating RPCs (a request_id field) has keys to keep
        calls = guard.wrapping(calls)
    threads.append(threading.Thread(
        target=retention.run_pruner, name="pruner", daemon=True,
        args=(spec.name, runtime.engine, retention.from_settings(settings.variables, with_keys=guard is not None),
              stop_event,
              settings.variables.number("ERP_PRUNE_SECONDS", retention.PRUNE_SECONDS, least=1))))
    spec.add_servicers(calls, runtime)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    # add_HealthServicer_to_server calls only add_generic_rpc_handlers and add_registered_method_handlers,
    # which the stand-in has; its stubs ask for a whole grpc.Server
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, cast(grpc.Server, calls))
    names = (*spec.grpc_services, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    if port == 0:
        raise RuntimeError(f"cannot bind {settings.grpc_host}:{settings.grpc_port}")
    monitor = threading.Thread(target=_monitor_health, name="health",
                               args=(runtime, health_servicer, spec.grpc_services, stop_event), daemon=True)
    threads.append(monitor)
    _set_health(spec.name, health_servicer, spec.grpc_services, db.ping(runtime.engine))
    for thread in threads:
        thread.start()
    server.start()
    log.info("%s listening on %s:%d", spec.name, settings.grpc_host, port)
    unwatch = sampled.watch(spec.name, runtime.engine, spec.gauges(runtime) if spec.gauges else None)
    return RunningService(spec, runtime, server, port, health_servicer, stop_event, threads, unwatch)


def idempotency_guard(spec: ServiceSpec[U], runtime: Runtime[U]) -> idempotency.Idempotency | None:
    """The idempotency keys of the service's mutating RPCs (mesh/idempotency.py); None when it has none."""
    if not idempotency.mutating_methods(spec.grpc_services):
        return None
    return idempotency.Idempotency(runtime.engine)


def _set_health(service: str, servicer: health.HealthServicer, services: tuple[str, ...], ok: bool) -> None:
    """The named services follow the database (readiness); "" only says the process is
    up (liveness), so a database outage takes pods out of rotation without restarting
    them. Draining turns everything NOT_SERVING."""
    status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
    metrics.serving(service, ok)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in services:
        servicer.set(name, status)


def _monitor_health(runtime: Runtime[U], servicer: health.HealthServicer, services: tuple[str, ...],
                    stop: threading.Event) -> None:
    """NOT_SERVING while the service's database is unreachable."""
    last = None
    while not stop.wait(runtime.settings.health_check_seconds):
        ok = runtime.database_answers()
        if ok != last:
            if last is not None:
                log.warning("database %s; health %s", "back" if ok else "unreachable",
                            "SERVING" if ok else "NOT_SERVING")
            last = ok
        if not stop.is_set():
            _set_health(runtime.settings.service, servicer, services, ok)


def run(spec: ServiceSpec[U]) -> None:
    """Entry point of `python -m services.<name>`: serve until SIGTERM or SIGINT."""
    settings = load(spec.name, spec.port)
    logs.configure(spec.name, settings.log_level, settings.log_format)
    if settings.processes > 1:
        sys.exit(_run_processes(spec, settings))
    metrics.serve(settings.metrics_port, settings.grpc_host)
    tracing.configure(spec.name)
    running = start(spec, settings)
    wait_for_stop_signal()
    running.stop()
    tracing.shutdown()


def _run_processes(spec: ServiceSpec[U], settings: Settings) -> int:
    """ERP_PROCESSES > 1: forks that many server processes on one port (SO_REUSEPORT; the
    kernel spreads connections over them), each with its own pools, consumers and relay
    (one relay leads, by advisory lock). They are forked before any gRPC object or thread
    exists, as gRPC requires. This parent only forwards SIGTERM/SIGINT and waits; when a
    child dies on its own it stops the others and exits 1, so the pod restarts whole.
    Metrics: process i serves ERP_METRICS_PORT + i."""
    if settings.grpc_port == 0:
        raise ValueError("ERP_PROCESSES > 1 needs a fixed ERP_GRPC_PORT for the processes to share")
    # Embedded engines are started here, once, and their URLs handed down.
    settings = dataclasses.replace(settings, database_url=database_url(settings), redis_url=redis_url(settings))
    children: list[int] = []
    for i in range(settings.processes):
        pid = os.fork()
        if pid == 0:
            os._exit(_serve_child(spec, settings, i))
        children.append(pid)
    log.info("%s: %d processes on port %d (%s)", spec.name, len(children), settings.grpc_port, children)
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    failed = False
    while children:
        pid, status = os.waitpid(-1, 0)
        if pid in children:
            children.remove(pid)
            if not stopping and children:
                log.error("%s: process %d exited (%s); stopping the others", spec.name, pid, status)
                failed = True
                forward(signal.SIGTERM, None)
            failed |= os.waitstatus_to_exitcode(status) != 0
    return 1 if failed else 0


def _serve_child(spec: ServiceSpec[U], settings: Settings, index: int) -> int:
    try:
        metrics.serve(settings.metrics_port + index if settings.metrics_port else 0, settings.grpc_host)
        tracing.configure(spec.name)  # in the child: the exporter's thread must not cross a fork
        running = start(spec, settings, reuse_port=True)
        wait_for_stop_signal()
        running.stop()
        tracing.shutdown()
        return 0
    except BaseException:  # noqa: BLE001 - report anything, then let the parent decide
        log.exception("%s process %d failed", spec.name, index)
        return 1


def wait_for_stop_signal() -> signal.Signals:
    """Blocks the main thread until SIGTERM or SIGINT; returns which one came."""
    received: list[signal.Signals] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))
        log.info("received %s", received[-1].name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Poll, never wait untimed: the kernel may deliver the signal to one of gRPC's or
    # psycopg's threads, and Python runs handlers only when the main thread wakes.
    while not received:
        time.sleep(0.2)
    return received[0]
