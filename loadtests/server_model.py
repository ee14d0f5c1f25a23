"""Sync `grpc.server` (thread pool) or `grpc.aio`? Measure both on the real GetStock path, in one run.

    .venv/bin/python -m loadtests.server_model [--seconds 5] [--concurrency 16] [--json out.json]

What it does, all on 127.0.0.1 and bounded in time (about a minute at the defaults):
  * starts the embedded PostgreSQL (mesh.embedded.postgres_url) and Redis (mesh.embedded.redis_url) in a
    temp dir, creates a database, migrates the inventory schema and loads 1000 products with a stock
    balance (and its ledger receipt) in warehouse MAIN;
  * runs each server variant in a process of its own (spawned, so every variant gets a fresh interpreter)
    and drives it from ONE load-generator process (spawned once, sync grpc client, N calls in flight kept
    up with `future()` callbacks), so the client's CPU cost is the same for every row;
  * measures the variants of one workload side by side: all their servers are up at once, each gets its
    warm-up, then the measured seconds are cut in slices taken in turn (sync, aio, aio, sync, ...), so a
    neighbour's burst of CPU or a drift of the machine hits both models alike (an idle server costs ~0);
    each slice's window opens 0.1 s after its calls start, once the pipeline is full;
  * between workloads it empties Redis and resets its counters, and reports Redis's own hit ratio.

Rows (the "what" column says what each figure measures):
  echo        bare unary handler returning the request bytes (no protobuf, no interceptor): per-call
              framework cost. sync: grpc.server + ThreadPoolExecutor(--workers); aio: grpc.aio.server.
  hit         GetStock over 8 hot SKUs, cache TTL 1 h: validation + one Redis GET that hits.
              sync: the production path, mesh.service.start(services.inventory.service.spec()) ->
              ServerInterceptor -> InventoryServicer -> handlers.get_stock -> mesh.cache.Cache.
              aio: grpc.aio.server + an async port of the same interceptor work (ids, deadline, error
              mapping, Prometheus metrics) and of get_stock (redis.asyncio, the same SET_IF_NEWER script);
              all but the I/O is production's own code: validation, cache key and value format, row
              mapping, protobuf conversion (a smoke check gave identical answers and errors).
  miss        GetStock over all 1000 SKUs round-robin with the cache TTL at 1 ms, so every call is a real
              miss on the unmodified code: Redis GET (nil) -> pool checkout (pre-ping) -> BEGIN, SELECT
              stock_balances, ROLLBACK -> Redis EVALSHA set_if_newer. sync: production path as above;
              aio: SQLAlchemy create_async_engine (postgresql+psycopg, the same pool settings as
              mesh.db.create_engine). The "redis hit%" column proves the misses.
  miss (raw)  aio only: the same miss with psycopg's AsyncConnection used directly (a small pool, the
              same four PostgreSQL round trips: ";" ping, BEGIN, SELECT, ROLLBACK), to show what
              SQLAlchemy's asyncio layer itself costs.

Columns: req/s = calls completed inside the measured window / window; p50/p99 = client-side latency of
those calls; errors = non-OK or wrong answers in the window; srv CPU = the server process's user+system
CPU time over the window divided by the calls (PostgreSQL's and Redis's own CPU are not in it);
cores s/c/db/other = CPU cores busy during the window in the server process / the load generator /
PostgreSQL + Redis / other processes on the machine (a large "other" means another job spoiled the row).
The verdict also compares each sync slice with its neighbouring aio slice and gives the median and the
range of those paired differences: when the range crosses zero, the difference is within the noise.

The machine has 2 cores shared by client, server, PostgreSQL and Redis: only compare rows of one run.
SQLAlchemy's asyncio layer needs `greenlet` (in requirements.lock, not in pyproject.toml's dependencies);
without it the aio miss row falls back to raw psycopg (and says so).
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import dataclasses
import functools
import importlib.util
import itertools
import json
import multiprocessing as mp
import os
import platform
import queue
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc

from mesh.settings import GRPC_WORKERS

ROOT = Path(__file__).resolve().parent.parent
WAREHOUSE = "MAIN"
ECHO_SERVICE, ECHO_METHOD = "bench.Echo", "/bench.Echo/Echo"
CALL_TIMEOUT = 5.0
RAMP = 0.1  # seconds at the start of every slice before its window opens (the pipeline fills up)
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    ("grpc.max_send_message_length", 4 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]
HIT_TTL, MISS_TTL = 3600.0, 0.001  # seconds; Cache keeps max(1 ms, ttl)


def sku(i: int) -> str:
    return f"BENCH-{i:05d}"


@dataclasses.dataclass(frozen=True)
class Case:
    workload: str  # echo | hit | miss | miss (raw)
    model: str  # sync | aio
    server: str  # sync-echo | sync-inventory | aio-echo | aio-inventory
    client: str  # echo | getstock
    ttl: float = HIT_TTL
    aio_db: str = ""  # sqlalchemy | raw
    what: str = ""

    @property
    def group(self) -> str:
        """Cases of a group are measured side by side, in alternating slices."""
        return self.workload.split()[0]

    @property
    def name(self) -> str:
        return f"{self.workload}/{self.model}"


# --------------------------------------------------------------------------------------------------
# Servers (each in a spawned process of its own)
# --------------------------------------------------------------------------------------------------

def _server_main(conn, case: Case, params: dict) -> None:
    try:
        if case.server == "sync-echo":
            _serve_sync_echo(conn, params)
        elif case.server == "sync-inventory":
            _serve_sync_inventory(conn, case, params)
        else:
            asyncio.run(_serve_aio(conn, case, params))
    except BaseException as exc:  # noqa: BLE001 - report start-up failures to the parent
        try:
            conn.send(("error", f"{exc.__class__.__name__}: {exc}"))
        except Exception:  # noqa: BLE001
            pass
        raise


def _wait_for_stop(conn) -> None:
    try:
        conn.recv()
    except EOFError:  # the parent went away
        pass


def _serve_sync_echo(conn, params: dict) -> None:
    def echo(request, context):
        return request

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=params["workers"], thread_name_prefix="grpc"),
        options=SERVER_OPTIONS, maximum_concurrent_rpcs=256)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    conn.send(("ready", port, os.getpid()))
    _wait_for_stop(conn)
    server.stop(1.0).wait()


def _serve_sync_inventory(conn, case: Case, params: dict) -> None:
    """The production path, unmodified: mesh.service.start with the inventory spec."""
    from mesh import service
    from mesh.settings import load
    from services.inventory.service import spec

    # Hermetic like tests/support.py::settings_for, but with the production defaults for the
    # background loops (relay poll 0.2 s, health check 2 s) rather than the tests' faster ones.
    settings = dataclasses.replace(
        load("inventory"),
        data_dir=Path(params["data_dir"]), database_url=params["db_url"], redis_url=params["redis_url"],
        amqp_url="", event_transport="postgres", amqp_namespace="erp", grpc_host="127.0.0.1", grpc_port=0,
        migrate_on_start=True, db_pool_size=params["pool_size"], cache_ttl_seconds=case.ttl, cache_prefix="erp",
        event_max_attempts=5, event_retry_base_ms=200, event_consumer_threads=1, relay_poll_seconds=0.2,
        unroutable_grace_seconds=300.0, health_check_seconds=2.0, shutdown_grace_seconds=2.0,
        grpc_max_workers=params["workers"], grpc_max_concurrent_rpcs=256,
        grpc_max_message_bytes=4 * 1024 * 1024, log_level="WARNING", log_format="text",
        default_warehouse=WAREHOUSE,
    )
    running = service.start(spec(), settings)
    conn.send(("ready", running.port, os.getpid()))
    _wait_for_stop(conn)
    running.stop(2.0)


def _aio_interceptor():
    """An async port of mesh.interceptors.ServerInterceptor's per-call work: ids and deadline in the
    context, undecodable requests refused, domain errors mapped by mesh.errors.to_status, and the
    same Prometheus call counter and latency histogram (when mesh.metrics exists)."""
    from grpc_status import rpc_status

    from mesh import context
    from mesh.errors import DomainError, to_status
    from mesh.interceptors import CORRELATION_ID_KEY, REQUEST_ID_KEY

    try:
        from mesh import metrics
    except ImportError:  # an older tree without metrics
        metrics = None
    malformed = object()

    def observe(method: str, started: float, code: str) -> None:
        if metrics is not None:
            metrics.rpc_served(method).done(code, started)

    def safe(deserialize):
        if deserialize is None:
            return None

        def decode(raw: bytes):
            try:
                return deserialize(raw)
            except Exception:  # noqa: BLE001
                return malformed
        return decode

    async def abort(ctx, method, started, code, message, details):
        observe(method, started, code.name)
        status = rpc_status.to_status(to_status(code, message, details))
        await ctx.abort(status.code, status.details, status.trailing_metadata)

    class AioServerInterceptor(grpc.aio.ServerInterceptor):
        async def intercept_service(self, continuation, details):
            handler = await continuation(details)
            if handler is None or handler.unary_unary is None:
                return handler
            method = details.method
            metadata = dict(details.invocation_metadata or ())
            inner = handler.unary_unary

            async def behavior(request, ctx):
                remaining = ctx.time_remaining()
                timeout = None if remaining is None or remaining > 10**6 else remaining
                with context.scope(request=metadata.get(REQUEST_ID_KEY, ""),
                                   correlation=metadata.get(CORRELATION_ID_KEY, ""), timeout=timeout):
                    started = time.perf_counter()
                    if request is malformed:
                        await abort(ctx, method, started, grpc.StatusCode.INVALID_ARGUMENT,
                                    "request body is not a valid protobuf message for " + method, [])
                    try:
                        response = await inner(request, ctx)
                    except DomainError as err:
                        await abort(ctx, method, started, err.code, err.message, err.details())
                    except grpc.aio.AbortError:
                        raise  # the servicer aborted on purpose
                    except Exception:  # noqa: BLE001 - never leak exception text, as in production
                        await abort(ctx, method, started, grpc.StatusCode.INTERNAL,
                                    f"internal error (request id {context.request_id.get()})", [])
                    observe(method, started, "OK")
                    return response

            return grpc.unary_unary_rpc_method_handler(
                behavior, request_deserializer=safe(handler.request_deserializer),
                response_serializer=handler.response_serializer)

    return AioServerInterceptor()


def _level_query():
    """StockRepository.get's statement (the same columns), with named parameters."""
    import sqlalchemy as sa

    from services.inventory import adapters

    b = adapters.stock_balances
    return sa.select(*adapters._LEVEL_COLUMNS).where(b.c.sku == sa.bindparam("sku"),
                                                     b.c.warehouse_code == sa.bindparam("wh"))


