"""Where the CPU of a benchmark window went, per service and per engine, and the issue-18 verdicts.

A snapshot maps every process of interest to a group and its CPU seconds so far (user + system, all its
threads): `svc <name>` for a service process, `postgres for <name>` for a PostgreSQL backend serving that
service's connections (matched by the client port of the connection), `postgres server` for the
postmaster and its background workers (WAL writer, checkpointer, this database's autovacuum), `redis`,
`rabbitmq`, and, not counted towards the mesh, `generator`, `echo` and `postgres other` (other databases:
other users of a shared server). The CPU of a window is, per group, the growth of the processes alive at
its end (from zero for those that started inside it). A process that exits inside the window is not
counted: the services hold their connections in pools, so their backends live through it, while the
postmaster's children times would bring in every other database's short-lived backends.

The system (kernel) part of each group's CPU is kept beside it: it says how much of a unit of work is
system calls (loopback TCP, futexes, fsync), which a faster or slower hour of the VM moves differently
from Python.

The pure parts (grouping, differences, per-unit figures, parsers, verdicts) are unit-tested; `Sampler`
reads /proc through psutil and pg_stat_activity.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import time

ENGINE_OF = {"postgres": "postgres", "redis-server": "redis", "beam.smp": "rabbitmq", "epmd": "rabbitmq",
             "erl_child_setup": "rabbitmq", "inet_gethost": "rabbitmq"}
GENERATOR_APP = "erp-bench-generator"  # application_name of the load generator's own PostgreSQL connections
NOT_COUNTED = ("generator", "echo", "postgres other")
PG_PORT = 5432


def pg_group(row: tuple | None, run_db: str, service_of_port: dict[int, str]) -> str:
    """The group of a PostgreSQL process from its pg_stat_activity row (datname, backend_type,
    application_name, client_port); None: not listed there (the postmaster, the logger...)."""
    if row is None:
        return "postgres server"
    datname, backend_type, application, client_port = row
    if backend_type != "client backend":
        return "postgres server" if datname in (None, run_db) else "postgres other"
    if datname != run_db or application == GENERATOR_APP:
        return "postgres other"
    return f"postgres for {service_of_port.get(client_port, '?')}"


def window_cpu(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds per group between two snapshots {pid: (group, cpu seconds so far)}: the processes
    alive at the end, in the group they end in (a backend's row in pg_stat_activity may come late)."""
    groups: dict[str, float] = {}
    for pid, (group, seconds) in after.items():
        groups[group] = groups.get(group, 0.0) + seconds - (before[pid][1] if pid in before else 0.0)
    return groups


def counted(groups: dict[str, float]) -> dict[str, float]:
    """The groups that are the mesh and its engines, sorted: services, then PostgreSQL, Redis, RabbitMQ."""
    order = lambda g: (not g.startswith("svc "), not g.startswith("postgres"), g)  # noqa: E731
    return {g: max(0.0, groups[g]) for g in sorted(groups, key=order) if g not in NOT_COUNTED}


def per_unit_ms(groups: dict[str, float], units: float) -> dict[str, float]:
    """Milliseconds of CPU per unit of work for each group, and their 'total'."""
    if units <= 0:
        return {}
    result = {g: s * 1000 / units for g, s in groups.items()}
    result["total"] = sum(groups.values()) * 1000 / units
    return result


def pooled(rows: list[dict]) -> dict:
    """Rows of one load measured apart (the echo right before and right after the orders) as one:
    their calls, windows, CPU per group and instructions summed, so a figure per call is theirs
    over the whole stretch, not the machine's speed at one end of it."""
    groups: dict[str, float] = {}
    kernel: dict[str, float] = {}
    for row in rows:
        for group, seconds in row["groups"].items():
            groups[group] = groups.get(group, 0.0) + seconds
        for group, seconds in row.get("kernel", {}).items():
            kernel[group] = kernel.get(group, 0.0) + seconds
    instructions = [row.get("instructions") for row in rows]
    return {"calls": sum(row["rps"] * row["window"] for row in rows), "window": sum(row["window"] for row in rows),
            "groups": groups, "kernel": kernel,
            "instructions": sum(instructions) if rows and None not in instructions else None}


