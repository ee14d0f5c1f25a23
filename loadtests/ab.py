"""Two versions of the mesh, or one setting, measured in turns: `make bench-ab`.

This project's machines change speed by 15-30% within minutes, so one bench run of each side measures
the hour as much as the change. Every step in docs/performance-history.md was measured the way this
tool does it: orders-only bench runs (`loadtests.bench --only orders`) of side A and side B in turns,
A B, B A, A B, ..., each giving CPU per order and that over the echo's CPU per call of the same run;
then B against A pair by pair, and the median over the pairs.

Side B is this checkout. Side A is another commit (`--base REV`, checked out in a temporary git
worktree and run with this checkout's virtualenv, so its dependencies must be these; its loadtests/ is
replaced by this checkout's, so both sides are measured by the same bench), or this checkout
again when B differs only by settings (`--env NAME=VALUE`, given to every service of B's runs). The runs
are `--cpu-only`: rows 1o, 3 and 1p, what the figures read.

`--together` runs both sides of a pair at the same time instead, each its own mesh, database and AMQP
namespace, their orders rows started together (`loadtests.bench --barrier`): both meet the same moments
of the machine, so the hour drops out of B against A. What they share (RabbitMQ, Redis, the postmaster)
cannot be told apart per side, so a together-run compares the sides' own CPU: their services and the
PostgreSQL backends serving them ("own ms" per order; every run reports it). Each side has about half the
machine, so its batches and per-order costs are those of a loaded mesh, not of a lone one.

    .venv/bin/python -m loadtests.ab --base HEAD~1 --pairs 3
    .venv/bin/python -m loadtests.ab --base HEAD~1 --together --pairs 3
    .venv/bin/python -m loadtests.ab --env ERP_NOTIFICATION_SEND_CONCURRENCY=1 -- --order-processes 2
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from loadtests import accounting as acc

ROOT = Path(__file__).resolve().parents[1]
MIN_GROUP_MS = 0.1


def schedule(pairs: int) -> list[tuple[int, str]]:
    """(pair, side) in the order they run: A B, B A, A B, ... (neither side always runs first)."""
    return [(pair, side) for pair in range(1, pairs + 1) for side in (("A", "B") if pair % 2 else ("B", "A"))]


def own(group: str) -> bool:
    """A group only this run's mesh uses: its services and the PostgreSQL backends serving them."""
    return group.startswith(("svc ", "postgres for "))


def figures(rows: list[dict]) -> dict:
    """A bench run's orders figures (its --json rows): CPU per order in total, in its own groups and per
    group, the echo's CPU per call pooled over rows 1o and 1p, their ratio, and orders per second. The
    rows of one process per service (3), else of two (3x2: `-- --order-processes 2`)."""
    by = {row["row"]: row for row in rows}
    x = "" if "3" in by else "x2"
    per_order = acc.order_ms(by["3" + x])
    total = per_order.pop("total")
    echo_ms = acc.echo_call_ms(acc.pooled(acc.echo_rows(by, "1o" + x, "1p" + x)))
    return {"ms": total, "own_ms": sum(ms for g, ms in per_order.items() if own(g)), "groups": per_order,
            "echo_ms": echo_ms, "x_echo": total / echo_ms if echo_ms else None, "orders_per_s": by["3" + x]["rps"]}


def change(a: float | None, b: float | None) -> float | None:
    """B against A, as a fraction (-0.05: B is 5% lower)."""
    return b / a - 1 if a and b is not None else None