class _SqlAlchemyStock:
    """SQLAlchemy's async engine over psycopg 3, configured like mesh.db.create_engine; the same
    statements as StockRepository.get and .existing, in one rolled-back transaction like the UoW's."""

    def __init__(self, url: str, pool_size: int) -> None:
        import sqlalchemy as sa
        from sqlalchemy.ext.asyncio import create_async_engine

        from mesh import db
        from services.inventory import adapters

        self.sa, self.adapters, self.query = sa, adapters, _level_query()
        self.engine = create_async_engine(
            db.sqlalchemy_url(url), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
            pool_timeout=10, connect_args={"connect_timeout": 5, "options": "-csearch_path=inventory,public"})

    async def get(self, sku_: str, code: str):
        """(StockLevel, None), or (None, (sku exists, warehouse exists))."""
        sa, a = self.sa, self.adapters
        async with self.engine.connect() as conn:
            await conn.begin()
            try:
                row = (await conn.execute(self.query, {"sku": sku_, "wh": code})).first()
                if row is not None:
                    return a._level(row), None
                found_sku = (await conn.execute(sa.select(a.products.c.sku).where(
                    a.products.c.sku.in_([sku_])))).first() is not None
                found_code = (await conn.execute(sa.select(a.warehouses.c.code).where(
                    a.warehouses.c.code.in_([code])))).first() is not None
                return None, (found_sku, found_code)
            finally:
                await conn.rollback()

    async def close(self) -> None:
        await self.engine.dispose()