def echo_call_ms(echo: dict) -> float | None:
    """Milliseconds of the echo server's CPU per call of a pooled() echo."""
    return echo["groups"].get("echo", 0.0) * 1000 / echo["calls"] if echo["calls"] else None


def kernel_share(row: dict, group: str | None = None) -> float | None:
    """The share of a row's CPU that was system time: of one group, or (None) of the mesh and its
    engines together; None when no CPU was counted."""
    if group is None:
        mesh = counted(row["groups"])
        total, kernel = sum(mesh.values()), sum(row.get("kernel", {}).get(g, 0.0) for g in mesh)
    else:
        total, kernel = row["groups"].get(group, 0.0), row.get("kernel", {}).get(group, 0.0)
    return kernel / total if total > 0 else None


def order_ms(order: dict) -> dict[str, float]:
    """An orders row's CPU per order fully processed, per counted group and in 'total'."""
    return per_unit_ms(counted(order["groups"]), order["rps"] * order["window"])


def echo_rows(by: dict[str, dict], *names: str) -> list[dict]:
    """The echo rows of those names that ran (by: a run's rows by name), to pool()."""
    return [by[name] for name in names if name in by and "failed" not in by[name]]


BatchSizes = dict[tuple[str, str], tuple[float, float]]  # (service, stage) -> (batches, events)


def parse_batch_sizes(exposition: str) -> BatchSizes:
    """erp_event_batch_size's count and sum per (service, stage) from a /metrics page."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[tuple[str, str], list[float]] = {}
    for family in text_string_to_metric_families(exposition):
        if family.name != "erp_event_batch_size":
            continue
        for sample in family.samples:
            kind = {"erp_event_batch_size_count": 0, "erp_event_batch_size_sum": 1}.get(sample.name)
            if kind is not None:
                found.setdefault((sample.labels["service"], sample.labels["stage"]), [0.0, 0.0])[kind] += sample.value
    return {key: (count, total) for key, (count, total) in found.items()}


SCANNED = "scanned "  # pg_db keys "scanned <schema.table>": rows its sequential scans read so far


def scanned_per_unit(counters: dict[str, float], units: float, top: int = 3) -> tuple[float, list[tuple[str, float]]]:
    """Rows read by sequential scans per unit of work over a window (pg_db differences): in all, and
    for the `top` tables that read most. A batch statement that scans a growing table shows here."""
    tables = sorted(((key.removeprefix(SCANNED), rows / units) for key, rows in counters.items()
                     if key.startswith(SCANNED) and rows > 0), key=lambda t: -t[1])
    return sum(rows for _, rows in tables), tables[:top]


def batch_means(before: BatchSizes, after: BatchSizes) -> dict[str, dict[str, float]]:
    """Mean events per batch over a window, by stage then service (services with no batch in it left out)."""
    means: dict[str, dict[str, float]] = {}
    for (service, stage), (count, total) in sorted(after.items()):
        batches = count - before.get((service, stage), (0.0, 0.0))[0]
        if batches > 0:
            means.setdefault(stage, {})[service] = (total - before.get((service, stage), (0.0, 0.0))[1]) / batches
    return means


def parse_pgbench_tps(output: str) -> float | None:
    """pgbench's tps (PostgreSQL 15: 'tps = 1234.5 (without initial connection time)')."""
    found = re.findall(r"^tps = ([0-9.]+)", output, re.MULTILINE)
    return float(found[-1]) if found else None


def parse_perf_instructions(output: str) -> int | None:
    """The instruction count from `perf stat -x,` output; None when not supported or not counted."""
    for line in output.splitlines():
        fields = line.split(",")
        if len(fields) >= 3 and fields[2].startswith("instructions"):
            return int(fields[0]) if fields[0].isdigit() else None
    return None