def compare(runs: dict[tuple[int, str], dict]) -> dict:
    """Pair by pair, B against A in ms per order, in times the echo, and per group; medians over
    the pairs that have both sides."""
    pairs = sorted({pair for pair, _ in runs if (pair, "A") in runs and (pair, "B") in runs})
    by_pair = {pair: (runs[pair, "A"], runs[pair, "B"]) for pair in pairs}
    groups = sorted({g for a, b in by_pair.values() for g in (*a["groups"], *b["groups"])})
    # Groups under MIN_GROUP_MS per order on side A (procurement, the postmaster) are left out:
    # a few CPU ticks there read as +-100%.
    per_group = {g: [c for a, b in by_pair.values() if a["groups"].get(g, 0.0) >= MIN_GROUP_MS
                     and (c := change(a["groups"][g], b["groups"].get(g, 0.0))) is not None] for g in groups}
    return {
        "pairs": {pair: {"ms": change(a["ms"], b["ms"]), "x_echo": change(a["x_echo"], b["x_echo"]),
                         "own_ms": change(a["own_ms"], b["own_ms"])} for pair, (a, b) in by_pair.items()},
        "median_ms": _median([change(a["ms"], b["ms"]) for a, b in by_pair.values()]),
        "median_own_ms": _median([change(a["own_ms"], b["own_ms"]) for a, b in by_pair.values()]),
        "median_x_echo": _median([change(a["x_echo"], b["x_echo"]) for a, b in by_pair.values()]),
        "median_groups": {g: _median(changes) for g, changes in per_group.items() if changes},
    }


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """`rev` checked out (detached) in a temporary folder, with this checkout's loadtests/ (the bench
    that measures both sides), removed afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="erp-ab-")) / "tree"
    added = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(folder), rev])
    if added.returncode != 0:
        folder.parent.rmdir()
        raise SystemExit(f"cannot check out {rev} (git worktree add: exit {added.returncode})")
    try:
        shutil.copytree(ROOT / "loadtests", folder / "loadtests", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "reports"))
        yield folder
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()


def bench_command(json_path: Path, settings: list[str], bench_args: list[str]) -> list[str]:
    command = [sys.executable, "-m", "loadtests.bench", "--only", "orders", "--cpu-only", "--json", str(json_path)]
    for setting in settings:
        command += ["--env", setting]
    if "--order-processes" not in bench_args:  # the bench's default is both 1 and 2; one row is what is read
        command += ["--order-processes", "1"]
    return command + bench_args


def side_env(tree: Path) -> dict[str, str]:
    """The environment of a run of `tree`'s code: its packages and generated stubs ahead of this
    checkout's editable install, which the virtualenv would otherwise import."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), str(tree / "clients" / "python")]))


def start_side(tree: Path, json_path: Path, settings: list[str], bench_args: list[str], log: Path) -> subprocess.Popen:
    """A bench run of the code in `tree` (its services start from there too), started."""
    with log.open("w") as out:
        return subprocess.Popen(bench_command(json_path, settings, bench_args), cwd=tree, env=side_env(tree),
                                stdout=out, stderr=subprocess.STDOUT)


def side_figures(returncode: int, json_path: Path, log: Path) -> dict:
    rows = json.loads(json_path.read_text()) if json_path.exists() else []
    if returncode != 0 or not any(row["row"] in ("3", "3x2") and "failed" not in row for row in rows):
        raise SystemExit(f"the bench failed (exit {returncode}, no orders row): see {log}")
    return figures(rows)


def run_side(tree: Path, json_path: Path, settings: list[str], bench_args: list[str], log: Path) -> dict:
    """One bench run of the code in `tree`, to its end."""
    return side_figures(start_side(tree, json_path, settings, bench_args, log).wait(), json_path, log)