class _RawPsycopgStock:
    """psycopg AsyncConnection from a minimal lazy pool, with the same round trips as the SQLAlchemy
    engine (a ";" ping in autocommit as pool_pre_ping does, then BEGIN, SELECT, ROLLBACK) and the same
    SELECT text: what is left between this and _SqlAlchemyStock is SQLAlchemy's own (greenlet) cost."""

    def __init__(self, url: str, pool_size: int) -> None:
        from sqlalchemy.dialects import postgresql

        from mesh.service import libpq_dsn
        from services.inventory import adapters

        self.level = adapters._level
        self.select = str(_level_query().compile(dialect=postgresql.psycopg.dialect()))  # %(sku)s, %(wh)s
        self.dsn = libpq_dsn(url)
        self.max = pool_size * 2  # the same ceiling as pool_size + max_overflow
        self.size = 0
        self.idle: asyncio.Queue = asyncio.Queue()
        self.all: list = []

    async def _acquire(self):
        import psycopg
        from psycopg.rows import namedtuple_row

        try:
            return self.idle.get_nowait()
        except asyncio.QueueEmpty:
            pass
        if self.size < self.max:
            self.size += 1
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.dsn, connect_timeout=5, options="-csearch_path=inventory,public", row_factory=namedtuple_row)
            except BaseException:
                self.size -= 1
                raise
            self.all.append(conn)
            return conn
        return await self.idle.get()

    async def get(self, sku_: str, code: str):
        conn = await self._acquire()
        try:
            await conn.set_autocommit(True)  # the pre-ping, as SQLAlchemy's psycopg dialect sends it
            await conn.execute(";")
            await conn.set_autocommit(False)
            async with conn.cursor() as cur:
                await cur.execute(self.select, {"sku": sku_, "wh": code})
                row = await cur.fetchone()
                if row is not None:
                    return self.level(row), None
                await cur.execute("SELECT 1 FROM products WHERE sku = %s", (sku_,))
                found_sku = await cur.fetchone() is not None
                await cur.execute("SELECT 1 FROM warehouses WHERE code = %s", (code,))
                return None, (found_sku, await cur.fetchone() is not None)
        finally:
            await conn.rollback()
            self.idle.put_nowait(conn)

    async def close(self) -> None:
        for conn in self.all:
            await conn.close()


