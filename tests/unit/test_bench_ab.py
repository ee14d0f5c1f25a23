"""loadtests.ab's pure parts: the order of the runs, a run's figures, B against A."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loadtests import ab

IDLE = {"svc procurement": 0.0003}  # 0.0002 ms per order: health checks, not part of an order


def _echo(row: str, calls: float, echo_seconds: float) -> dict:
    return {"row": row, "rps": calls / 3.0, "window": 3.0, "groups": {"echo": echo_seconds, "generator": 2.0}}


def _run(orders_per_s: float, groups: dict[str, float], echo_seconds: tuple[float, float] = (3.0, 3.0)) -> list[dict]:
    """Bench --json rows: 1o, 3 (15 s) and 1p, each echo row 15,000 calls."""
    return [_echo("1o", 15_000, echo_seconds[0]),
            {"row": "3", "rps": orders_per_s, "window": 15.0, "groups": {**groups, "generator": 1.0, **IDLE}},
            _echo("1p", 15_000, echo_seconds[1])]


def test_neither_side_always_runs_first():
    assert ab.schedule(3) == [(1, "A"), (1, "B"), (2, "B"), (2, "A"), (3, "A"), (3, "B")]
    assert ab.schedule(0) == []


def test_a_runs_figures_count_the_mesh_and_divide_by_the_pooled_echo():
    # 1,500 orders; the mesh 30 CPU seconds (the generator not counted); the echo 3 + 5 s over 30,000 calls
    f = ab.figures(_run(100.0, {"svc orders": 12.0, "postgres for orders": 9.0, "rabbitmq": 9.0}, (3.0, 5.0)))
    assert f["ms"] == pytest.approx(20.0002)
    assert f["own_ms"] == pytest.approx(14.0002)  # not RabbitMQ: another run's mesh may share it
    assert f["groups"] == pytest.approx({"svc orders": 8.0, "postgres for orders": 6.0, "rabbitmq": 6.0,
                                         "svc procurement": 0.0002})
    assert f["echo_ms"] == pytest.approx(8000 / 30_000)
    assert f["x_echo"] == pytest.approx(20.0002 / (8000 / 30_000))
    assert f["orders_per_s"] == 100.0


def test_a_run_without_its_echo_rows_has_no_ratio():
    rows = [r for r in _run(100.0, {"svc orders": 15.0}) if r["row"] == "3"]
    f = ab.figures(rows)
    assert f["ms"] == pytest.approx(10.0002) and f["echo_ms"] is None and f["x_echo"] is None


def test_b_against_a_pair_by_pair_and_the_median():
    a = ab.figures(_run(100.0, {"svc orders": 15.0, "rabbitmq": 15.0}))  # 20 ms per order
    runs = {
        (1, "A"): a, (1, "B"): ab.figures(_run(100.0, {"svc orders": 12.0, "rabbitmq": 15.0})),  # -10%
        (2, "B"): ab.figures(_run(100.0, {"svc orders": 15.0, "rabbitmq": 15.0})), (2, "A"): a,  # 0%
        (3, "A"): a, (3, "B"): ab.figures(_run(100.0, {"svc orders": 9.0, "rabbitmq": 15.0})),  # -20%
        (4, "A"): a,  # a pair cut short: left out
    }
    result = ab.compare(runs)
    assert sorted(result["pairs"]) == [1, 2, 3]
    assert [round(p["ms"], 3) for p in result["pairs"].values()] == [-0.1, 0.0, -0.2]
    assert result["median_ms"] == pytest.approx(-0.1, rel=1e-4)
    assert result["median_x_echo"] == pytest.approx(-0.1, rel=1e-4)  # the same echo on both sides
    assert result["median_groups"]["svc orders"] == pytest.approx(-0.2)
    assert result["median_groups"]["rabbitmq"] == pytest.approx(0.0)
    assert "svc procurement" not in result["median_groups"]  # a few ticks, not a figure
    assert result["median_own_ms"] == pytest.approx(-0.2, rel=1e-4)  # RabbitMQ, the same on both sides, left out
    assert any("median: -10.0% ms per order, -20.0% own ms" in line for line in ab.report(runs, result))


def test_the_bench_gets_the_settings_of_its_side_and_the_extra_arguments():
    command = ab.bench_command(Path("/tmp/x.json"), ["ERP_A=1", "ERP_B=2"], ["--order-seconds", "15"])
    assert command[1:] == ["-m", "loadtests.bench", "--only", "orders", "--cpu-only", "--json", "/tmp/x.json",
                           "--env", "ERP_A=1", "--env", "ERP_B=2", "--order-processes", "1", "--order-seconds", "15"]
    two = ab.bench_command(Path("/tmp/x.json"), [], ["--order-processes", "2"])
    assert two.count("--order-processes") == 1 and two[-2:] == ["--order-processes", "2"]


def test_a_run_on_two_processes_per_service_reads_its_own_rows():
    rows = [{**r, "row": r["row"] + "x2"} for r in _run(100.0, {"svc orders": 15.0}, (3.0, 5.0))]
    f = ab.figures(rows)
    assert f["ms"] == pytest.approx(10.0002) and f["echo_ms"] == pytest.approx(8000 / 30_000)


def test_nothing_to_compare_is_refused():
    with pytest.raises(SystemExit):
        ab.main([])


def test_runs_meet_at_the_barrier_before_their_orders_rows(tmp_path):
    from loadtests.bench import rendezvous

    arrived: list[float] = []
    first = threading.Thread(target=lambda: (rendezvous(tmp_path / "3", 2), arrived.append(time.monotonic())))
    first.start()
    time.sleep(0.3)
    assert not arrived  # the first run waits for the second
    rendezvous(tmp_path / "3", 2)
    first.join(5)
    assert arrived


def test_a_side_that_fails_stops_the_other_instead_of_leaving_it_at_the_barrier(tmp_path, monkeypatch):
    started: dict[str, subprocess.Popen] = {}

    def start(tree, json_path, settings, bench_args, log):
        code = "import sys; sys.exit(3)" if json_path.name.startswith("B") else "import time; time.sleep(60)"
        started[json_path.name[0]] = subprocess.Popen([sys.executable, "-c", code])
        return started[json_path.name[0]]

    monkeypatch.setattr(ab, "start_side", start)
    starts = {side: (tmp_path, tmp_path / f"{side}.json", [], [], tmp_path / f"{side}.log") for side in "AB"}
    with pytest.raises(SystemExit, match="exit 3"):
        ab.run_together(starts, tmp_path / "barrier")
    assert started["A"].returncode is not None  # stopped, not left waiting
