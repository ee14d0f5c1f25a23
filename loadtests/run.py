"""Runs Locust suites headless and gives a verdict against loadtests/thresholds.toml.

    .venv/bin/python -m loadtests.run --local-mesh                 # start a mesh on 127.0.0.1, run every suite
    .venv/bin/python -m loadtests.run --host 127.0.0.1 inventory_lookup --run-time 60s
    ERP_TOKEN_FILE=token .venv/bin/python -m loadtests.run --host erp.example.com:50050   # through a gateway

Each suite runs as `locust -f loadtests/<file> --headless --csv ... --html ...` into
loadtests/reports/<timestamp>/ (gitignored); then the suite's `<name>_stats.csv` is read and every threshold
is checked. Prints one verdict table; exits 1 when any threshold is missed, a row is missing, or Locust
itself failed (a suite's end-of-test checks make Locust exit with 3).

--local-mesh starts the five services (services.devrun.start_mesh) on free 127.0.0.1 ports, on the external
PostgreSQL/Redis/RabbitMQ when reachable (database and AMQP namespace `erp_loadtest`, kept between runs so
the catalog is seeded once) and on the embedded engines otherwise, seeds the catalog through the public API,
runs the suites and stops the mesh.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRICS = (("p50_ms", "50%", "max"), ("p95_ms", "95%", "max"), ("p99_ms", "99%", "max"),
           ("max_failure_ratio", None, "max"), ("min_rps", "Requests/s", "min"), ("min_requests", "Request Count", "min"))


@dataclasses.dataclass(frozen=True)
class Verdict:
    suite: str
    row: str  # "<type> <name>"
    metric: str
    limit: float | None
    measured: float | None
    ok: bool
    note: str = ""


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "", "N/A") else None
    except ValueError:
        return None


def read_stats(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _matches(row: dict[str, str], threshold: dict) -> bool:
    if row.get("Name") != threshold["name"]:
        return False
    wanted = threshold.get("type")
    return wanted is None or row.get("Type", "") == wanted


def evaluate(suite: str, rows: list[dict[str, str]], thresholds: list[dict]) -> list[Verdict]:
    """One verdict per threshold metric. Pure: rows are Locust stats CSV rows (as csv.DictReader gives them)."""
    verdicts = []
    for threshold in thresholds:
        label = f"{threshold.get('type', '')} {threshold['name']}".strip()
        found = [r for r in rows if _matches(r, threshold)]
        min_requests = threshold.get("min_requests", 1)
        if not found:
            verdicts.append(Verdict(suite, label, "present", None, None, min_requests == 0,
                                    "no such row" + (" (allowed)" if min_requests == 0 else "")))
            continue
        row = found[0]
        requests = _number(row.get("Request Count")) or 0.0
        failures = _number(row.get("Failure Count")) or 0.0
        for key, column, kind in METRICS:
            if key not in threshold and not (key == "min_requests" and min_requests):
                continue
            limit = float(threshold.get(key, min_requests))
            if key == "max_failure_ratio":
                measured = failures / requests if requests else 0.0
            elif requests == 0 and key in ("p50_ms", "p95_ms", "p99_ms", "min_rps"):
                measured = None
            else:
                measured = _number(row.get(column))
            ok = measured is not None and (measured <= limit if kind == "max" else measured >= limit)
            verdicts.append(Verdict(suite, label, key, limit, measured, ok, "" if measured is not None else "no data"))
    return verdicts


def table(verdicts: list[Verdict]) -> str:
    lines = [f"{'suite':<17} {'request':<30} {'metric':<18} {'limit':>10} {'measured':>10}  verdict"]
    for v in verdicts:
        limit = "" if v.limit is None else f"{v.limit:g}"
        measured = "-" if v.measured is None else f"{v.measured:.4g}"
        lines.append(f"{v.suite:<17} {v.row[:30]:<30} {v.metric:<18} {limit:>10} {measured:>10}  "
                     f"{'PASS' if v.ok else 'FAIL'}{'  ' + v.note if v.note else ''}")
    return "\n".join(lines)


def load_config(path: Path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)["suites"]


def run_suite(name: str, spec: dict, env: dict, out: Path, args) -> tuple[list[Verdict], int]:
    prefix = out / name
    run_time = args.run_time or spec.get("run_time", "30s")
    users = args.users or spec.get("users", 10)
    command = [str(Path(sys.executable).with_name("locust")), "-f", str(HERE / spec["file"]), "--headless",
               "-u", str(users), "-r", str(spec.get("spawn_rate", users)), "-t", run_time,
               "--csv", str(prefix), "--html", str(prefix) + ".html", "--only-summary",
               "--exit-code-on-error", "0", "--stop-timeout", "0"]
    # One Locust process (gevent, one core) tops out at a few hundred gRPC calls/s; more processes
    # (Locust forks workers after loading the suite) spread users over cores. Stats, checks and
    # the CSV are aggregated by the master.
    processes = args.processes or spec.get("processes", 1)
    if processes > 1:
        command += ["--processes", str(processes)]
    if args.host:
        command += ["--host", args.host]
    suite_env = {**env, **{k: str(v) for k, v in spec.get("env", {}).items()}}
    print(f"\n== {name}: {users} users in {processes} Locust process(es), {run_time}  "
          f"({' '.join(command[1:])})", flush=True)
    limit = _seconds(run_time) + 240  # spawn, seeding and the end-of-test checks included
    try:
        rc = subprocess.run(command, env=suite_env, cwd=ROOT, timeout=limit).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    stats = Path(str(prefix) + "_stats.csv")
    if not stats.exists():
        return [Verdict(name, "(suite)", "stats csv", None, None, False, f"no {stats.name}; locust rc {rc}")], rc
    verdicts = evaluate(name, read_stats(stats), spec.get("thresholds", []))
    verdicts.append(Verdict(name, "(locust)", "exit code", 0, rc, rc == 0,
                            "" if rc == 0 else "3 = an end-of-test check failed" if rc == 3 else ""))
    return verdicts, rc


def _seconds(text: str) -> float:
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number or 0) * {"h": 3600, "m": 60, "s": 1}.get(ch, 1)
            number = ""
    return total + float(number or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suites", nargs="*", help="suite names from the thresholds file (default: all)")
    parser.add_argument("--thresholds", type=Path, default=HERE / "thresholds.toml")
    parser.add_argument("--host", help="when not --local-mesh: host:port of a gateway (every service through it; "
                        "token from ERP_TOKEN, ERP_TOKEN_FILE or ERP_TOKEN_URL...), or a bare host (each service "
                        "on its default port). The suites write their seed data into the target")
    parser.add_argument("--local-mesh", action="store_true", help="start a local mesh on 127.0.0.1 and target it")
    parser.add_argument("--run-time", help="override every suite's run time, e.g. 30s")
    parser.add_argument("--users", type=int, help="override every suite's user count")
    parser.add_argument("--processes", type=int, help="Locust processes per suite (default: the suite's, else 1)")
    parser.add_argument("--reports", type=Path, default=HERE / "reports")
    args = parser.parse_args(argv)
    config = load_config(args.thresholds)
    names = args.suites or list(config)
    unknown = [n for n in names if n not in config]
    if unknown:
        parser.error(f"unknown suites {unknown}; known: {list(config)}")
    out = args.reports / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    verdicts: list[Verdict] = []
    if args.local_mesh:
        import grpc

        from erp.crm.v1 import crm_pb2_grpc
        from erp.inventory.v1 import inventory_pb2_grpc
        from loadtests import localmesh, seed

        engines = localmesh.engines(require_amqp=True)
        if engines.server_url.endswith("/postgres"):
            engines = engines.database("erp_loadtest")
        print(f"engines: {engines.description}", flush=True)
        with localmesh.mesh(engines, "erp_loadtest") as targets:
            env.update({f"ERP_{name.upper()}_TARGET": t for name, t in targets.items()})
            with grpc.insecure_channel(targets["inventory"]) as inv_ch, grpc.insecure_channel(targets["crm"]) as crm_ch:
                seed.seed_catalog(inventory_pb2_grpc.InventoryServiceStub(inv_ch))
                seed.seed_customers(crm_pb2_grpc.CustomerServiceStub(crm_ch))
            env["LOAD_SKIP_SEED"] = "1"
            for name in names:
                verdicts += run_suite(name, config[name], env, out, args)[0]
    else:
        for name in names:
            verdicts += run_suite(name, config[name], env, out, args)[0]
    print("\n" + table(verdicts))
    failed = [v for v in verdicts if not v.ok]
    print(f"\n{len(verdicts) - len(failed)}/{len(verdicts)} thresholds met; reports in {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