def _aio_inventory_servicer(params: dict, ttl: float, aio_db: str):
    """handlers.get_stock with async drivers. Everything but the I/O is production's own code: the
    validation, the cache key and value format, the row mapping and the protobuf conversion."""
    import redis
    import redis.asyncio as aioredis

    from erp.inventory.v1 import inventory_pb2 as pb
    from erp.inventory.v1 import inventory_pb2_grpc
    from mesh.cache import OPEN_SECONDS, SET_IF_NEWER
    from mesh.errors import NotFound, Violations
    from services.inventory import domain
    from services.inventory.domain import StockLevel
    from services.inventory.grpc_api import _level as to_pb
    from services.inventory.handlers import _cache_key, _decode, _encode

    class AioInventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
        def __init__(self) -> None:
            self.client = aioredis.Redis.from_url(params["redis_url"], socket_timeout=0.25,
                                                  socket_connect_timeout=0.25, health_check_interval=30)
            self.set_if_newer_script = self.client.register_script(SET_IF_NEWER)
            self.prefix = "erp:inventory"  # f"{cache_prefix}:{service}", as mesh.service builds Cache
            self.ttl_ms = max(1, int(ttl * 1000))
            self.open_until = 0.0  # the same circuit breaker as mesh.cache.Cache
            self.db = (_SqlAlchemyStock if aio_db == "sqlalchemy" else _RawPsycopgStock)(
                params["db_url"], params["pool_size"])

        def _trip(self) -> None:
            self.open_until = time.monotonic() + OPEN_SECONDS

        async def _cache_get_versioned(self, key: str):
            if time.monotonic() < self.open_until:
                return None
            try:
                raw = await self.client.get(f"{self.prefix}:{key}")
            except redis.RedisError:
                self._trip()
                return None
            if raw is None:
                return None
            version, _, value = raw.partition(b":")
            return int(version), value

        async def _cache_set_if_newer(self, key: str, version: int, value: bytes) -> None:
            if time.monotonic() < self.open_until:
                return
            try:
                await self.set_if_newer_script(keys=[f"{self.prefix}:{key}"], args=[version, value, self.ttl_ms])
            except redis.RedisError:
                self._trip()

        async def GetStock(self, request, context):
            sku_, code = request.sku, request.warehouse_code
            v = Violations()
            domain.check_sku(v, "sku", sku_)
            domain.check_warehouse(v, "warehouse_code", code)
            v.raise_if_any()
            key = _cache_key(sku_, code)
            cached = await self._cache_get_versioned(key)
            if cached is not None:
                level = _decode(sku_, code, *cached)
            else:
                level, existing = await self.db.get(sku_, code)
                if level is None:
                    if not existing[0]:
                        raise NotFound(f"no product with SKU {sku_}")
                    if not existing[1]:
                        raise NotFound(f"no warehouse {code}")
                    level = StockLevel.empty(sku_, code)
                await self._cache_set_if_newer(key, level.version, _encode(level))
            return pb.GetStockResponse(stock=to_pb(level))

        async def close(self) -> None:
            await self.db.close()
            await self.client.aclose()

    return AioInventoryServicer()


async def _serve_aio(conn, case: Case, params: dict) -> None:
    from erp.inventory.v1 import inventory_pb2_grpc

    servicer = None
    if case.server == "aio-echo":
        server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=256)

        async def echo(request, context):
            return request

        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            ECHO_SERVICE, {"Echo": grpc.unary_unary_rpc_method_handler(echo)}),))
    else:
        server = grpc.aio.server(interceptors=[_aio_interceptor()], options=SERVER_OPTIONS,
                                 maximum_concurrent_rpcs=256)
        servicer = _aio_inventory_servicer(params, case.ttl, case.aio_db)
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    conn.send(("ready", port, os.getpid()))
    await asyncio.get_running_loop().run_in_executor(None, _wait_for_stop, conn)
    await server.stop(2.0)
    if servicer is not None:
        await servicer.close()


# --------------------------------------------------------------------------------------------------
# The load generator (one spawned process, reused for every case)
# --------------------------------------------------------------------------------------------------

def _client_main(conn) -> None:
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        try:
            result = _run_load(**job)
        except Exception as exc:  # noqa: BLE001
            result = {"error": f"{exc.__class__.__name__}: {exc}"}
        conn.send(result)


def _cpu_seconds(proc) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _backend_cpu(psutil, pids: list[int]) -> dict[int, float]:
    """CPU seconds of Redis and of PostgreSQL's postmaster and backends, by pid."""
    out: dict[int, float] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children()]:
                try:
                    out[p.pid] = _cpu_seconds(p)
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
    return out