def perf_supported() -> tuple[bool, str]:
    try:
        out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions", "--", "true"], capture_output=True,
                             text=True, timeout=10).stderr
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"perf not runnable ({exc.__class__.__name__})"
    if parse_perf_instructions(out) is None:
        return False, "perf stat counts no instructions here (" + (out.strip().splitlines() or ["no output"])[-1] + ")"
    return True, "perf stat -e instructions"


# ------------------------------------------------------------------------------------------ verdicts
@dataclasses.dataclass(frozen=True)
class Verdict:
    what: str
    measured: str
    ok: bool | None  # None: not measured in this run

    def line(self) -> str:
        mark = {True: "PASS", False: "MISS", None: "----"}[self.ok]
        return f"  {mark}  {self.what:<66} {self.measured}"


def _at_most(what: str, value: float | None, limit: float, fmt: str) -> Verdict:
    return Verdict(what, "not measured" if value is None else format(value, fmt), None if value is None else value <= limit)


def _at_least(what: str, value: float | None, limit: float, fmt: str) -> Verdict:
    return Verdict(what, "not measured" if value is None else format(value, fmt), None if value is None else value >= limit)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


@dataclasses.dataclass
class Figures:
    """What the verdicts are taken from (None: not measured in this run)."""

    cpu_per_order_ms: float | None = None
    echo_cpu_per_call_ms: float | None = None
    orders_per_s: float | None = None
    pgbench_tps: float | None = None
    confirm_p99_ms: float | None = None
    lookup_vs_echo: float | None = None
    lookup_p99_ms: float | None = None
    echo_p99_ms: float | None = None
    echo_not_sent: int = 0  # calls the generator could not send at the offered rate: the echo itself fell behind
    gateway_added_p50_ms: float | None = None
    gateway_vs_direct: float | None = None
    stuck: int | None = None
    integrity: dict | None = None


ORDER_VS_ECHO = 70  # CPU per order at most this many echo calls' server CPU
ORDERS_VS_PGBENCH = 0.05  # orders fully processed per second at least this share of pgbench's TPC-B tps


def verdicts(f: Figures) -> list[Verdict]:
    cpu_x = ratio(f.cpu_per_order_ms, f.echo_cpu_per_call_ms)
    lines = [
        _at_most(f"CPU per order <= {ORDER_VS_ECHO}x the server CPU of one echo call", cpu_x, ORDER_VS_ECHO, ".1f"),
        _at_least(f"orders fully processed/s >= {ORDERS_VS_PGBENCH}x pgbench TPC-B tps",
                  ratio(f.orders_per_s, f.pgbench_tps), ORDERS_VS_PGBENCH, ".3f"),
        _at_most("p99 placement->confirmation < 1 s at 80% of max throughput (ms)", f.confirm_p99_ms, 999.999, ".0f"),
        _at_least("lookup throughput >= 0.9x echo (in turns)", f.lookup_vs_echo, 0.9, ".2f"),
        _at_most("lookup p99 <= 1.3x echo p99 at 1,000/s offered", ratio(f.lookup_p99_ms, f.echo_p99_ms), 1.3, ".2f"),
    ]
    if f.echo_not_sent and lines[-1].ok is not None:  # no reference: the machine could not serve even the echo
        lines[-1] = Verdict(lines[-1].what, f"{lines[-1].measured}, void: the echo fell behind the offered rate "
                            f"({f.echo_not_sent} calls not sent)", None)
    if f.gateway_added_p50_ms is not None or f.gateway_vs_direct is not None:
        lines += [_at_most("gateway adds <= 1 ms p50 (ms)", f.gateway_added_p50_ms, 1.0, ".2f"),
                  _at_least("gateway passes >= 0.7x direct throughput", f.gateway_vs_direct, 0.7, ".2f")]
    if f.stuck is not None:
        lines.append(Verdict("no order stuck", str(f.stuck), f.stuck == 0))
    if f.integrity is not None:
        lines.append(Verdict("no oversell, ledger = balances, invoices (all 0)", str(f.integrity),
                             not any(f.integrity.values())))
    return lines


