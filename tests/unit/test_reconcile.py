"""Reconciliation's runner (mesh/reconcile.py) with checks made up for the test: two passes, only
drift both find counts and is repaired, a check that cannot run is an error of its own."""
from __future__ import annotations

from mesh import reconcile
from mesh.reconcile import Check, Finding, Sources


def sources() -> Sources:
    return Sources(client=None, open_owner=lambda service: None)


def check(name: str, passes: list[list[Finding]]) -> Check:
    """A check that finds passes[0] the first time, passes[1] the second."""
    runs = iter(passes)
    return Check(name, f"{name}'s projection against its source", lambda _sources: next(runs))


def run(*checks: Check, repair: bool = True) -> reconcile.Result:
    return reconcile.run(list(checks), sources(), repair=repair, settle=0, sleep=lambda _: None)


def test_only_drift_found_by_both_passes_counts_and_only_that_is_repaired():
    repaired: list[str] = []
    lasting = Finding("a.b", "held by a closed order", "order 1", "reserved 2", lambda: repaired.append("1") or "released")
    passing = Finding("a.b", "held by a closed order", "order 2", "reserved 1", lambda: repaired.append("2") or "released")
    result = run(check("a.b", [[lasting, passing], [lasting]]))
    assert [f.key for f in result.drift] == ["order 1"] and repaired == ["1"]
    report = reconcile.report(result, repair=True)
    assert "a.b: held by a closed order: order 1\n    reserved 2\n    REPAIRED: released" in report
    assert "order 2" not in report and report.endswith("1 drift found, 1 repaired")


def test_a_dry_run_repairs_nothing_and_says_what_it_would_repair():
    repaired: list[str] = []
    finding = Finding("a.b", "kind", "order 1", "detail", lambda: repaired.append("x") or "done")
    report = reconcile.report(run(check("a.b", [[finding], [finding]]), repair=False), repair=False)
    assert repaired == [] and "repairable: run without --dry-run to repair it" in report


def test_a_failing_repair_is_reported_and_the_others_still_run():
    def broken() -> str:
        raise RuntimeError("database gone")

    first = Finding("a.b", "kind", "order 1", "detail", broken)
    second = Finding("a.b", "kind", "order 2", "detail", lambda: "done")
    unrepairable = Finding("a.b", "other", "order 3", "detail")
    result = run(check("a.b", [[first, second, unrepairable]] * 2))
    report = reconcile.report(result, repair=True)
    assert "repair FAILED: RuntimeError: database gone" in report and "REPAIRED: done" in report
    assert "not repaired: no unambiguous repair; look into it" in report
    assert not result.clean


def test_nothing_found_once_means_no_second_pass_and_a_clean_result():
    result = run(check("a.b", [[]]))  # a second call would raise StopIteration
    assert result.clean and reconcile.report(result, repair=True).endswith(
        "no drift: every projection agrees with its source")


def test_a_check_that_cannot_run_is_its_error_and_the_others_still_run():
    def down(_sources):
        raise ConnectionError("procurement unreachable")

    result = run(Check("x.down", "x", down), check("a.b", [[]]))
    assert result.errors == {"x.down": "ConnectionError: procurement unreachable"} and not result.clean
    report = reconcile.report(result, repair=True)
    assert "x.down: could not be checked: ConnectionError: procurement unreachable" in report
    assert report.endswith("no drift in the 1 checks that ran")


def test_metrics_file(tmp_path):
    finding = Finding("a.b", "kind", "order 1", "detail", lambda: "done")
    path = tmp_path / "reconcile.prom"
    reconcile.write_metrics(run(check("a.b", [[finding], [finding]]), check("c.d", [[], []])), str(path))
    text = path.read_text()
    assert 'erp_reconcile_drift{check="a.b"} 1.0' in text and 'erp_reconcile_drift{check="c.d"} 0.0' in text
    assert 'erp_reconcile_repaired{check="a.b"} 1.0' in text and "erp_reconcile_last_run_timestamp_seconds" in text