def run_together(starts: dict[str, tuple], barrier: Path) -> dict[str, dict]:
    """Both sides' runs at once, their orders rows started together; a side that fails stops the other
    (which would wait at the barrier). starts: side -> start_side's arguments."""
    procs = {side: start_side(tree, json_path, settings, [*bench_args, "--barrier", str(barrier)], log)
             for side, (tree, json_path, settings, bench_args, log) in starts.items()}
    stopped: set[str] = set()
    try:
        while None in (codes := [p.poll() for p in procs.values()]) and not any(codes):
            time.sleep(0.5)
    finally:
        for side, p in procs.items():
            if p.poll() is None:
                p.terminate()
                stopped.add(side)
        for p in procs.values():
            p.wait()
    # The side that failed is reported, not the one stopped because of it.
    return {side: side_figures(procs[side].returncode, starts[side][1], starts[side][4])
            for side in sorted(procs, key=lambda side: side in stopped)}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}%"


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def report(runs: dict[tuple[int, str], dict], result: dict, together: bool = False) -> list[str]:
    lines = ["pair side   ms/order  own ms  x echo  echo ms  orders/s"]
    for (pair, side), f in runs.items():
        lines.append(f"{pair:>4} {side:>4} {f['ms']:>10.2f} {f['own_ms']:>7.2f} {_num(f['x_echo'], '>7.0f')} "
                     f"{_num(f['echo_ms'], '>8.3f')} {f['orders_per_s']:>9.1f}")
    lines.append("B against A, pair by pair (ms per order; own ms; times the echo): " + ", ".join(
        f"{_pct(p['ms'])} ({_pct(p['own_ms'])}; {_pct(p['x_echo'])})" for p in result["pairs"].values()))
    lines.append(f"median: {_pct(result['median_ms'])} ms per order, {_pct(result['median_own_ms'])} own ms "
                 f"(the services and their PostgreSQL backends), {_pct(result['median_x_echo'])} in times the echo")
    lines.append("median per group: " + ", ".join(f"{g} {_pct(c)}" for g, c in result["median_groups"].items()))
    if together:
        lines.append("(together: RabbitMQ, Redis and the postmaster served both sides, and each side counted all of "
                     "them, and its echo ran beside the other side's orders: read own ms)")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", help="side A: this commit (a temporary worktree); default: this checkout")
    parser.add_argument("--env", action="append", default=[], metavar="ERP_NAME=VALUE",
                        help="side B only: start its services with this setting (repeatable)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--together", action="store_true",
                        help="run both sides of a pair at the same time (compare their own ms, see above)")
    parser.add_argument("--order-seconds", type=float, default=15.0)
    parser.add_argument("--out", type=Path, help="keep each run's JSON rows and log here (default: a temporary folder)")
    parser.add_argument("bench_args", nargs="*", help="after --: more loadtests.bench arguments, for both sides")
    args = parser.parse_args(argv)
    if not args.base and not args.env:
        parser.error("nothing to compare: give --base REV, --env ERP_NAME=VALUE, or both")
    bench_args = ["--order-seconds", str(args.order_seconds), *args.bench_args]
    out = args.out or Path(tempfile.mkdtemp(prefix="erp-ab-runs-"))
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[tuple[int, str], dict] = {}
    with contextlib.ExitStack() as stack:
        trees = {"A": stack.enter_context(worktree(args.base)) if args.base else ROOT, "B": ROOT}

        def side_run(name: str, side: str) -> tuple:  # start_side's arguments for one side's run
            return trees[side], out / f"{name}.json", args.env if side == "B" else [], bench_args, out / f"{name}.log"

        if args.together:
            for pair in range(1, args.pairs + 1):
                print(f"pair {pair}, both sides at once", flush=True)
                together = run_together({side: side_run(f"{pair}-{side}", side) for side in ("A", "B")},
                                        out / f"barrier-{pair}")
                for side, f in together.items():
                    runs[pair, side] = f
                    print(f"     side {side}: {f['ms']:.2f} ms per order, own {f['own_ms']:.2f} ms, "
                          f"{f['orders_per_s']:.1f}/s", flush=True)
        else:
            for pair, side in schedule(args.pairs):
                print(f"pair {pair}, side {side} ({'--base ' + args.base if side == 'A' and args.base else 'this checkout'}"
                      f"{' with ' + ' '.join(args.env) if side == 'B' and args.env else ''})", flush=True)
                f = runs[pair, side] = run_side(*side_run(f"{pair}-{side}", side))
                print(f"     {f['ms']:.2f} ms per order = {_num(f['x_echo'], '.0f')}x the echo, "
                      f"{f['orders_per_s']:.1f}/s", flush=True)
    print()
    for line in report(runs, compare(runs), args.together):
        print(line)
    print(f"runs and logs: {out}")


if __name__ == "__main__":
    main()
