"""The benchmark's CPU accounting and verdicts (loadtests/accounting.py) on made-up snapshots. No I/O."""
from __future__ import annotations

import pytest

from loadtests.accounting import (
    GENERATOR_APP,
    Figures,
    batch_means,
    counted,
    cpu_lines,
    echo_call_ms,
    kernel_share,
    parse_batch_sizes,
    parse_perf_instructions,
    parse_pgbench_tps,
    per_unit_ms,
    pg_group,
    pooled,
    verdicts,
    window_cpu,
)

RUN_DB = "erp_bench_1"


def test_postgres_processes_are_grouped_by_the_service_they_serve():
    ports = {40001: "orders", 40002: "crm"}
    assert pg_group(("erp_bench_1", "client backend", "", 40001), RUN_DB, ports) == "postgres for orders"
    assert pg_group(("erp_bench_1", "client backend", "", 40002), RUN_DB, ports) == "postgres for crm"
    assert pg_group(("erp_bench_1", "client backend", "", 49999), RUN_DB, ports) == "postgres for ?"
    assert pg_group(None, RUN_DB, ports) == "postgres server"  # the postmaster: not in pg_stat_activity
    assert pg_group((None, "walwriter", "", None), RUN_DB, ports) == "postgres server"
    assert pg_group(("erp_bench_1", "autovacuum worker", "", None), RUN_DB, ports) == "postgres server"


def test_other_databases_and_the_generators_own_connections_are_not_the_meshs():
    assert pg_group(("test", "client backend", "", 40001), RUN_DB, {40001: "orders"}) == "postgres other"
    assert pg_group(("test", "autovacuum worker", "", None), RUN_DB, {}) == "postgres other"
    assert pg_group(("erp_bench_1", "client backend", GENERATOR_APP, 40003), RUN_DB, {}) == "postgres other"


def test_window_cpu_is_the_difference_per_group():
    before = {1: ("svc orders", 10.0), 2: ("svc crm", 5.0), 9: ("generator", 1.0)}
    after = {1: ("svc orders", 12.5), 2: ("svc crm", 5.25), 9: ("generator", 3.0)}
    assert window_cpu(before, after) == {"svc orders": 2.5, "svc crm": 0.25, "generator": 2.0}


def test_a_process_gone_by_the_end_is_not_counted_and_others_are_not_touched():
    # not through the postmaster's children times either: those hold every database's exited backends
    before = {10: ("postgres server", 50.0), 20: ("postgres for orders", 3.0)}
    after = {10: ("postgres server", 50.5)}
    assert window_cpu(before, after) == {"postgres server": 0.5}


def test_a_process_started_in_the_window_counts_from_zero_and_a_late_group_wins():
    before = {20: ("postgres server", 0.5)}  # not yet in pg_stat_activity when first seen
    after = {20: ("postgres for crm", 0.75), 21: ("postgres for crm", 0.25)}
    assert window_cpu(before, after) == {"postgres for crm": 0.5}


def test_counted_keeps_the_mesh_and_its_engines_services_first():
    groups = {"redis": 1.0, "generator": 9.0, "echo": 9.0, "postgres other": 9.0, "svc orders": 2.0,
              "postgres for orders": 3.0, "rabbitmq": 0.5, "svc crm": -0.01}
    assert list(counted(groups)) == ["svc crm", "svc orders", "postgres for orders", "rabbitmq", "redis"]
    assert counted(groups)["svc crm"] == 0.0  # a rounding below zero shows as zero


def test_per_unit_ms_and_its_total():
    assert per_unit_ms({"svc a": 2.0, "redis": 1.0}, 100) == pytest.approx({"svc a": 20.0, "redis": 10.0,
                                                                             "total": 30.0})
    assert per_unit_ms({"svc a": 2.0}, 0) == {}