# ------------------------------------------------------------------------------------------ sampling
def cpu_seconds(process) -> tuple[float, float]:
    """A psutil.Process's CPU seconds so far, and the system part of them."""
    t = process.cpu_times()
    return t.user + t.system, t.system


_BROKERS: dict[int, set[int]] = {}


def broker_pids(port: int) -> set[int]:
    """The RabbitMQ node listening on `port` and its helper processes (epmd is shared: not counted)."""
    if port not in _BROKERS:
        import psutil

        beam = {c.pid for c in psutil.net_connections("tcp") if c.status == "LISTEN" and c.laddr.port == port}
        _BROKERS[port] = beam | {child.pid for pid in beam for child in psutil.Process(pid).children(recursive=True)}
    return _BROKERS[port]


def scrape_batch_sizes(urls: list[str]) -> BatchSizes:
    """Batch sizes summed over the processes serving these /metrics URLs (one that does not answer counts none)."""
    import urllib.request

    total: BatchSizes = {}
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=5) as page:
                sizes = parse_batch_sizes(page.read().decode())
        except OSError:
            continue
        for key, (count, events) in sizes.items():
            before = total.get(key, (0.0, 0.0))
            total[key] = (before[0] + count, before[1] + events)
    return total


class Sampler:
    """Snapshots of CPU seconds per process (see the module doc) and the services' resident memory."""

    def __init__(self, services: dict[int, str], generator_pid: int, echo_pid: int | None,
                 database_url: str = "", run_db: str = "", amqp_port: int = 0) -> None:
        import psutil

        self.psutil, self.run_db, self.database_url = psutil, run_db, database_url
        self.broker = broker_pids(amqp_port) if amqp_port else None
        self.named = {pid: f"svc {name}" for pid, name in services.items()}
        self.named[generator_pid] = "generator"
        if echo_pid:
            self.named[echo_pid] = "echo"
        self.procs = {pid: psutil.Process(pid) for pid in self.named}

    def _pg_rows(self) -> tuple[dict[int, tuple], dict[str, int]]:
        """pg_stat_activity by pid, and the run database's counters (pg_stat_database: transactions and
        rows written; pg_stat_user_tables: rows read by sequential scans, per table; PostgreSQL publishes
        them within about a second)."""
        if not self.database_url:
            return {}, {}
        import psycopg

        with psycopg.connect(self.database_url, autocommit=True, application_name=GENERATOR_APP) as conn:
            rows = conn.execute("SELECT pid, datname, backend_type, application_name, client_port "
                                "FROM pg_stat_activity").fetchall()
            stats = conn.execute("SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted "
                                 "FROM pg_stat_database WHERE datname = %s", (self.run_db,)).fetchone() or (0, 0)
            scans = conn.execute("SELECT schemaname || '.' || relname, seq_tup_read FROM pg_stat_user_tables"
                                 " WHERE seq_tup_read > 0").fetchall()  # the run's own database: its URL's
        counters = dict(zip(("transactions", "rows written"), stats, strict=True))
        counters.update({SCANNED + table: rows for table, rows in scans})
        return {r[0]: tuple(r[1:]) for r in rows}, counters

    def _service_of_port(self) -> dict[int, str]:
        """Local port of each service process's connection to PostgreSQL -> the service."""
        ports = {}
        for c in self.psutil.net_connections("tcp"):
            if c.pid in self.named and c.raddr and c.raddr.port == PG_PORT and self.named[c.pid].startswith("svc "):
                ports[c.laddr.port] = self.named[c.pid][4:]
        return ports

    def snapshot(self, detail: bool = False) -> dict:
        """{'at', 'busy' (machine CPU seconds), 'cpu': {pid: (group, seconds)}, 'kernel': the same of
        system time, 'rss': {pid: bytes}}; with `detail`, PostgreSQL backends are attributed to the
        services they serve."""
        at, t = time.time(), self.psutil.cpu_times()
        busy = sum(t) - t.idle - getattr(t, "iowait", 0.0)
        cpu, kernel, rss = {}, {}, {}
        for pid, p in self.procs.items():
            try:
                seconds, system = cpu_seconds(p)
                cpu[pid], kernel[pid] = (self.named[pid], seconds), (self.named[pid], system)
                if self.named[pid].startswith("svc "):
                    rss[pid] = p.memory_info().rss
            except self.psutil.Error:
                pass
        pg_rows, pg_db = self._pg_rows() if detail else ({}, {})
        service_of_port = self._service_of_port() if detail else {}
        for p in self.psutil.process_iter(["name"]):
            engine = ENGINE_OF.get(p.info["name"] or "")
            if engine is None:
                continue
            group = engine
            if engine == "rabbitmq" and self.broker is not None and p.pid not in self.broker:
                continue  # another RabbitMQ node on this machine, not the run's
            if engine == "postgres":
                group = pg_group(pg_rows.get(p.pid), self.run_db, service_of_port) if detail else "postgres"
            try:
                seconds, system = cpu_seconds(p)
                cpu[p.pid], kernel[p.pid] = (group, seconds), (group, system)
            except self.psutil.Error:
                pass
        return {"at": at, "busy": busy, "cpu": cpu, "kernel": kernel, "rss": rss, "pg_db": pg_db}

    @staticmethod
    def cores(before: dict, after: dict) -> dict[str, float]:
        """Cores busy over the window: services (and echo) / generator / engines / everything else."""
        dt = after["at"] - before["at"]
        groups = window_cpu(before["cpu"], after["cpu"])
        srv = sum(s for g, s in groups.items() if g.startswith("svc ") or g == "echo")
        gen = groups.get("generator", 0.0)
        eng = sum(s for g, s in groups.items() if g.startswith("postgres") or g in ("redis", "rabbitmq"))
        busy = after["busy"] - before["busy"]
        return {"srv": srv / dt, "gen": gen / dt, "eng": eng / dt, "oth": max(0.0, busy - srv - gen - eng) / dt}


