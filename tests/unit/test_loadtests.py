"""The load test verdict (loadtests/run.py): thresholds checked against synthetic Locust stats rows. No I/O."""
from __future__ import annotations

from loadtests.run import _seconds, evaluate, table


def row(name, type_="grpc", requests=1000, failures=0, p50="2", p95="5", p99="8", rps="900.5"):
    return {"Type": type_, "Name": name, "Request Count": str(requests), "Failure Count": str(failures),
            "50%": p50, "95%": p95, "99%": p99, "Requests/s": rps}


def by_metric(verdicts):
    return {(v.row, v.metric): v.ok for v in verdicts}


def test_all_thresholds_met_pass():
    verdicts = evaluate("s", [row("GetStock")], [
        {"name": "GetStock", "p50_ms": 3, "p95_ms": 6, "p99_ms": 10, "max_failure_ratio": 0, "min_rps": 600}])
    assert all(v.ok for v in verdicts)
    assert {v.metric for v in verdicts} == {"p50_ms", "p95_ms", "p99_ms", "max_failure_ratio", "min_rps", "min_requests"}


def test_each_missed_threshold_fails_on_its_own():
    rows = [row("GetStock", p99="12", rps="450.0", failures=2)]
    verdicts = by_metric(evaluate("s", rows, [
        {"name": "GetStock", "p50_ms": 3, "p99_ms": 10, "max_failure_ratio": 0, "min_rps": 600}]))
    assert verdicts[("GetStock", "p50_ms")] is True
    assert verdicts[("GetStock", "p99_ms")] is False
    assert verdicts[("GetStock", "max_failure_ratio")] is False
    assert verdicts[("GetStock", "min_rps")] is False


def test_failure_ratio_is_failures_over_requests():
    rows = [row("Aggregated", type_="", requests=2000, failures=1)]
    assert evaluate("s", rows, [{"name": "Aggregated", "max_failure_ratio": 0.001}])[0].ok
    assert not evaluate("s", rows, [{"name": "Aggregated", "max_failure_ratio": 0.0001}])[0].ok


def test_type_distinguishes_rows_of_the_same_name():
    rows = [row("order processed", type_="saga", p99="1500"), row("order processed", type_="grpc", p99="5")]
    assert not evaluate("s", rows, [{"type": "saga", "name": "order processed", "p99_ms": 1000}])[0].ok
    assert evaluate("s", rows, [{"type": "grpc", "name": "order processed", "p99_ms": 1000}])[0].ok


def test_missing_row_fails_unless_allowed():
    assert not evaluate("s", [], [{"name": "GetStock", "p99_ms": 10}])[0].ok
    assert evaluate("s", [], [{"type": "check", "name": "fresh", "max_failure_ratio": 0, "min_requests": 0}])[0].ok


def test_row_without_requests_has_no_percentiles_and_fails():
    rows = [row("GetStock", requests=0, p50="N/A", p95="N/A", p99="N/A", rps="0")]
    verdicts = by_metric(evaluate("s", rows, [{"name": "GetStock", "p99_ms": 10, "max_failure_ratio": 0}]))
    assert verdicts[("GetStock", "p99_ms")] is False
    assert verdicts[("GetStock", "min_requests")] is False
    assert verdicts[("GetStock", "max_failure_ratio")] is True


def test_failed_check_row_fails_the_run():
    rows = [row("no oversell", type_="check", requests=1, failures=1, p50="0", p95="0", p99="0", rps="0")]
    assert not evaluate("s", rows, [{"type": "check", "name": "no oversell", "max_failure_ratio": 0}])[0].ok


def test_table_and_run_time_parsing():
    text = table(evaluate("lookup", [row("GetStock", p99="12")], [{"name": "GetStock", "p99_ms": 10}]))
    assert "FAIL" in text and "GetStock" in text and "12" in text
    assert _seconds("30s") == 30 and _seconds("2m") == 120 and _seconds("1h30m") == 5400 and _seconds("45") == 45