def _foreign_cpu(psutil, ours: set[int]) -> dict[int, float]:
    """CPU seconds of every process on the machine that is not part of this benchmark, by pid."""
    out: dict[int, float] = {}
    for proc in psutil.process_iter():
        if proc.pid in ours:
            continue
        try:
            out[proc.pid] = _cpu_seconds(proc)
        except psutil.Error:
            pass
    return out


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def _drive(method, payloads: list, valid, concurrency: int, duration: float, counter, ramp: float = 0.0,
           sample=None) -> dict:
    """Keeps `concurrency` calls in flight (each completion issues the next call from grpc's callback
    thread) for `ramp` + `duration` seconds and returns what completed inside the window that opens
    after the ramp (so the pipeline is full), with sample() taken when the window opens and closes."""
    latencies: list[float] = []
    window_errors: list[str] = []
    all_errors: list[str] = []
    in_flight = [concurrency]
    lock = threading.Lock()
    finished = threading.Event()
    backlog: queue.SimpleQueue = queue.SimpleQueue()
    local = threading.local()
    t0 = time.perf_counter() + ramp
    t1 = t0 + duration

    def chain_ended() -> None:
        with lock:
            in_flight[0] -= 1
            if in_flight[0] == 0:
                finished.set()

    def issue() -> None:
        depth = getattr(local, "depth", 0)
        if depth > 4:  # calls completing inside add_done_callback: let another thread go on
            backlog.put(None)
            return
        local.depth = depth + 1
        try:
            request = payloads[next(counter) % len(payloads)]
            sent = time.perf_counter()
            fut = method.future(request, timeout=CALL_TIMEOUT)
            fut.add_done_callback(functools.partial(done, request, sent))
        except Exception as exc:  # noqa: BLE001
            all_errors.append(exc.__class__.__name__)
            chain_ended()
        finally:
            local.depth = depth

    def done(request, sent: float, fut) -> None:
        now = time.perf_counter()
        try:
            outcome = "OK" if valid(request, fut.result()) else "WRONG_ANSWER"
        except grpc.RpcError as err:
            outcome = err.code().name
        except Exception as exc:  # noqa: BLE001
            outcome = exc.__class__.__name__
        if outcome != "OK":
            all_errors.append(outcome)
        if now <= t1:
            if now >= t0:
                if outcome == "OK":
                    latencies.append(now - sent)
                else:
                    window_errors.append(outcome)
            issue()
        else:
            chain_ended()

    def drain_backlog() -> None:
        while not finished.is_set():
            try:
                backlog.get(timeout=0.05)
            except queue.Empty:
                continue
            issue()

    helper = threading.Thread(target=drain_backlog, name="backlog", daemon=True)
    helper.start()
    for _ in range(concurrency):
        issue()
    time.sleep(max(0.0, t0 - time.perf_counter()))
    before = sample() if sample else None
    time.sleep(max(0.0, t1 - time.perf_counter()))
    after = sample() if sample else None
    drained = finished.wait(CALL_TIMEOUT + 2)
    finished.set()
    helper.join(1)
    return {"latencies": latencies, "errors": window_errors, "all_errors": all_errors, "drained": drained,
            "samples": (before, after)}


def _run_load(targets: list[tuple[str, str, int]], client: str, skus: list[str], seconds: float,
              warmup: float, slices: int, concurrency: int, backend_pids: list[int]) -> dict:
    """Measures every target for `seconds`, cut in `slices` slices taken in turn (the order rotating
    each round), so a neighbour's burst of CPU or a drift hits every variant alike."""
    import psutil

    from erp.inventory.v1 import inventory_pb2 as pb
    from erp.inventory.v1 import inventory_pb2_grpc

    if client == "echo":
        payloads = [pb.GetStockRequest(sku=s, warehouse_code=WAREHOUSE).SerializeToString() for s in skus]

        def valid(request, response) -> bool:
            return response == request
    else:
        payloads = [pb.GetStockRequest(sku=s, warehouse_code=WAREHOUSE) for s in skus]

        def valid(request, response) -> bool:
            return response.stock.sku == request.sku and response.stock.on_hand > 0

    channels, methods, servers = {}, {}, {}
    try:
        for name, target, pid in targets:
            channel = channels[name] = grpc.insecure_channel(target)
            try:
                grpc.channel_ready_future(channel).result(timeout=10)
            except grpc.FutureTimeoutError:
                return {name: {"error": f"server at {target} not reachable"} for name, _, _ in targets}
            methods[name] = (channel.unary_unary(ECHO_METHOD) if client == "echo"  # bytes in, bytes out
                             else inventory_pb2_grpc.InventoryServiceStub(channel).GetStock)
            servers[name] = psutil.Process(pid)
        parent = psutil.Process(os.getppid())  # the orchestrator: it, its children and the engines are ours
        ours = {parent.pid, *(p.pid for p in parent.children(recursive=True)), *_backend_cpu(psutil, backend_pids)}
        counter = itertools.count()
        for name, _, _ in targets:  # warm-up: connections, pools, caches; not measured
            _drive(methods[name], payloads, valid, concurrency, warmup, counter)
        acc = {name: {"latencies": [], "errors": [], "all_errors": [], "drained": True, "server_cpu": 0.0,
                      "client_cpu": 0.0, "backend_cpu": 0.0, "foreign_cpu": 0.0, "slice_rps": []}
               for name, _, _ in targets}
        names = [name for name, _, _ in targets]
        slice_seconds = seconds / slices
        for i in range(slices):
            for name in names[i % len(names):] + names[:i % len(names)]:
                a = acc[name]

                def sample(server=servers[name]):
                    backends = _backend_cpu(psutil, backend_pids)  # backends come and go with connections
                    return (_cpu_seconds(server), time.process_time(), backends,
                            _foreign_cpu(psutil, ours | backends.keys()))

                part = _drive(methods[name], payloads, valid, concurrency, slice_seconds, counter, RAMP, sample)
                (cpu0, ccpu0, bcpu0, fcpu0), (cpu1, ccpu1, bcpu1, fcpu1) = part["samples"]
                for key in ("latencies", "errors", "all_errors"):
                    a[key] += part[key]
                a["slice_rps"].append(len(part["latencies"]) / slice_seconds)
                a["drained"] = a["drained"] and part["drained"]
                a["server_cpu"] += cpu1 - cpu0
                a["client_cpu"] += ccpu1 - ccpu0
                a["backend_cpu"] += _delta(bcpu0, bcpu1)
                a["foreign_cpu"] += _delta(fcpu0, fcpu1)
    finally:
        for channel in channels.values():
            channel.close()
    results = {}
    for name, a in acc.items():
        lat = sorted(a["latencies"])
        n = len(lat)

        def pct(q: float, lat=lat, n=n) -> float:
            return lat[min(n - 1, int(q * n))] * 1000 if n else float("nan")

        results[name] = {
            "requests": n, "rps": n / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "errors": len(a["errors"]), "errors_total": len(a["all_errors"]),
            "error_kinds": sorted(set(a["all_errors"])), "drained": a["drained"],
            "server_cpu_us_per_req": a["server_cpu"] / n * 1e6 if n else float("nan"),
            "server_cpu_cores": a["server_cpu"] / seconds,
            "client_cpu_cores": a["client_cpu"] / seconds,
            "backend_cpu_cores": a["backend_cpu"] / seconds,
            # other processes on the machine (other people's jobs; a lower bound: processes that both
            # started and ended inside a slice are missed): a large value spoils the row
            "other_cpu_cores": a["foreign_cpu"] / seconds,
            "slice_rps": a["slice_rps"],
        }
    return results