def cpu_lines(per_order_ms: dict[str, float], rss_mb: dict[str, float], echo_call_ms: float | None,
              kernel: dict[str, float | None] | None = None, echo_kernel: float | None = None) -> list[str]:
    """The per-order CPU table: one line per group (a service's with its largest process's resident
    memory, and the system share of its CPU where `kernel` has it), the total, and the total over
    the server CPU of one echo call."""
    kernel = kernel or {}
    total = per_order_ms.get("total", 0.0)
    lines = [f"{'where':<28} {'ms/order':>9} {'share':>6} {'rss MB':>7} {'system':>7}"]
    for group, ms in per_order_ms.items():
        if group == "total":
            continue
        rss = rss_mb.get(group.removeprefix("svc "))
        lines.append(f"{group:<28} {ms:>9.2f} {ms / total if total else 0:>6.0%} "
                     f"{'' if rss is None or not group.startswith('svc ') else format(rss, '.0f'):>7} "
                     f"{_or_dash(kernel.get(group), '.0%'):>7}")
    lines.append(f"{'total (mesh + engines)':<28} {total:>9.2f} {'':>6} {'':>7} {_or_dash(kernel.get('total'), '.0%'):>7}")
    x = ratio(total, echo_call_ms)
    lines.append(f"echo server CPU per call {_or_dash(echo_call_ms, '.3f')} ms ({_or_dash(echo_kernel, '.0%')} system): "
                 f"an order costs {_or_dash(x, '.0f')}x one echo call (target <= 70x)")
    return lines


def _or_dash(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)