def test_the_echo_on_either_side_of_the_orders_pools_calls_and_cpu():
    before = {"rps": 5000.0, "window": 3.0, "groups": {"echo": 3.0, "redis": 0.01}, "instructions": 900}
    after = {"rps": 4000.0, "window": 3.0, "groups": {"echo": 1.8}, "instructions": 600}
    echo = pooled([before, after])
    assert echo["calls"] == 27000 and echo["window"] == 6.0 and echo["instructions"] == 1500
    assert echo["groups"] == pytest.approx({"echo": 4.8, "redis": 0.01})
    # 0.2 ms per call before, 0.15 after: pooled, the CPU of both over the calls of both
    assert echo_call_ms(pooled([before])) == pytest.approx(0.2)
    assert echo_call_ms(pooled([after])) == pytest.approx(0.15)
    assert echo_call_ms(echo) == pytest.approx(4.8 * 1000 / 27000)


def test_a_pooled_echo_without_calls_or_counted_instructions_gives_none():
    assert echo_call_ms(pooled([])) is None
    assert pooled([{"rps": 10.0, "window": 1.0, "groups": {}, "instructions": None}])["instructions"] is None


def test_cpu_lines_give_the_ratio_to_one_echo_call():
    lines = cpu_lines({"svc orders": 10.0, "postgres for orders": 4.0, "total": 14.0}, {"orders": 105.4}, 0.2)
    assert any(line.startswith("svc orders") and line.split()[4] == "105" for line in lines)
    assert "70x one echo call" in lines[-1] and lines[-1].split(": an order costs ")[1].startswith("70x")
    assert "-x one echo call" in cpu_lines({"total": 1.0}, {}, None)[-1]


def test_the_system_share_of_each_group_of_the_mesh_and_of_the_echo():
    order = {"groups": {"svc orders": 2.0, "postgres for orders": 1.0, "generator": 5.0},
             "kernel": {"svc orders": 0.5, "postgres for orders": 0.4, "generator": 4.0}}
    assert kernel_share(order, "svc orders") == pytest.approx(0.25)
    assert kernel_share(order) == pytest.approx(0.3)  # the mesh's: the generator is not counted
    assert kernel_share(order, "redis") is None and kernel_share({"groups": {}}) is None
    echo = pooled([{"rps": 1000.0, "window": 1.0, "groups": {"echo": 0.1}, "kernel": {"echo": 0.02}},
                   {"rps": 1000.0, "window": 1.0, "groups": {"echo": 0.1}, "kernel": {"echo": 0.06}}])
    assert kernel_share(echo, "echo") == pytest.approx(0.4)
    lines = cpu_lines({"svc orders": 2.0, "postgres for orders": 1.0, "total": 3.0}, {"orders": 100.0}, 0.1,
                      {"svc orders": 0.25, "postgres for orders": 0.4, "total": 0.3}, 0.4)
    assert [line.split()[-1] for line in lines[1:3]] == ["25%", "40%"]
    assert lines[-2].split()[-1] == "30%" and "(40% system)" in lines[-1]


def test_pgbench_and_perf_output_parsing():
    out = ("transaction type: <builtin: TPC-B (sort of)>\nscaling factor: 10\nnumber of clients: 10\n"
           "latency average = 8.190 ms\ninitial connection time = 21.5 ms\n"
           "tps = 1221.025 (without initial connection time)\n")
    assert parse_pgbench_tps(out) == pytest.approx(1221.025)
    assert parse_pgbench_tps("pgbench: error: connection refused") is None
    assert parse_perf_instructions("123456789,,instructions,2000000,100.00,,\n") == 123456789
    assert parse_perf_instructions("<not supported>,,instructions,0,100.00,,\n") is None
    assert parse_perf_instructions("") is None


def test_verdicts_pass_at_the_targets():
    f = Figures(cpu_per_order_ms=14.0, echo_cpu_per_call_ms=0.2, orders_per_s=50, pgbench_tps=1000,
                confirm_p99_ms=999, lookup_vs_echo=0.9, lookup_p99_ms=13, echo_p99_ms=10, stuck=0,
                integrity={"oversold": 0})
    assert all(v.ok for v in verdicts(f)), [v.line() for v in verdicts(f)]