# --------------------------------------------------------------------------------------------------
# Orchestration (the parent owns the embedded engines; they stop when it exits)
# --------------------------------------------------------------------------------------------------

def _prepare_data(products_count: int) -> dict:
    import psutil
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from mesh import db, embedded
    from services.inventory.adapters import products, stock_balances, stock_ledger, warehouses

    data_dir = Path(tempfile.mkdtemp(prefix="erp-server-model-"))
    os.chmod(data_dir, 0o755)  # the embedded PostgreSQL runs as its own user when we are root
    # Registered before the engines start, so it runs after their own exit handlers have stopped them.
    atexit.register(shutil.rmtree, data_dir, True)
    pg_root = embedded.postgres_url(data_dir)
    redis_url = embedded.redis_url(data_dir)
    db_url = make_url(db.sqlalchemy_url(pg_root)).set(database="erp_bench").render_as_string(hide_password=False)
    db.ensure_database(db_url)
    engine = db.create_engine(db_url, schema="inventory")
    try:
        db.migrate(engine, "inventory", ROOT / "services" / "inventory" / "migrations")
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE stock_ledger, stock_balances, reservations, products, warehouses"))
            conn.execute(warehouses.insert().values(code=WAREHOUSE, name="Main warehouse"))
            conn.execute(products.insert(), [
                {"sku": sku(i), "name": f"Benchmark product {i}", "unit_of_measure": "EA"}
                for i in range(products_count)])
            conn.execute(stock_balances.insert(), [
                {"sku": sku(i), "warehouse_code": WAREHOUSE, "on_hand": 100 + i, "reserved": 0, "version": 1}
                for i in range(products_count)])
            conn.execute(stock_ledger.insert(), [
                {"sku": sku(i), "warehouse_code": WAREHOUSE, "kind": "receipt", "on_hand_delta": 100 + i,
                 "reserved_delta": 0, "reason": "benchmark seed", "reference": "seed"}
                for i in range(products_count)])
        with engine.connect() as conn:
            conn.execute(sa.text("ANALYZE products, warehouses, stock_balances"))
            conn.commit()
            rows = conn.execute(sa.text("SELECT count(*) FROM stock_balances")).scalar()
            postmaster = psutil.Process(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()).ppid()
    finally:
        engine.dispose()
    return {"data_dir": str(data_dir), "db_url": db_url, "redis_url": redis_url, "rows": rows,
            "postmaster_pid": postmaster}


def _cases(aio_db: str, with_raw: bool, workers: int = GRPC_WORKERS) -> list[Case]:
    sync_path = f"mesh.service.start ({workers} threads): interceptor -> servicer -> handlers.get_stock"
    aio_path = "grpc.aio + async port (redis.asyncio"
    miss_db = "SQLAlchemy async" if aio_db == "sqlalchemy" else "raw psycopg async"
    cases = [
        Case("echo", "sync", "sync-echo", "echo", what=f"bare grpc.server, {workers} threads"),
        Case("echo", "aio", "aio-echo", "echo", what="bare grpc.aio.server"),
        Case("hit", "sync", "sync-inventory", "getstock", HIT_TTL, what=sync_path + " (Redis hit)"),
        Case("hit", "aio", "aio-inventory", "getstock", HIT_TTL, aio_db, what=aio_path + ", Redis hit)"),
        Case("miss", "sync", "sync-inventory", "getstock", MISS_TTL,
             what=sync_path + " (Redis miss + PG + set)"),
        Case("miss", "aio", "aio-inventory", "getstock", MISS_TTL, aio_db,
             what=f"{aio_path} + {miss_db}, miss + PG + set)"),
    ]
    if with_raw and aio_db == "sqlalchemy":
        cases.append(Case("miss (raw)", "aio", "aio-inventory", "getstock", MISS_TTL, "raw",
                          what="grpc.aio, psycopg async directly (same round trips, no SQLAlchemy)"))
    return cases


