"""The benchmark: how close the mesh gets to what this machine allows, in one run, with one load generator.

    .venv/bin/python -m loadtests.bench [--seconds 6] [--concurrency 16] [--order-seconds 20] [--quick]

Rows (all on 127.0.0.1, every loop bounded in time):
  1  echo            a bare sync gRPC unary echo server (ThreadPoolExecutor of the services' default size,
                     bytes in, bytes out): the machine's limit for a Python gRPC call
  2  GetStock        inventory's GetStock through the real service (interceptors, validation, Redis
                     read-through cache, PostgreSQL behind it) over 1,000 SKUs with Zipf-skewed popularity
                     (s = 1.0), default cache TTL, near cache kept in step by Redis invalidations
  1b, 1w             GetStock's stand-ins (a constant answer), bare and behind the mesh's per-call wrap, each
                     in turns with the echo: where row 2's distance to the echo goes (loadtests/lookup_parts.py)
  1r, 2r @rate       the echo and GetStock at a fixed offered rate (--rate, default 1,000/s), in turns:
                     the p99 target is 2r's over 1r's
  2n GetStock Redis  row 2 without the in-process copy of cached levels (ERP_CACHE_LOCAL_MS=0)
  1o, 1p echo        the echo again, right before and right after the orders: the server CPU of one bare
                     call, pooled over both (the machine's speed drifts over the minute between them)
  3  orders          orders placed and fully processed end to end on PostgreSQL + RabbitMQ: placed, stock
                     reserved, credit checked, confirmed, invoiced (journal), notification recorded; then
                     CPU per order per service and per engine (loadtests/accounting.py) over 1o's and 1p's per call
  floor              right after 1p: the order's statements, events and call alone (loadtests/floor.py), and
                     before the verdicts the CPU per order that 0.05x pgbench's rate leaves the machine
  3r orders @80%     orders placed at 80% of row 3's throughput (open loop): p99 placement->confirmation
                     (the order timeline's confirmed step)
  3s orders @80%     only when 3r fell behind (processed under 95% of what it offered): 80% of the rate 3r
                     processed, the open loop's own maximum; the latency target then reads 3s
  pgbench            TPC-B on the same PostgreSQL (loadtests/pgbench.py): the order rate's reference
Rows 1 and 2 (and 1x2, 2x2) are measured in turns: six slices each, a b b a a b ..., after a warm-up that
reads every hot SKU once, so the ratio (2)/(1) compares steady states seen at the same moments (this
machine's speed drifts 15-30% within a minute); the notes give the ratio of each pair of slices.
Growth checks:
  lookup latency with 1k, 100k and 1M SKUs (uniform keys: mostly cache misses at 100k and 1M, so this is
  the PostgreSQL point-select path) and, at 1M, a stock ledger of ~3M rows (2M extra entries on 1,000
  SKUs): flat latency means no lookup scans the ledger;
  order throughput, and GetStock (rows 2x2, and 2rx2 at the offered rate), with 1 and 2 processes per service (separate ports, which
  costs the same as ERP_PROCESSES=2 on one SO_REUSEPORT port but lets the generator's one channel
  round-robin over both with an `ipv4:a,b` target; events: one active consumer per RabbitMQ queue,
  ERP_AMQP_CONSUMERS's default, competing consumers on the PostgreSQL bus).

The load generator is one separate process (sync grpc, N calls in flight kept up with futures, requests
pre-serialized, responses not decoded) used for every row, so its own CPU cost is the same for all. For
orders it keeps N orders in flight until fully processed, and detects completion by reading orders' tables
(two queries per 50 ms for all open orders, not one poll per order): an order is processed once it is
invoiced (or rejected) and its timeline has the notification of that end, sent (or given up), which
notification records after the email went out; processed time = max(order's last update, that
notification's) - placement start, both clocks of this machine. (Until 2026-12-04 the invoice's email
only had to be queued: the dispatcher, one send at a time, left about half of them for after the window.)

Engines: external PostgreSQL, Redis and RabbitMQ when reachable (a fresh database `erp_bench_<id>`, AMQP
namespace and cache prefix of its own, all removed afterwards), else the embedded ones (and the PostgreSQL
event bus). The catalog is seeded straight into inventory's tables with INSERT ... SELECT generate_series
(balances and their ledger entries, so balances still equal the ledger), customers through crm's API.

Instructions per order and per echo call come from `perf stat` where the machine counts them (it says so
when not: virtual machines often have no hardware counters).

Columns: req/s = calls completed in the measured window / window; p50/p99 = client-side latency;
errors; cpu srv/gen/eng/oth = cores busy in the server processes / the load generator / PostgreSQL + Redis +
RabbitMQ (all of theirs, other users' too) / everything else on the machine, over the window. The machine
has 2 cores shared by all of them, and by whatever else runs: compare rows of one run only.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent import futures
from pathlib import Path
from urllib.parse import urlparse

from loadtests import accounting as acc

ROOT = Path(__file__).resolve().parent.parent
ECHO_METHOD = "/bench.Echo/Echo"
GETSTOCK = "/erp.inventory.v1.InventoryService/GetStock"
PLACEORDER = "/erp.orders.v1.OrderService/PlaceOrder"
CALL_TIMEOUT = 5.0
# The generator's polls about the orders in flight (%s: an array of their ids), each order looked up by
# key in a subquery the planner keeps apart. Planned freely on a new database without statistics, the
# polls read all of orders and order_timeline 40 times a second (0.97 ms of the server per order: not
# the mesh's, but taken from the same two cores).
_EACH_ORDER = "FROM unnest(CAST(%s AS text[])) AS k(id) CROSS JOIN LATERAL ({} OFFSET 0) AS o"
_FINISHED = ("SELECT k.id, o.status, extract(epoch FROM o.updated_at) " + _EACH_ORDER.format(
    "SELECT status, updated_at FROM orders.orders WHERE order_id = k.id")
             + " WHERE o.status IN ('invoiced', 'rejected', 'cancelled')")
# The customer told: the order's timeline has the notification of its end (the invoice's, or the
# rejection's), sent, or failed for good, and the DeliveriesSettled that tells of it consumed.
_TOLD = ("SELECT k.id, extract(epoch FROM o.at) " + _EACH_ORDER.format(
    "SELECT max(occurred_at) AS at FROM orders.order_timeline WHERE order_id = k.id"
    " AND kind IN ('notified', 'notification_failed')"
    " AND (detail LIKE 'invoice issued:%%' OR detail LIKE 'order rejected:%%')") + " WHERE o.at IS NOT NULL")
_DECIDED = ("SELECT k.id, extract(epoch FROM o.at) " + _EACH_ORDER.format(
    "SELECT min(occurred_at) AS at FROM orders.order_timeline WHERE order_id = k.id"
    " AND kind IN ('confirmed', 'rejected')") + " WHERE o.at IS NOT NULL")
ENGINE_NAMES = ("postgres", "redis-server", "beam.smp", "epmd", "erl_child_setup")


# ------------------------------------------------------------------------------------------------ echo
def serve_echo(port: int) -> None:
    import grpc

    def echo(request: bytes, _context) -> bytes:
        return request

    from mesh.settings import GRPC_WORKERS

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})])
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination(timeout=3600)


# ------------------------------------------------------------------------------------------ generator
def _channel(target: str):
    import grpc

    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1),
                                                  ("grpc.lb_policy_name", "round_robin")])


def _summary(latencies: list[float], window: float, errors: Counter) -> dict:
    latencies.sort()
    n = len(latencies)
    pick = (lambda q: latencies[min(n - 1, int(q * n))] * 1000) if n else (lambda q: None)
    return {"rps": n / window if window else 0.0, "p50": pick(0.50), "p99": pick(0.99), "n": n,
            "errors": sum(errors.values()), "error_codes": dict(errors)}


def unary_load(target: str, method: str, payloads: list[bytes], concurrency: int, seconds: float,
               warmup: float, rate: float = 0.0, raw: bool = False) -> dict:
    """Closed loop (`concurrency` calls in flight) or, with `rate`, open loop at that many calls/s (at
    most 4x concurrency in flight). Latencies of calls that start and end inside the window; with `raw`,
    the latencies themselves too, so slices of one row can be pooled."""
    channel = _channel(target)
    call = channel.unary_unary(method)
    lock = threading.Lock()
    latencies: list[float] = []
    errors: Counter = Counter()
    counter = itertools.count()
    start = time.perf_counter()
    window_start, end = start + warmup, start + warmup + seconds
    in_flight = [0]
    finished = threading.Event()

    def fire() -> None:
        payload = payloads[next(counter) % len(payloads)]
        t0 = time.perf_counter()
        with lock:
            in_flight[0] += 1
        future = call.future(payload, timeout=CALL_TIMEOUT)
        future.add_done_callback(lambda f, t0=t0: done(f, t0))

    def done(future, t0: float) -> None:
        t1 = time.perf_counter()
        code = future.code()
        with lock:
            in_flight[0] -= 1
            if window_start <= t0 and t1 <= end:
                if code.name == "OK":
                    latencies.append(t1 - t0)
                else:
                    errors[code.name] += 1
            idle = in_flight[0] == 0
        if not rate and t1 < end:
            fire()
        elif idle and t1 >= end:
            finished.set()

    if rate:
        interval, next_at = 1 / rate, time.perf_counter()
        while next_at < end:
            now = time.perf_counter()
            if next_at > now:
                time.sleep(next_at - now)
            if in_flight[0] < concurrency * 4:
                fire()
            else:
                errors[f"NOT_SENT_{concurrency * 4}_IN_FLIGHT"] += 1 if next_at >= window_start else 0
            next_at += interval
    else:
        for _ in range(concurrency):
            fire()
    finished.wait(end - time.perf_counter() + CALL_TIMEOUT + 2)
    channel.close()
    result = _summary(latencies, seconds, errors)
    if raw:
        result.update(latencies=latencies, seconds=seconds, error_codes=dict(errors))
    return result


def order_load(target: str, database_url: str, payload_factory_args: dict, slots: int, seconds: float,
               warmup: float, drain: float, rate: float = 0.0) -> dict:
    """Keeps `slots` orders in flight until each is fully processed (see the module doc), or with `rate`
    places that many orders per second whatever is in flight (open loop). Also placement->confirmation:
    the confirmed (or rejected) step of each order's timeline, by the orders service's clock."""
    import psycopg

    from erp.orders.v1 import orders_pb2 as ord_pb

    channel = _channel(target)
    place = channel.unary_unary(PLACEORDER, response_deserializer=ord_pb.PlaceOrderResponse.FromString)
    make = _order_factory(**payload_factory_args)
    lock = threading.Lock()
    pending: dict[str, float] = {}  # order id -> wall-clock placement start
    place_latencies: list[float] = []
    processed: list[tuple[float, float, str, str, float]] = []  # (processed at, latency s, status, id, placed at)
    errors: Counter = Counter()
    start = time.time()
    window_start, end = start + warmup, start + warmup + seconds
    polls = 0  # the generator's own queries, each a transaction of the run's database

    def fire() -> None:
        wall, t0 = time.time(), time.perf_counter()
        future = place.future(make(), timeout=CALL_TIMEOUT)
        future.add_done_callback(lambda f, wall=wall, t0=t0: placed(f, wall, t0))

    def placed(future, wall: float, t0: float) -> None:
        elapsed = time.perf_counter() - t0
        with lock:
            if future.code().name != "OK":
                errors["PlaceOrder " + future.code().name] += 1
                refill = True
            else:
                pending[future.result().order.order_id] = wall
                if wall >= window_start and wall + elapsed <= end:
                    place_latencies.append(elapsed)
                refill = False
        if refill and not rate and time.time() < end:
            fire()

    def pace() -> None:
        next_at = time.time()
        while next_at < end:
            time.sleep(max(0.0, next_at - time.time()))
            fire()
            next_at += 1 / rate

    if rate:
        threading.Thread(target=pace, daemon=True).start()
    else:
        for _ in range(slots):
            fire()
    told: dict[str, float] = {}  # order id -> when its last notification was sent (or given up)
    final: dict[str, tuple[str, float]] = {}
    with psycopg.connect(database_url, autocommit=True, application_name=acc.GENERATOR_APP) as conn:
        deadline = end + drain
        while time.time() < deadline:
            time.sleep(0.05)
            polls += 2 if window_start <= time.time() <= end else 0
            with lock:
                ids = list(pending)
            if not ids and time.time() >= end:
                break
            rows = conn.execute(_FINISHED, (ids,)).fetchall()
            for order_id, status, updated in rows:
                final[order_id] = (status, float(updated))
            told_now = conn.execute(_TOLD, (ids,)).fetchall()
            for order_id, at in told_now:
                told[order_id] = float(at)
            done_now = []
            with lock:
                for order_id in ids:
                    if order_id in final and (order_id in told or final[order_id][0] == "cancelled"):
                        status, updated = final.pop(order_id)
                        at = max(updated, told.pop(order_id, 0.0))
                        placed_at = pending.pop(order_id)
                        processed.append((at, at - placed_at, status, order_id, placed_at))
                        done_now.append(order_id)
            if time.time() < end and not rate:
                for _ in done_now:
                    fire()
        stuck = len(pending)
        placed_in_window = {oid: placed_at for _, _, _, oid, placed_at in processed if placed_at >= window_start}
        decided = conn.execute(_DECIDED, (list(placed_in_window),)).fetchall()
    channel.close()
    in_window = sorted(lat for at, lat, *_ in processed if window_start <= at <= end)  # processed in the window
    count_in_window = sum(1 for at, *_ in processed if window_start <= at <= end)
    statuses = Counter(status for _, _, status, *_ in processed)
    result = _summary(in_window, seconds, errors)
    if rate:  # open loop: the latency of every order placed in the window, whenever it finished
        result = _summary(sorted(lat for _, lat, _, _, placed_at in processed if placed_at >= window_start),
                          seconds, errors)
    confirm = _summary([float(at) - placed_in_window[oid] for oid, at in decided], seconds, Counter())
    result.update({"rps": count_in_window / seconds, "stuck": stuck, "processed": len(processed),
                   "statuses": dict(statuses), "place": _summary(place_latencies, seconds, Counter()),
                   "confirm": confirm, "generator_queries_per_s": polls / seconds})
    return result


def _order_factory(skus: list[str], customers: list[str], seed_: int = 1):
    from erp.common.v1 import money_pb2
    from erp.orders.v1 import orders_pb2 as ord_pb
    from loadtests.seed import Zipf, unit_price

    rng = random.Random(seed_)
    popular = Zipf(skus, s=0.8, seed=seed_)

    def make() -> bytes:
        chosen = sorted({popular.draw(rng) for _ in range(rng.randint(1, 5))})
        return ord_pb.PlaceOrderRequest(
            request_id=str(uuid.uuid4()), customer_id=rng.choice(customers), currency_code="EUR",
            lines=[ord_pb.OrderLine(sku=s, warehouse_code="MAIN", quantity=rng.randint(1, 3),
                                    unit_price=money_pb2.Money(currency_code="EUR", amount=unit_price(s)))
                   for s in chosen]).SerializeToString()

    return make


def generator_main(conn) -> None:
    """The load generator process: runs jobs sent over the pipe, answers with their results."""
    sys.path.insert(0, str(ROOT))
    while True:
        job = conn.recv()
        if job is None:
            return
        kind, kwargs = job
        try:
            conn.send(unary_load(**kwargs) if kind == "unary" else order_load(**kwargs))
        except Exception as exc:  # noqa: BLE001 - report it to the parent, keep serving
            conn.send({"failed": f"{exc.__class__.__name__}: {exc}"})


# ------------------------------------------------------------------------------------------ measuring
class Bench:
    def __init__(self, args, echo_pid: int = 0, database_url: str = "", run_db: str = "") -> None:
        self.args, self.echo_pid, self.database_url, self.run_db = args, echo_pid, database_url, run_db
        self.amqp_port = 0
        self.rows: list[dict] = []
        self.pgbench: dict = {}
        self.floor = None  # loadtests.floor.Floor, after row 3
        self.perf_ok, self.perf_note = acc.perf_supported()
        if self.perf_ok:
            self.perf_note = ""
        parent, child = mp.Pipe()
        self.pipe = parent
        self.generator = mp.get_context("spawn").Process(target=generator_main, args=(child,), daemon=True)
        self.generator.start()

    def run(self, kind: str, services: dict[int, str], timeout: float, **kwargs) -> dict:
        """Runs a load in the generator; CPU (loadtests/accounting.py) is sampled at the start and the end
        of its measured window, by this process's clock; order rows attribute PostgreSQL to services."""
        detail, perf = kind == "orders", kwargs.pop("perf", False) and self.perf_ok
        profile_dir = kwargs.pop("profile", None)
        metrics_urls = kwargs.pop("metrics_urls", [])  # /metrics of the services: batch sizes over the window
        sampler = acc.Sampler(services, self.generator.pid, self.echo_pid, self.database_url if detail else "",
                              self.run_db, self.amqp_port)
        self.pipe.send((kind, kwargs))
        started = time.time()
        time.sleep(kwargs.get("warmup", 0))
        before, batches = sampler.snapshot(detail), acc.scrape_batch_sizes(metrics_urls)
        counting = None
        if perf:  # instructions of every counted process over the window (services, engines, the echo)
            pids = ",".join(str(pid) for pid, (group, _) in before["cpu"].items()
                            if group not in ("generator", "postgres other"))
            counting = subprocess.Popen(["perf", "stat", "-x,", "-e", "instructions", "-p", pids, "--", "sleep",
                                         str(kwargs.get("seconds", 0))], stderr=subprocess.PIPE, text=True)
        spies = [profile(pid, name, profile_dir, kwargs["seconds"]) for pid, name in services.items()] if profile_dir else []
        time.sleep(max(0.0, started + kwargs.get("warmup", 0) + kwargs.get("seconds", 0) - time.time()))
        after = sampler.snapshot(detail)
        batches_after = acc.scrape_batch_sizes(metrics_urls)
        for spy in spies:
            spy.wait(60)
        instructions = acc.parse_perf_instructions(counting.communicate(timeout=30)[1]) if counting else None
        if not self.pipe.poll(timeout):
            raise TimeoutError(f"{kind} load did not finish in {timeout:.0f}s")
        result = self.pipe.recv()
        result["cpu"] = acc.Sampler.cores(before, after)
        result["instructions"] = instructions
        result["window"] = after["at"] - before["at"]
        result["batch_means"] = acc.batch_means(batches, batches_after)
        result["groups"] = acc.window_cpu(before["cpu"], after["cpu"])
        result["kernel"] = acc.window_cpu(before["kernel"], after["kernel"])
        result["pg_db"] = {k: after["pg_db"][k] - before["pg_db"].get(k, 0) for k in after["pg_db"]}
        result["rss_mb"] = {}
        for pid, rss in after["rss"].items():
            name = services[pid]
            result["rss_mb"][name] = max(result["rss_mb"].get(name, 0.0), rss / 2**20)
        return result

    def paired(self, first: tuple[list[int], dict], second: tuple[list[int], dict], seconds: float,
               slices: int = 6) -> tuple[dict, dict, list[float]]:
        """Two closed-loop unary loads measured in turns (a b, b a, a b, ...), `seconds` each in all, so
        both see the same moments of a machine whose speed drifts. Returns both pooled results and the
        ratio second/first of each pair of slices."""
        (a, b), ratios = self.in_turns([first, second], seconds, slices)
        return a, b, ratios[1] if ratios else []

    def in_turns(self, loads: list[tuple[dict[int, str], dict]], seconds: float,
                 slices: int = 6) -> tuple[list[dict], list[list[float]]]:
        """Closed-loop unary loads measured in turns (a b c, c b a, a b c, ...), `seconds` each in all.
        Returns each one's pooled result and, per load, the ratio of each of its slices to the first
        load's slice of the same turn (all empty when a slice failed: each result is then that failure)."""
        runs: list[list[dict]] = [[] for _ in loads]
        order = list(range(len(loads)))
        for turn in range(slices):
            for which in (order if turn % 2 == 0 else order[::-1]):
                pids, kwargs = loads[which]
                runs[which].append(self.run("unary", pids, 60, **dict(
                    kwargs, seconds=seconds / slices, warmup=SLICE_WARMUP, raw=True)))
        failed = [r for each in runs for r in each if "failed" in r]
        if failed:
            return [failed[0] for _ in loads], []
        ratios = [[b["rps"] / a["rps"] if a["rps"] else 0.0 for a, b in zip(runs[0], each, strict=True)]
                  for each in runs]
        return [_merged(each) for each in runs], ratios

    def add(self, row: str, what: str, result: dict, **extra) -> dict:
        entry = {"row": row, "what": what, **result, **extra}
        self.rows.append(entry)
        _print_row(entry)
        return entry

    def close(self) -> None:
        self.pipe.send(None)
        self.generator.join(5)