def test_each_target_misses_on_its_own():
    good = dict(cpu_per_order_ms=14.0, echo_cpu_per_call_ms=0.2, orders_per_s=50, pgbench_tps=1000,
                confirm_p99_ms=500, lookup_vs_echo=0.95, lookup_p99_ms=10, echo_p99_ms=10, stuck=0,
                integrity={"oversold": 0})
    for change, missed in ((dict(cpu_per_order_ms=14.1), "CPU per"), (dict(orders_per_s=49.9), "orders fully"),
                           (dict(confirm_p99_ms=1000), "p99 placement->confirmation"),
                           (dict(lookup_vs_echo=0.89), "lookup throughput"), (dict(lookup_p99_ms=13.1), "lookup p99"),
                           (dict(stuck=1), "no order"), (dict(integrity={"oversold": 1}), "no oversell,")):
        results = {v.what: v.ok for v in verdicts(Figures(**{**good, **change}))}
        assert [w for w, ok in results.items() if not ok] == [w for w in results if w.startswith(missed)], change


def test_what_was_not_measured_is_neither_pass_nor_miss():
    lines = verdicts(Figures(orders_per_s=30))
    assert {v.ok for v in lines} == {None}
    assert all("not measured" in v.line() and v.line().lstrip().startswith("----") for v in lines)


def test_gateway_verdicts_only_when_measured():
    assert not any("gateway" in v.what for v in verdicts(Figures()))
    lines = {v.what: v.ok for v in verdicts(Figures(gateway_added_p50_ms=1.2, gateway_vs_direct=0.7))
             if "gateway" in v.what}
    assert lines == {"gateway adds <= 1 ms p50 (ms)": False, "gateway passes >= 0.7x direct throughput": True}


def test_the_lookup_p99_verdict_is_void_when_the_echo_itself_fell_behind():
    f = Figures(lookup_p99_ms=100, echo_p99_ms=101, echo_not_sent=385)
    line = next(v for v in verdicts(f) if v.what.startswith("lookup p99"))
    assert line.ok is None and "385 calls not sent" in line.measured
    f.echo_not_sent = 0
    assert next(v for v in verdicts(f) if v.what.startswith("lookup p99")).ok is True


def _exposition(batches: dict[tuple[str, str], list[int]]) -> str:
    """A /metrics page as a service serves it, with these batch sizes observed."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    registry = CollectorRegistry()
    sizes = Histogram("erp_event_batch_size", "events per batch", ["service", "stage"], registry=registry,
                      buckets=(1, 2, 4, 8, 16, 32))
    for labels, observed in batches.items():
        for n in observed:
            sizes.labels(*labels).observe(n)
    return generate_latest(registry).decode()


def test_batch_sizes_are_read_from_a_metrics_page_and_averaged_over_the_window():
    before = parse_batch_sizes(_exposition({("orders", "consumed"): [3], ("crm", "published"): [1, 1]}))
    assert before == {("orders", "consumed"): (1.0, 3.0), ("crm", "published"): (2.0, 2.0)}
    after = parse_batch_sizes(_exposition({("orders", "consumed"): [3, 10, 20], ("crm", "published"): [1, 1],
                                           ("crm", "consumed"): [4, 6]}))
    # orders: 2 batches of 30 events in the window; crm published nothing in it; crm's consumer started inside it
    assert batch_means(before, after) == {"consumed": {"crm": 5.0, "orders": 15.0}}
    assert parse_batch_sizes("# no histogram here\nup 1\n") == {}


def test_rows_read_by_sequential_scans_per_order_in_all_and_by_table():
    """A batch statement that scans a growing table shows in the bench's printout (sixteenth day)."""
    from loadtests.accounting import SCANNED, scanned_per_unit

    counters = {"transactions": 400.0, "rows written": 6000.0, SCANNED + "orders.order_lines": 30000.0,
                SCANNED + "crm.customers": 500.0, SCANNED + "orders.orders": 10000.0, SCANNED + "idle.table": 0.0}
    total, most = scanned_per_unit(counters, 100, top=2)
    assert total == pytest.approx(405.0)
    assert most == [("orders.order_lines", 300.0), ("orders.orders", 100.0)]
    assert scanned_per_unit({"transactions": 1.0}, 10) == (0.0, [])


def test_a_cpu_ratio_just_over_the_target_does_not_read_as_the_target():
    line = next(v for v in verdicts(Figures(cpu_per_order_ms=12.77, echo_cpu_per_call_ms=0.181)) if v.what.startswith("CPU"))
    assert not line.ok and line.measured == "70.6"