class _Child:
    def __init__(self, ctx, target, args, name: str) -> None:
        self.conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child_conn, *args), name=name, daemon=True)
        self.proc.start()
        child_conn.close()

    def ask(self, message, timeout: float):
        self.conn.send(message)
        return self.receive(timeout)

    def receive(self, timeout: float):
        if not self.conn.poll(timeout):
            raise TimeoutError(f"{self.proc.name} did not answer within {timeout:.0f}s")
        return self.conn.recv()

    def stop(self, message="stop", timeout: float = 10.0) -> None:
        try:
            self.conn.send(message)
        except (OSError, ValueError):
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)
        self.conn.close()


def _fmt(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN -> "-"


def _table(rows: list[dict]) -> str:
    head = (f"{'workload':<11} {'model':<5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
            f"{'srv CPU us/req':>14} {'redis hit%':>10} {'cores s/c/db/other':>19}  what")
    lines = [head, "-" * len(head)]
    for r in rows:
        res = r["result"]
        if "error" in res:
            lines.append(f"{r['workload']:<11} {r['model']:<5} FAILED: {res['error']}")
            continue
        hit = r.get("redis_hit_pct")
        cores = "/".join(format(res[k], ".2f") for k in ("server_cpu_cores", "client_cpu_cores",
                                                          "backend_cpu_cores", "other_cpu_cores"))
        lines.append(
            f"{r['workload']:<11} {r['model']:<5} {res['rps']:>7.0f} {_fmt(res['p50_ms'], '.2f'):>7} "
            f"{_fmt(res['p99_ms'], '.2f'):>7} {res['errors']:>6} {_fmt(res['server_cpu_us_per_req'], '.0f'):>14} "
            f"{'-' if hit is None else format(hit, '.1f'):>10} {cores:>19}  {r['what']}")
    return "\n".join(lines)


def _verdicts(rows: list[dict]) -> list[str]:
    names = {"echo": "bare echo (framework only)", "hit": "GetStock (cache hit)", "miss": "GetStock (cache miss)"}
    by = {(r["workload"], r["model"]): r["result"] for r in rows if "error" not in r["result"]}
    out = []
    for workload, name in names.items():
        s, a = by.get((workload, "sync")), by.get((workload, "aio"))
        if not s or not a or not s["rps"] or not a["rps"]:
            out.append(f"{name}: no comparison (a case failed)")
            continue
        faster, slower = ("sync", "aio") if s["rps"] >= a["rps"] else ("aio", "sync")
        ratio = max(s["rps"], a["rps"]) / min(s["rps"], a["rps"]) - 1
        # each round's sync slice against its neighbouring aio slice: the spread shows the noise
        paired = sorted((x / y - 1) * 100 for x, y in zip(s["slice_rps"], a["slice_rps"], strict=False) if y)
        spread = (f"; sync vs aio per paired slice: median {statistics.median(paired):+.0f}%, "
                  f"range {paired[0]:+.0f}%..{paired[-1]:+.0f}%") if len(paired) > 1 else ""
        out.append(f"{faster} is {ratio * 100:.0f}% faster than {slower} on {name} "
                   f"({s['rps']:.0f} vs {a['rps']:.0f} req/s; p99 {s['p99_ms']:.1f} vs {a['p99_ms']:.1f} ms"
                   f"{spread})")
    raw, s = by.get(("miss (raw)", "aio")), by.get(("miss", "sync"))
    if raw and s and s["rps"]:
        a = by.get(("miss", "aio"))
        vs_sa = f", {(raw['rps'] / a['rps'] - 1) * 100:+.0f}% against SQLAlchemy async" if a and a["rps"] else ""
        out.append(f"(aio miss with psycopg async directly, no SQLAlchemy: {raw['rps']:.0f} req/s, "
                   f"{(raw['rps'] / s['rps'] - 1) * 100:+.0f}% against sync's production path{vs_sa})")
    return out


def _redis_hit_pct(client) -> float | None:
    stats = client.info("stats")
    hits, misses = stats.get("keyspace_hits", 0), stats.get("keyspace_misses", 0)
    return hits / (hits + misses) * 100 if hits + misses else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.server_model", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per case (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per case (default 1)")
    parser.add_argument("--slices", type=int, default=10,
                        help="each case's seconds are cut in this many slices, alternating with the other "
                             "model's (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (default 16)")
    parser.add_argument("--products", type=int, default=1000, help="products/stock rows (default 1000)")
    parser.add_argument("--hot", type=int, default=8, help="hot SKUs of the cache-hit case (default 8)")
    parser.add_argument("--workers", type=int, default=GRPC_WORKERS,
                        help=f"sync server threads (default {GRPC_WORKERS}, as the services)")
    parser.add_argument("--no-raw", action="store_true", help="skip the raw-psycopg aio row")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    if (args.seconds <= 0 or args.warmup < 0 or args.concurrency < 1 or args.slices < 1
            or not 1 <= args.hot <= args.products):
        parser.error("need --seconds > 0, --warmup >= 0, --concurrency >= 1, --slices >= 1, "
                     "1 <= --hot <= --products")

    aio_db = "sqlalchemy" if importlib.util.find_spec("greenlet") else "raw"
    cases = _cases(aio_db, not args.no_raw, args.workers)
    # a hard cap (about 2.5 min at the defaults; a run takes about 1 min): past it, everything is stopped
    budget = 60 + len(cases) * (args.warmup + args.seconds + args.slices * (RAMP + 0.4) + 3)

    def on_alarm(signum, frame):
        raise TimeoutError(f"server_model exceeded its {budget:.0f}s budget")

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # so the exit handlers stop the engines
    signal.alarm(int(budget))

    started = time.monotonic()
    print(f"server_model: python {platform.python_version()}, grpcio {grpc.__version__}, {os.cpu_count()} cores, "
          f"{args.concurrency} in flight, {args.warmup:g}s warm-up + {args.seconds:g}s per case", flush=True)
    if aio_db == "raw":
        print("note: greenlet is not installed, so SQLAlchemy's asyncio engine cannot run; the aio miss row uses "
              "raw psycopg async instead (pip install 'sqlalchemy[asyncio]' to measure it)", flush=True)
    env = _prepare_data(args.products)
    print(f"embedded PostgreSQL + Redis ready, {env['rows']} stock rows ({time.monotonic() - started:.1f}s)",
          flush=True)

    import redis

    stats_client = redis.Redis.from_url(env["redis_url"])
    backend_pids = [int(stats_client.info("server")["process_id"]), env["postmaster_pid"]]
    params = {"data_dir": env["data_dir"], "db_url": env["db_url"], "redis_url": env["redis_url"],
              "pool_size": 10, "workers": args.workers}
    ctx = mp.get_context("spawn")
    client = _Child(ctx, _client_main, (), "loadgen")
    hot = [sku(i) for i in range(args.hot)]
    every = [sku(i) for i in range(args.products)]
    rows: list[dict] = []
    groups: dict[str, list[Case]] = {}
    for case in cases:
        groups.setdefault(case.group, []).append(case)
    try:
        for group, members in groups.items():
            stats_client.flushall()
            stats_client.config_resetstat()
            servers = {case.name: _Child(ctx, _server_main, (case, params), f"server-{case.server}")
                       for case in members}  # started together: they idle while the others are measured
            results: dict[str, dict] = {}
            try:
                targets = []
                for case in members:
                    ready = servers[case.name].receive(60)
                    if ready[0] != "ready":
                        results[case.name] = {"error": f"server did not start: {ready[1]}"}
                    else:
                        targets.append((case.name, f"127.0.0.1:{ready[1]}", ready[2]))
                if targets:
                    job = {"targets": targets, "client": members[0].client,
                           "skus": hot if group == "hit" else every, "seconds": args.seconds,
                           "warmup": args.warmup, "slices": args.slices, "concurrency": args.concurrency,
                           "backend_pids": backend_pids}
                    timeout = len(targets) * (args.warmup + args.seconds + 2 * args.slices) + 30
                    try:
                        answer = client.ask(job, timeout)
                    except TimeoutError as exc:
                        answer = {"error": str(exc)}
                        client.stop(None, 2)
                        client = _Child(ctx, _client_main, (), "loadgen")
                    for name, _, _ in targets:
                        results[name] = answer.get(name, answer) if "error" not in answer else answer
            except Exception as exc:  # noqa: BLE001 - one failed workload must not hide the others
                for case in members:
                    results.setdefault(case.name, {"error": f"{exc.__class__.__name__}: {exc}"})
            finally:
                for server in servers.values():
                    server.stop()
            hit_pct = _redis_hit_pct(stats_client) if members[0].client != "echo" else None
            for case in members:
                res = results.get(case.name, {"error": "not measured"})
                rows.append({"workload": case.workload, "model": case.model, "what": case.what,
                             "redis_hit_pct": hit_pct, "result": res})
                print(f"  {case.workload:<11} {case.model:<5} "
                      + (f"{res['rps']:.0f} req/s" if "error" not in res else "FAILED: " + res["error"]),
                      flush=True)
    finally:
        client.stop(None, 5)
        stats_client.close()
        signal.alarm(0)

    print()
    print(_table(rows))
    print()
    print("Verdict:")
    for line in _verdicts(rows):
        print("  " + line)
    noisy = [f"{r['workload']}/{r['model']}" for r in rows if r["result"].get("other_cpu_cores", 0) > 0.1]
    if noisy:
        print(f"  warning: other processes used over 0.1 cores during {', '.join(noisy)}: run again when the "
              "machine is quiet")
    print(f"(total {time.monotonic() - started:.0f}s)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "aio_db": aio_db,
                                         "rows": rows, "verdict": _verdicts(rows)}, indent=2))
    failed = [r for r in rows if "error" in r["result"] or r["result"].get("errors")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