def profile(pid: int, name: str, folder: Path, seconds: float) -> subprocess.Popen:
    """py-spy samples a service process over the window while it holds the GIL (its Python CPU; collapsed
    stacks, 100/s, without pausing it)."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--nonblocking", "--gil", "-r", "100", "-d", str(int(seconds)), "-f", "raw",
                             "-p", str(pid), "-o", str(folder / f"{name}-{pid}.txt")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


SLICE_WARMUP = 0.3  # seconds of each slice of a paired row before its window: connect, fill the pipeline


def _merged(slices: list[dict]) -> dict:
    """One row from slices of it: pooled latencies, summed errors, mean cores busy."""
    latencies = [x for s in slices for x in s["latencies"]]
    errors = sum((Counter(s["error_codes"]) for s in slices), Counter())
    result = _summary(latencies, sum(s["seconds"] for s in slices), errors)
    result["cpu"] = {k: sum(s["cpu"][k] for s in slices) / len(slices) for k in slices[0]["cpu"]}
    pool = acc.pooled(slices)  # windows and CPU per group summed
    result["window"], result["groups"], result["kernel"] = pool["window"], pool["groups"], pool["kernel"]
    return result


HEADER = f"{'row':<4} {'what':<44} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  cpu srv/gen/eng/oth  notes"


def _fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def _print_row(r: dict) -> None:
    if "failed" in r:
        print(f"{r['row']:<4} {r['what']:<44} FAILED: {r['failed']}", flush=True)
        return
    c = r.get("cpu", {})
    cpu = "/".join(_fmt(c.get(k), ".2f") for k in ("srv", "gen", "eng", "oth"))
    print(f"{r['row']:<4} {r['what'][:44]:<44} {_fmt(r['rps'], '.0f'):>8} {_fmt(r['p50']):>7} {_fmt(r['p99']):>7} "
          f"{r['errors']:>6}  {cpu:<19}  {r.get('notes', '')}", flush=True)


# -------------------------------------------------------------------------------------------- seeding
def seed_skus(database_url: str, first: int, last: int, extra_ledger_skus: int = 0, extra_per_sku: int = 0) -> float:
    """Products BENCH-<n> for n in [first, last] in MAIN with 1,000,000 on hand (balance + ledger entry);
    optionally `extra_per_sku` more ledger entries (+1/-1 pairs, net zero) on the first SKUs."""
    import psycopg

    started = time.monotonic()
    sku = "'BENCH-' || lpad(g::text, 7, '0')"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET search_path = inventory")
        conn.execute("INSERT INTO warehouses (code, name) VALUES ('MAIN', 'Main warehouse') ON CONFLICT DO NOTHING")
        if last >= first:
            with conn.transaction():
                conn.execute(f"INSERT INTO products (sku, name, unit_of_measure) SELECT {sku}, 'Bench item', 'EA' "
                             "FROM generate_series(%s::int, %s::int) g", (first, last))
                conn.execute(f"INSERT INTO stock_balances (sku, warehouse_code, on_hand, reserved, version) "
                             f"SELECT {sku}, 'MAIN', 1000000, 0, 1 FROM generate_series(%s::int, %s::int) g", (first, last))
                conn.execute(f"INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, "
                             f"reason, reference) SELECT {sku}, 'MAIN', 'adjustment', 1000000, 0, 'bench opening stock', "
                             "'bench' FROM generate_series(%s::int, %s::int) g", (first, last))
        if extra_per_sku:
            conn.execute(f"INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, reason, "
                         f"reference) SELECT {sku}, 'MAIN', 'adjustment', CASE WHEN n %% 2 = 0 THEN 1 ELSE -1 END, 0, "
                         "'bench cycle count', 'bench' FROM generate_series(1, %s::int) g, generate_series(1, %s::int) n",
                         (extra_ledger_skus, extra_per_sku))
        for table in ("products", "stock_balances", "stock_ledger"):  # after a bulk load, as autovacuum would later
            conn.execute(f"ANALYZE {table}")
    return time.monotonic() - started


def ledger_rows(database_url: str) -> int:
    import psycopg

    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM inventory.stock_ledger").fetchone()[0]


def integrity(database_url: str) -> dict:
    """Oversold rows, balances that differ from their ledger, invoiced orders without an invoice."""
    import psycopg

    with psycopg.connect(database_url) as conn:
        q = lambda sql: conn.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "oversold": q("SELECT count(*) FROM inventory.stock_balances WHERE reserved > on_hand OR reserved < 0"),
            "ledger_mismatch": q("""SELECT count(*) FROM inventory.stock_balances b LEFT JOIN (
                SELECT sku, warehouse_code, sum(on_hand_delta) oh, sum(reserved_delta) rs FROM inventory.stock_ledger
                GROUP BY 1, 2) s USING (sku, warehouse_code) WHERE coalesce(s.oh, 0) <> b.on_hand
                OR coalesce(s.rs, 0) <> b.reserved"""),
            "invoiced_without_invoice": q("""SELECT count(*) FROM orders.orders o WHERE o.status = 'invoiced'
                AND NOT EXISTS (SELECT 1 FROM finance.invoices i WHERE i.order_id = o.order_id)"""),
            "reserved_not_matching_orders": q("""SELECT count(*) FROM (SELECT r.order_id FROM inventory.reservations r
                WHERE r.status = 'reserved' GROUP BY 1) r JOIN orders.orders o USING (order_id)
                WHERE o.status IN ('rejected', 'cancelled')"""),
        }


def redis_hits(url: str) -> tuple[int, int]:
    import redis

    info = redis.Redis.from_url(url).info("stats")
    return info["keyspace_hits"], info["keyspace_misses"]


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per lookup row")
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (closed-loop rows)")
    parser.add_argument("--rate", type=float, default=1000.0, help="offered calls/s of row 2r")
    parser.add_argument("--order-seconds", type=float, default=20.0, help="measured seconds per order row")
    parser.add_argument("--order-slots", type=int, default=64, help="orders in flight")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for open orders at the end")
    parser.add_argument("--sizes", default="1000,100000,1000000", help="catalog sizes of the growth check")
    parser.add_argument("--quick", action="store_true", help="sizes 1000,100000, 10 s order rows")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--only", choices=("lookup", "orders"), help="run the echo and lookup rows, or only the order rows")
    parser.add_argument("--order-processes", default="1,2", help="processes per service of the order rows")
    parser.add_argument("--amqp-consumers", choices=("single", "competing"),
                        help="ERP_AMQP_CONSUMERS of the meshes (default: the services' own, single)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", type=_setting,
                        help="an ERP_ setting every service of the run starts with (repeatable), e.g. "
                        "--env ERP_NOTIFICATION_SEND_CONCURRENCY=1 to measure one setting against its default")
    parser.add_argument("--profile", type=Path, help="py-spy each service over row 3's window, into this folder "
                        "(pip install py-spy into the venv first)")
    parser.add_argument("--pgbench-scale", type=int, default=10, help="pgbench TPC-B scale (branches)")
    parser.add_argument("--pgbench-clients", type=int, default=10, help="pgbench clients")
    parser.add_argument("--pgbench-seconds", type=float, default=15.0)
    parser.add_argument("--cpu-only", action="store_true",
                        help="only the rows CPU per order reads (1o, 3, 1p): no open-loop rows, no pgbench")
    parser.add_argument("--barrier", type=Path, help="before each orders row, wait until --barrier-parties runs "
                        "given this folder reached it: runs measured at the same moments (loadtests.ab --together)")
    parser.add_argument("--barrier-parties", type=int, default=2)
    args = parser.parse_args()
    if args.cpu_only:
        if args.only == "lookup":
            parser.error("--cpu-only runs order rows only")
        args.only = "orders"
    if args.quick:
        args.sizes, args.order_seconds = "1000,100000", 10.0
    sizes = sorted(int(s) for s in args.sizes.split(","))

    sys.path.insert(0, str(ROOT))
    import psutil

    from erp.inventory.v1 import inventory_pb2 as inv
    from loadtests import localmesh, pgbench, seed

    run_id = uuid.uuid4().hex[:8]
    engines = localmesh.engines(require_amqp=True)
    engines = engines.database(f"erp_bench_{run_id}")
    namespace = f"bench_{run_id}"
    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, load average "
          f"{os.getloadavg()[0]:.1f} at start; python {sys.version.split()[0]}")
    print(f"engines: {engines.description}; database erp_bench_{run_id}, namespace {namespace}")
    if mesh_env(args):
        print("services start with " + ", ".join(f"{k}={v}" for k, v in mesh_env(args).items()))
    print(f"generator: 1 process, sync grpc futures, {args.concurrency} in flight; lookup rows {args.seconds:.0f}s "
          f"after {args.warmup:.1f}s warm-up\n")
    echo_port = localmesh.free_ports(1)[0]
    echo = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                             f"from loadtests.bench import serve_echo; serve_echo({echo_port})"])
    bench = Bench(args, echo.pid, engines.database_url, f"erp_bench_{run_id}")
    bench.amqp_port = (urlparse(engines.amqp_url).port or 5672) if engines.amqp_url else 0
    started = time.monotonic()
    try:
        print(HEADER)
        wait_serving_raw(f"127.0.0.1:{echo_port}")
        # Skewed popularity (Zipf, s = 1.0, as in the Locust lookup suite): hot SKUs are asked for often,
        # the tail rarely. The growth rows below use uniform keys instead.
        hot = seed.Zipf([f"BENCH-{i:07d}" for i in range(1, sizes[0] + 1)], s=1.0)
        rng = random.Random(3)
        lookup_payload = [inv.GetStockRequest(sku=hot.draw(rng), warehouse_code="MAIN").SerializeToString()
                          for _ in range(20_000)]
        common = dict(concurrency=args.concurrency, seconds=args.seconds, warmup=args.warmup)
        echo_load = ({}, dict(target=f"127.0.0.1:{echo_port}", method=ECHO_METHOD,
                                      payloads=lookup_payload, concurrency=args.concurrency))
        if args.only != "orders":
            lookup_rows(args, bench, engines, namespace, echo_load, lookup_payload, sizes, common)
        if args.only != "lookup":
            order_rows(args, bench, engines, namespace, echo_load, lookup_payload, common)
        if args.only != "lookup" and not args.cpu_only:
            print(f"\npgbench TPC-B on the same PostgreSQL: scale {args.pgbench_scale}, {args.pgbench_clients} clients, "
                  f"2 threads, {args.pgbench_seconds:.0f}s (load average {os.getloadavg()[0]:.1f})", flush=True)
            bench.pgbench = pgbench.tpc_b(engines.server_url, f"erp_bench_{run_id}_pgbench", args.pgbench_scale,
                                          args.pgbench_clients, args.pgbench_seconds)
            print(f"     -> {bench.pgbench.get('tps') or bench.pgbench}", flush=True)
        checks = integrity(engines.database_url)
        print(f"\nintegrity after the order rows: {checks} (all must be 0)")
        print(f"\nbenchmark took {time.monotonic() - started:.0f}s; load average {os.getloadavg()[0]:.1f} at the end")
        verdict(bench, checks)
        if args.json:
            args.json.write_text(json.dumps(bench.rows, indent=2, default=str))
        return 0
    finally:
        if echo.poll() is None:
            echo.terminate()
        bench.close()
        _cleanup(engines, namespace, localmesh)


def versus_echo(args, bench: Bench, echo_load: tuple, pids: dict[int, str], target: str, lookup_payload: list[bytes],
                rows: tuple[str, str], what: str) -> dict:
    """The echo row and a GetStock row measured in turns, after a warm-up that reads every hot SKU: the
    ratio compares steady states at the same moments, not a cold cache with an echo measured earlier."""
    lookup = dict(target=target, method=GETSTOCK, payloads=lookup_payload, concurrency=args.concurrency)
    bench.run("unary", pids, 60, **dict(lookup, payloads=sorted(set(lookup_payload)),
                                        seconds=max(args.warmup, 2.0), warmup=0))
    echo, stock, ratios = bench.paired(echo_load, (pids, lookup), args.seconds)
    bench.add(rows[0], "bare gRPC unary echo (sync server)", echo)
    if "failed" in stock:
        return bench.add(rows[1], what, stock)
    vs_echo = stock["rps"] / echo["rps"] if echo["rps"] else 0.0
    notes = (f"({rows[1]})/({rows[0]}) = {vs_echo:.2f}, per slice {min(ratios):.2f}-{max(ratios):.2f}; "
             f"{len(ratios)} slices in turns with ({rows[0]})")
    row = bench.add(rows[1], what, stock, vs_echo=vs_echo, notes=notes)
    print(f"     -> ({rows[1]})/({rows[0]}) throughput ratio {vs_echo:.2f} (target >= 0.9)", flush=True)
    return row


def lookup_split(args, bench: Bench, echo_load: tuple, lookup_load: tuple) -> None:
    """Rows 1b and 1w (loadtests/lookup_parts.py): GetStock's stand-ins in turns with the echo and GetStock
    (echo, 1b, 1w, GetStock, GetStock, 1w, ...), and where GetStock's server CPU beyond the echo's goes."""
    from loadtests import localmesh, lookup_parts

    payloads = lookup_load[1]["payloads"]
    stand_ins = {"bare": ("1b", "GetStock stand-in, bare protobuf method", False),
                 "wrapped": ("1w", "GetStock stand-in behind the mesh's wrap", True)}
    ports = dict(zip(stand_ins, localmesh.free_ports(len(stand_ins)), strict=True))
    # started as the services are: without the caller's ERP_ settings, with the run's own (--env)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ERP_")}, **mesh_env(args)}
    servers: dict[str, subprocess.Popen] = {}
    try:
        loads = [echo_load]
        for name, (row, _, wrapped) in stand_ins.items():
            servers[name] = subprocess.Popen(
                [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                 f"from loadtests.lookup_parts import serve; serve({ports[name]}, {wrapped})"], env=env)
            wait_serving_raw(f"127.0.0.1:{ports[name]}")
            loads.append(({servers[name].pid: f"{row} stand-in"}, dict(
                target=f"127.0.0.1:{ports[name]}", method=GETSTOCK, payloads=payloads, concurrency=args.concurrency)))
        results, ratios = bench.in_turns([*loads, lookup_load], args.seconds)
    except TimeoutError as exc:  # a stand-in that did not start: its rows fail, the bench goes on
        for row, what, _ in stand_ins.values():
            bench.add(row, what, {"failed": str(exc)})
        return
    finally:
        for server in servers.values():
            server.terminate()
            server.wait(10)
    if not ratios:  # a slice failed: every result is that failure
        for row, what, _ in stand_ins.values():
            bench.add(row, what, results[0])
        return
    call_us = {"echo": _call_us(results[0]), "lookup": _call_us(results[-1])}
    for (name, (row, what, _)), result, slices in zip(stand_ins.items(), results[1:-1], ratios[1:-1], strict=True):
        ratio = result["rps"] / results[0]["rps"] if results[0]["rps"] else 0.0
        bench.add(row, what, result, vs_echo=ratio,
                  notes=f"({row})/echo = {ratio:.2f}, per slice {min(slices):.2f}-{max(slices):.2f}; in turns")
        call_us[name] = _call_us(result)
    for line in lookup_parts.lines(call_us):
        print("     -> " + line, flush=True)


def _call_us(row: dict) -> float | None:
    """The server CPU of one call of a closed-loop row (its server processes' cores over its calls/s), µs."""
    cores = row.get("cpu", {}).get("srv")
    return cores / row["rps"] * 1e6 if cores is not None and row.get("rps") else None


def at_rate(args, bench: Bench, echo_load: tuple, pids: dict[int, str], target: str, payloads: list[bytes],
            rows: tuple[str, str], what: str) -> None:
    """The echo and GetStock at the same offered rate, in turns: the p99 target is GetStock's over the echo's."""
    lookup = dict(target=target, method=GETSTOCK, payloads=payloads, concurrency=args.concurrency, rate=args.rate)
    echo, stock, _ = bench.paired((echo_load[0], dict(echo_load[1], rate=args.rate)), (pids, lookup), args.seconds)
    bench.add(rows[0], f"bare echo at {args.rate:.0f}/s offered", echo)
    p99_x = stock["p99"] / echo["p99"] if stock.get("p99") and echo.get("p99") else None
    bench.add(rows[1], what, stock, p99_vs_echo=p99_x, notes=f"p99 ({rows[1]})/({rows[0]}) = {_fmt(p99_x)}; in turns")


def mesh_env(args) -> dict[str, str]:
    """Settings every mesh of the run starts with (the queues are declared once per run)."""
    return {**dict(args.env), **({"ERP_AMQP_CONSUMERS": args.amqp_consumers} if args.amqp_consumers else {})}


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("ERP_"):
        raise argparse.ArgumentTypeError(f"expected ERP_NAME=VALUE, got {text!r}")
    return name, value


def lookup_rows(args, bench: Bench, engines, namespace: str, echo_load: tuple, lookup_payload: list[bytes],
                sizes: list[int], common: dict) -> None:
    """Rows 1, 2, 2r, the growth rows and 2n; seeds the catalog and the customers the order rows use."""
    import psutil

    from erp.crm.v1 import crm_pb2_grpc
    from erp.inventory.v1 import inventory_pb2 as inv
    from loadtests import localmesh, seed
    from mesh.settings import load

    with localmesh.mesh(engines, namespace, processes=1, extra_env=mesh_env(args)) as targets:
        pids = _service_map(psutil, targets)
        seeded = 0
        seeded_time = seed_skus(engines.database_url, 1, sizes[0])
        seeded = sizes[0]
        ttl = load("inventory").cache_ttl_seconds
        lookup = versus_echo(args, bench, echo_load, pids, targets["inventory"], lookup_payload, ("1", "2"),
                             f"GetStock, {sizes[0]:,} SKUs (Redis cache, TTL {ttl:.0f} s)")
        if "failed" not in lookup:  # (inventory's process alone: the others' idle CPU is no part of a lookup)
            inventory = {pid: name for pid, name in pids.items() if name == "inventory"}
            lookup_split(args, bench, echo_load, (inventory, dict(
                target=targets["inventory"], method=GETSTOCK, payloads=lookup_payload, concurrency=args.concurrency)))
        at_rate(args, bench, echo_load, pids, targets["inventory"], lookup_payload, ("1r", "2r"),
                f"GetStock at {args.rate:.0f}/s offered, {sizes[0]:,} SKUs")
        rated = bench.rows[-1]
        print(f"     -> offered {args.rate:.0f}/s; errors {rated.get('error_codes')} (NOT_SENT: the generator "
              "skipped a call because that many were already waiting: the service did not keep up)", flush=True)
        print(f"\ngrowth: lookups with uniform keys (mostly cache misses beyond the hot set) "
              f"[seeded {sizes[0]:,} SKUs in {seeded_time:.1f}s]")
        print(HEADER)
        for size in sizes:
            if size > seeded:
                long_ledger = size >= 1_000_000
                took = seed_skus(engines.database_url, seeded + 1, size,
                                 extra_ledger_skus=1000 if long_ledger else 0,
                                 extra_per_sku=2000 if long_ledger else 0)
                seeded = size
                print(f"     (seeded up to {size:,} SKUs in {took:.1f}s; ledger now "
                      f"{ledger_rows(engines.database_url):,} rows)", flush=True)
            payloads = [inv.GetStockRequest(sku=f"BENCH-{i:07d}", warehouse_code="MAIN").SerializeToString()
                        for i in random.Random(size).sample(range(1, size + 1), min(size, 200_000))]
            hits0 = redis_hits(engines.redis_url)
            bench.add("g", f"GetStock uniform over {size:,} SKUs", bench.run(
                "unary", pids, 60, target=targets["inventory"], method=GETSTOCK, payloads=payloads, **common),
                notes=f"redis hit ratio ~{_ratio(hits0, redis_hits(engines.redis_url))}")
        with _grpc_channel(targets["crm"]) as ch:
            seed.seed_customers(crm_pb2_grpc.CustomerServiceStub(ch))
        time.sleep(2)  # crm's CustomerUpdated reaches notification and finance
    # The same lookup without the in-process copy (ERP_CACHE_LOCAL_MS=0): every hit asks Redis.
    with localmesh.mesh(engines, namespace, processes=1, services=("inventory",),
                        extra_env={**mesh_env(args), "ERP_CACHE_LOCAL_MS": "0"}) as targets:
        bench.add("2n", f"GetStock, {sizes[0]:,} SKUs, Redis only (no in-process copy)", bench.run(
            "unary", _service_map(psutil, targets), 60, target=targets["inventory"], method=GETSTOCK,
            payloads=lookup_payload, **common))


def order_rows(args, bench: Bench, engines, namespace: str, echo_load: tuple, lookup_payload: list[bytes],
               common: dict) -> None:
    """Rows 3 and 3x2 (and 1x2/2x2, 2rx2: GetStock on two inventory processes); with --only orders, seeds first."""
    import psutil

    from erp.crm.v1 import crm_pb2_grpc
    from loadtests import localmesh, seed

    if args.only == "orders":  # the services create their schemas; then the catalog and customers
        with localmesh.mesh(engines, namespace, processes=1, extra_env=mesh_env(args)) as targets:
            seed_skus(engines.database_url, 1, 1000)
            with _grpc_channel(targets["crm"]) as ch:
                seed.seed_customers(crm_pb2_grpc.CustomerServiceStub(ch))
            time.sleep(2)
    order_args = dict(skus=[f"BENCH-{i:07d}" for i in range(1, 1001)], customers=seed.CUSTOMERS)
    print(f"\norders: {args.order_slots} orders in flight until fully processed, {args.order_seconds:.0f}s "
          f"measured after {args.warmup:.1f}s; 1-5 lines of 1,000 SKUs (Zipf 0.8), 50 customers")
    print(HEADER)
    for processes in sorted(int(n) for n in args.order_processes.split(",")):
        with localmesh.mesh(engines, namespace, processes=processes, extra_env=mesh_env(args)) as targets:
            pids = _service_map(psutil, targets)
            if processes == 2 and args.only != "orders":  # does a second process help the lookup here?
                versus_echo(args, bench, echo_load, pids, targets["inventory"], lookup_payload, ("1x2", "2x2"),
                            "GetStock, 1,000 SKUs, 2 inventory processes")
                bench.add("2rx2", f"GetStock at {args.rate:.0f}/s offered, 2 inventory processes", bench.run(
                    "unary", pids, 60, target=targets["inventory"], method=GETSTOCK, payloads=lookup_payload,
                    rate=args.rate, **common))
            suffix = "" if processes == 1 else "x2"
            # The server CPU of one bare echo call, measured next to the orders it is compared with: right
            # before them here, and right after them below (row 1p), since the machine's speed drifts.
            bench.add("1o" + suffix, "bare echo (its server CPU per call)", echo_slice(bench, args, echo_load))
            orders = dict(target=targets["orders"], database_url=engines.database_url, payload_factory_args=order_args,
                          seconds=args.order_seconds, warmup=args.warmup, drain=args.drain)
            if args.barrier:
                rendezvous(args.barrier / f"3{suffix}", args.barrier_parties)
            result = bench.run("orders", pids, args.order_seconds + args.drain + 60, perf=True,
                               profile=args.profile, slots=args.order_slots,
                               metrics_urls=[url for urls in targets.metrics.values() for url in urls], **orders)
            if "failed" not in result:
                place = result["place"]
                result["notes"] = (f"processed {result['processed']} {result['statuses']}, stuck {result['stuck']}; "
                                   f"PlaceOrder p50/p99 {_fmt(place['p50'])}/{_fmt(place['p99'])} ms")
            row = bench.add("3" + suffix, f"orders fully processed, {processes} process{'es' if processes > 1 else ''}"
                            "/service", result)
            if "failed" in row or not row["rps"]:
                continue
            bench.add("1p" + suffix, "bare echo again, right after (3)", echo_slice(bench, args, echo_load))
            print_cpu(bench, "3" + suffix, "1o" + suffix, "1p" + suffix)
            if args.cpu_only:
                continue
            if processes == 1:
                print_floor(bench, engines)
            rate = 0.8 * row["rps"]  # 80% of the measured maximum: the latency target's load
            paced = paced_orders(bench, pids, "3r" + suffix, "orders at 80% of (3), open loop", rate, orders)
            if "failed" not in paced and paced["rps"] > 0 and fell_behind(paced, rate) and not paced["stuck"]:
                # It fell behind: row 3's closed loop (every slot busy, full consumer batches) can pass more
                # than an open-loop rate does, so 3r measured a growing queue. What 3r itself processed is
                # the open loop's maximum; 3s offers 80% of that, and the latency target reads 3s. Not after
                # a 3r that processed nothing, or left orders unfinished (3s would start on its backlog).
                paced_orders(bench, pids, "3s" + suffix, "orders at 80% of what (3r) processed, open loop",
                             0.8 * paced["rps"], orders)


def rendezvous(folder: Path, parties: int, timeout: float = 600.0) -> None:
    """Waits until `parties` runs have reached `folder` (each leaves a file of its own there), so that
    their next rows start within a poll (20 ms) of each other."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / uuid.uuid4().hex).touch()
    deadline = time.monotonic() + timeout
    while sum(1 for _ in folder.iterdir()) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{parties} runs did not reach {folder} within {timeout:.0f}s")
        time.sleep(0.02)


KEPT_UP = 0.95  # an open-loop row whose processed rate is under this share of its offered rate fell behind


def fell_behind(paced: dict, rate: float) -> bool:
    return paced["rps"] < KEPT_UP * rate


def paced_orders(bench: Bench, pids: dict[int, str], name: str, what: str, rate: float, orders: dict) -> dict:
    paced = bench.run("orders", pids, orders["seconds"] + orders["drain"] + 60, slots=bench.args.order_slots,
                      rate=rate, **orders)
    if "failed" not in paced:
        behind = " (fell behind)" if fell_behind(paced, rate) else ""
        paced["notes"] = (f"offered {rate:.1f}/s, processed {paced['rps']:.1f}/s{behind}; placement->confirmation "
                          f"p50/p99 {_fmt(paced['confirm']['p50'], '.0f')}/{_fmt(paced['confirm']['p99'], '.0f')} ms; "
                          f"stuck {paced['stuck']}")
    return bench.add(name, what, paced)


def echo_slice(bench: Bench, args, echo_load: tuple) -> dict:
    """The bare echo for its server CPU per call: half a lookup row's seconds, instructions counted."""
    return bench.run("unary", {}, 60, perf=True, **dict(echo_load[1], seconds=args.seconds / 2, warmup=SLICE_WARMUP))


def print_cpu(bench: Bench, orders_row: str, echo_before: str, echo_after: str) -> None:
    by = {r["row"]: r for r in bench.rows}
    order, echoes = by[orders_row], acc.echo_rows(by, echo_before, echo_after)
    echo = acc.pooled(echoes)
    units = order["rps"] * order["window"]
    per_order = acc.order_ms(order)
    echo_ms = acc.echo_call_ms(echo)
    print(f"\n     CPU per order fully processed ({orders_row}: {units:.0f} orders in {order['window']:.1f}s; "
          f"load average {os.getloadavg()[0]:.1f}), and resident memory under that load:")
    kernel = {g: acc.kernel_share(order, g) for g in per_order if g != "total"} | {"total": acc.kernel_share(order)}
    for line in acc.cpu_lines(per_order, order["rss_mb"], echo_ms, kernel, acc.kernel_share(echo, "echo")):
        print("     " + line)
    print(f"     the echo's CPU per call, pooled over rows {echo_before} and {echo_after} (right before and right after): "
          + " and ".join(f"{_fmt(acc.echo_call_ms(acc.pooled([row])), '.3f')} ms" for row in echoes))
    gen = order["groups"].get("generator", 0.0) * 1000 / units
    other = order["groups"].get("postgres other", 0.0) * 1000 / units
    print(f"     not counted: load generator {gen:.2f} ms/order, other databases on the PostgreSQL server "
          f"{other:.2f} ms/order, the rest of the machine {order['cpu']['oth']:.2f} cores", flush=True)
    idle = {g: echo["groups"].get(g, 0.0) / echo["window"] for g in ("postgres", "rabbitmq", "redis")} if echoes else {}
    print(f"     engines while the mesh idled (rows {echo_before}, {echo_after}; other users of shared engines, the services' polls): "
          + ", ".join(f"{g} {c:.2f} cores ({c * 1000 / order['rps']:.1f} ms/order)" for g, c in idle.items()))
    if order["pg_db"]:  # less the generator's completion polls (two autocommit queries every 50 ms)
        xacts = order["pg_db"]["transactions"] - order.get("generator_queries_per_s", 0.0) * order["window"]
        print(f"     PostgreSQL per order (pg_stat_database, less the generator's polls): {xacts / units:.1f} "
              f"transactions, {order['pg_db']['rows written'] / units:.1f} rows written")
        scanned, most = acc.scanned_per_unit(order["pg_db"], units)
        print(f"     rows read by sequential scans per order (pg_stat_user_tables): {scanned:.1f}"
              + "".join(f"{', of which' if i == 0 else ','} {table} {rows:.1f}" for i, (table, rows) in enumerate(most)))
    for stage, what in (("consumed", "per consumer batch"), ("published", "per relay round")):
        if means := order.get("batch_means", {}).get(stage):  # erp_event_batch_size over the window
            print(f"     events {what}: " + ", ".join(f"{service} {mean:.1f}" for service, mean in means.items()))
    for what, row, n in (("order", order, units), ("echo call", echo, echo["calls"])):
        if row.get("instructions") is not None and n:
            print(f"     instructions per {what}: {row['instructions'] / n:,.0f}")
    if bench.perf_note:
        print(f"     instructions: {bench.perf_note}\n", flush=True)


def print_floor(bench: Bench, engines) -> None:
    """The floor of an order (loadtests/floor.py), measured while the mesh idles after row 1p."""
    from loadtests import floor

    by = {r["row"]: r for r in bench.rows}
    echo_ms = acc.echo_call_ms(acc.pooled(acc.echo_rows(by, "1o", "1p")))
    print("\n     the floor: the order's statements, events and call alone, nothing around them (loadtests/floor.py):")
    try:
        bench.floor = floor.measure(engines.database_url, engines.amqp_url, echo_ms)
    except Exception as exc:  # noqa: BLE001 - a side measurement: the rows after it still run
        print(f"       not measured: {exc.__class__.__name__}: {exc}", flush=True)
        return
    for line in bench.floor.lines(acc.order_ms(by["3"])["total"]):
        print("       " + line, flush=True)


def print_budget(bench: Bench) -> None:
    """What the orders-per-pgbench target leaves per order, beside the order and its floor."""
    from loadtests import floor

    by = {r["row"]: r for r in bench.rows if "failed" not in r}
    cores = os.cpu_count() or 1
    allowed = floor.budget_ms(bench.pgbench.get("tps"), cores)
    if allowed is None or "3" not in by or not by["3"]["rps"]:
        return
    row = by["3"]
    machine = cores * 1000 / row["rps"]
    found = bench.floor
    print(f"budget: {acc.ORDERS_VS_PGBENCH}x pgbench's {bench.pgbench['tps']:.0f} tps leaves {allowed:.2f} ms of the "
          f"{cores} cores per order; row 3 took {machine:.2f} (its mesh and engines "
          f"{acc.order_ms(row)['total']:.2f}, the load generator "
          f"{row['groups'].get('generator', 0.0) * 1000 / (row['rps'] * row['window']):.2f})"
          + (f"; the floor is {found.total_ms:.2f}" if found else ""))


def verdict(bench: Bench, checks: dict) -> None:
    by = {r["row"]: r for r in bench.rows if "failed" not in r}
    f = acc.Figures(integrity=checks)
    if "3" in by and by["3"]["rps"]:
        f.cpu_per_order_ms = acc.order_ms(by["3"])["total"]
        f.echo_cpu_per_call_ms = acc.echo_call_ms(acc.pooled(acc.echo_rows(by, "1o", "1p")))
        f.orders_per_s = by["3"]["rps"]
        f.stuck = sum(r["stuck"] for r in by.values() if "stuck" in r)
    f.pgbench_tps = getattr(bench, "pgbench", {}).get("tps")
    latency_row = "3s" if "3s" in by else "3r"
    f.confirm_p99_ms = by.get(latency_row, {}).get("confirm", {}).get("p99")
    if latency_row in by:
        print(f"placement->confirmation target read from row {latency_row}: {by[latency_row]['notes']}")
    f.lookup_vs_echo = by.get("2", {}).get("vs_echo")
    f.lookup_p99_ms, f.echo_p99_ms = by.get("2r", {}).get("p99"), by.get("1r", {}).get("p99")
    f.echo_not_sent = sum(n for code, n in by.get("1r", {}).get("error_codes", {}).items() if code.startswith("NOT_SENT"))
    print(f"\nfigures: CPU/order {_fmt(f.cpu_per_order_ms)} ms, echo server CPU/call {_fmt(f.echo_cpu_per_call_ms, '.3f')} "
          f"ms; orders {_fmt(f.orders_per_s, '.1f')}/s, pgbench {_fmt(f.pgbench_tps, '.0f')} tps")
    print_budget(bench)
    print("verdict (issue 18 targets; the gateway's are make bench-gateway's):")
    for line in acc.verdicts(f):
        print(line.line())


def _ratio(before: tuple[int, int], after: tuple[int, int]) -> str:
    hits, misses = after[0] - before[0], after[1] - before[1]
    return f"{hits / (hits + misses):.0%}" if hits + misses else "-"


def _grpc_channel(target: str):
    import grpc

    return grpc.insecure_channel(target)


def wait_serving_raw(target: str, timeout: float = 20) -> None:
    import grpc

    end = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        while True:
            try:
                grpc.channel_ready_future(channel).result(timeout=1)
                return
            except grpc.FutureTimeoutError:
                if time.monotonic() > end:
                    raise TimeoutError(f"{target} did not start") from None


def _service_map(psutil, targets: dict) -> dict[int, str]:
    """{pid: service} of the processes listening on the targets' ports."""
    service_of = {int(p.rsplit(":", 1)[1]): name for name, t in targets.items()
                  for p in t.removeprefix("ipv4:").split(",")}
    pids = {}
    for conn in psutil.net_connections("tcp"):
        if conn.status == "LISTEN" and conn.laddr.port in service_of and conn.pid:
            pids[conn.pid] = service_of[conn.laddr.port]
    return pids


def _cleanup(engines, namespace: str, localmesh) -> None:
    for what, step in (("database", lambda: localmesh.drop_database(engines)),
                       ("AMQP namespace", lambda: engines.amqp_url and localmesh.delete_amqp_namespace(
                           engines.amqp_url, namespace)),
                       ("cache keys", lambda: localmesh.clear_cache(engines.redis_url, namespace))):
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - report and go on cleaning
            print(f"cleanup of the {what} failed: {exc}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
