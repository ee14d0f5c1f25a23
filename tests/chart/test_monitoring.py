"""The chart's dashboards and alerts (metrics.dashboards, metrics.prometheusRule): off by default,
rendered from helm/erp/dashboards/*.json and helm/erp/files/alerts.yaml, the alerts checked and
unit-tested by promtool as the chart renders them, every alert with a runbook in README.md, every
dashboard query valid PromQL on the data source the dashboard asks for.

Whether the metrics they name exist is tests/e2e/test_metrics_contract.py's job (a real scrape).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart import promql
from tests.chart.conftest import CHART, HelmError, documents, helm_template, render

ROOT = CHART.parents[1]
README = ROOT / "README.md"
UNIT_TESTS = Path(__file__).with_name("alerts_test.yaml")
SEVERITIES = {"critical", "warning", "info"}
ENABLED = {"metrics.prometheusRule.enabled": "true", "metrics.dashboards.enabled": "true"}


def _alerts_file() -> dict:
    return yaml.safe_load(promql.ALERTS.read_text())


def _alerts() -> list[dict]:
    return [rule for group in _alerts_file()["groups"] for rule in group["rules"]]


def _prometheus_rule(docs: list[dict]) -> dict:
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    assert len(rules) == 1, [d["metadata"]["name"] for d in rules]
    return rules[0]


def _dashboards_configmap(docs: list[dict]) -> dict:
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboards")]
    assert len(maps) == 1
    return maps[0]


def _promtool(promtool: Path, *args: str, cwd: Path) -> str:
    out = subprocess.run([str(promtool), *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    assert out.returncode == 0, f"promtool {' '.join(args)}:\n{out.stdout}{out.stderr}"
    return out.stdout


def github_anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _runbook_headings() -> list[str]:
    """The headings inside README.md's "Alert runbooks" section."""
    lines = README.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if re.fullmatch(r"#+ Alert runbooks", line)), None)
    assert start is not None, 'README.md has no "Alert runbooks" section'
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    headings = []
    for line in lines[start + 1:]:
        found = re.match(r"(#+) (.+)", line)
        if found and len(found.group(1)) <= level:
            break
        if found:
            headings.append(found.group(2))
    return headings


def test_dashboards_and_alerts_are_off_by_default(renderings):
    for combination in ("defaults", "minimal", "mesh"):
        docs = documents(renderings[combination])
        assert not [d for d in docs if d["kind"] == "PrometheusRule"], combination
        assert not [d for d in docs if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]], \
            combination
    values = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]
    assert values["dashboards"]["enabled"] is False and values["prometheusRule"]["enabled"] is False


def test_prometheus_scrapes_every_service_and_the_gateway_keeping_their_service_label(renderings):
    docs = documents(renderings["all-features"])
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert sorted(monitors) == sorted(f"erp-{name}" for name in [*values["services"], "gateway"])
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    for name, monitor in monitors.items():
        endpoint, = monitor["spec"]["endpoints"]
        # the processes' own `service` label (orders), which the alerts group by, is kept
        assert endpoint["honorLabels"] is True and endpoint["port"] == "http-metrics", name
        ports = {p["name"]: p for p in services[name]["spec"]["ports"]}
        assert ports["http-metrics"]["port"] == values["metrics"]["port"], name


def test_prometheus_rule_ships_the_alerts_file_as_it_is(helm):
    rule = _prometheus_rule(render(helm, set_json=ENABLED))
    assert rule["metadata"]["name"] == "erp-alerts" and rule["metadata"]["namespace"] == "erp"
    assert rule["spec"]["groups"] == _alerts_file()["groups"]
    # Prometheus's templates reach the PrometheusRule untouched (helm reads the file, it does not render it).
    assert "{{ $labels.service }}" in rule["spec"]["groups"][0]["rules"][0]["annotations"]["summary"]


def test_prometheus_rule_options(renderings):
    """all-features: labels for Prometheus's ruleSelector, labels on every alert, absolute runbook links,
    an alert left out."""
    rule = _prometheus_rule(documents(renderings["all-features"]))
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    shipped = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    source = {r["alert"]: r for r in _alerts()}
    assert set(shipped) == set(source) - {"ErpReadinessFlapping"}
    for name, alert in shipped.items():
        assert alert["expr"] == source[name]["expr"] and alert.get("for") == source[name].get("for"), name
        assert alert["labels"] == {**source[name]["labels"], "team": "erp-platform"}, name
        assert alert["annotations"]["runbook_url"] == \
            f"https://git.example.com/erp/erp-mesh/blob/main/README.md#{name.lower()}", name


@pytest.mark.parametrize(("set_json", "expected"), [
    ({**ENABLED, "metrics.prometheusRule.disabled": '["ErpOutboxLagg"]'},
     'metrics.prometheusRule.disabled names "ErpOutboxLagg", which is no alert of the chart'),
    ({"metrics.prometheusRule.enabled": "true", "metrics.enabled": "false"},
     "metrics.prometheusRule.enabled needs metrics.enabled"),
    ({"metrics.dashboards.enabled": "true", "metrics.enabled": "false"},
     "metrics.dashboards.enabled needs metrics.enabled"),
])
def test_templates_refuse_monitoring_settings_that_cannot_work(helm, set_json, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json=set_json)
    assert expected in str(failure.value)


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("metrics.dashboards.lable", '"grafana_dashboard"', "'lable' not allowed"),
    ("metrics.dashboards.labelValue", "1", "want string"),
    ("metrics.prometheusRule.runbookBaseUrl", '"README.md"', "does not match pattern"),
    ("metrics.prometheusRule.alertLabels", '{"team-name": "erp"}', "does not match pattern"),
    ("metrics.prometheusRule.disabled", '"ErpOutboxLag"', "want array"),
    ("metrics.prometheusRule.rules", "[]", "'rules' not allowed"),
])
def test_schema_checks_the_monitoring_values(helm, flag, value, expected):
    with pytest.raises(HelmError) as failure:
        helm_template(helm, set_json={flag: value})
    assert "values don't meet the specifications of the schema" in str(failure.value)
    assert expected in str(failure.value)


def test_promtool_checks_and_unit_tests_the_rules_the_chart_renders(helm, promtool, renderings, tmp_path):
    rule = _prometheus_rule(render(helm, set_json={"metrics.prometheusRule.enabled": "true"}))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    checked = _promtool(promtool, "check", "rules", "rules.yaml", cwd=tmp_path)
    assert f"SUCCESS: {len(_alerts())} rules found" in checked
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    assert "SUCCESS" in _promtool(promtool, "test", "rules", UNIT_TESTS.name, cwd=tmp_path)
    # the customised rendering (alert labels, absolute runbook links) is valid too
    custom = _prometheus_rule(documents(renderings["all-features"]))
    (tmp_path / "custom.yaml").write_text(yaml.safe_dump({"groups": custom["spec"]["groups"]}, sort_keys=False))
    _promtool(promtool, "check", "rules", "custom.yaml", cwd=tmp_path)


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_must_not():
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in _alerts():
        name = alert["alert"]
        fires = [c for c in cases if c["alertname"] == name and c["exp_alerts"]]
        silent = [c for c in cases if c["alertname"] == name and not c["exp_alerts"]]
        assert fires, f"{name}: no unit test where it fires"
        assert silent, f"{name}: no unit test where it must not fire"
        for case in fires:
            for expected in case["exp_alerts"]:
                # promtool compares every annotation: the templates are rendered and checked
                assert set(expected["exp_annotations"]) == {"summary", "description", "runbook_url"}, name


def test_every_alert_has_severity_summary_description_and_a_runbook_section():
    headings = _runbook_headings()
    anchors = {github_anchor(h) for h in headings}
    names = []
    for alert in _alerts():
        name = alert["alert"]
        names.append(name)
        assert re.fullmatch(r"Erp[A-Z][A-Za-z]+", name), name
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert annotations["runbook_url"] == f"README.md#{name.lower()}", name
        assert name.lower() in anchors, f"{name}: README.md has no runbook section (a heading {name!r})"
    assert len(set(names)) == len(names)
    assert sorted(h for h in headings if h.startswith("Erp")) == sorted(names), \
        "a runbook section for an alert that does not exist"


def test_dashboards_configmap_carries_every_dashboard_for_the_sidecar(renderings, helm):
    docs = documents(renderings["all-features"])
    configmap = _dashboards_configmap(docs)
    assert configmap["metadata"]["namespace"] == "monitoring"
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "ERP"}
    files = promql.dashboard_files()
    assert len(files) == 3
    assert sorted(configmap["data"]) == [p.name for p in files]
    for path in files:
        assert json.loads(configmap["data"][path.name]) == json.loads(path.read_text()), path.name
    other = _dashboards_configmap(render(helm, set_json={
        "metrics.dashboards.enabled": "true", "metrics.dashboards.label": '"example.com/dashboard"',
        "metrics.dashboards.labelValue": '"erp"'}))
    assert other["metadata"]["labels"]["example.com/dashboard"] == "erp"
    assert "grafana_dashboard" not in other["metadata"]["labels"]
    assert other["metadata"]["namespace"] == "erp"


def _walk(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")
    yield path, value


@pytest.mark.parametrize("path", promql.dashboard_files(), ids=lambda p: p.name)
def test_dashboards_ask_for_their_data_source(path):
    board = json.loads(path.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert "__inputs" not in board, "an import-only dashboard: the sidecar does not resolve ${DS_...} inputs"
    for where, value in _walk(board):
        if where.endswith(".datasource"):
            assert value == {"type": "prometheus", "uid": "${datasource}"}, f"{path.name}{where}: {value}"
    panels = list(promql._panels(board["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and panel.get("description"), panel["title"]
    for name, variable in variables.items():
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, name
    assert board["uid"] == path.stem and board["title"].startswith("ERP / ")


def test_dashboard_uids_and_titles_are_unique():
    boards = [json.loads(p.read_text()) for p in promql.dashboard_files()]
    assert len({b["uid"] for b in boards}) == len({b["title"] for b in boards}) == len(boards)


def test_every_dashboard_query_is_valid_promql(promtool, tmp_path):
    """Each panel's and variable's expression, its Grafana variables replaced, as a recording rule."""
    queries = [q for path in promql.dashboard_files() for q in promql.dashboard_queries(path)]
    assert len(queries) > 40
    rules = [{"record": f"dashboard:query_{i}:check", "expr": q.promql} for i, q in enumerate(queries)]
    (tmp_path / "dashboards.yaml").write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    out = subprocess.run([str(promtool), "check", "rules", "dashboards.yaml"], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    if out.returncode != 0:
        numbers = {int(n) for n in re.findall(r"dashboard:query_(\d+):check", out.stdout + out.stderr)}
        where = "\n".join(f"{queries[n].where}: {queries[n].expr}" for n in sorted(numbers))
        pytest.fail(f"promtool refuses dashboard queries:\n{out.stdout}{out.stderr}\n{where}")


def test_gauges_every_replica_reports_are_aggregated_with_max():
    """The outbox, dead-letter and orders gauges come from a service's database, reported alike by
    each of its replicas: a sum would double them."""
    for query in promql.all_queries():
        if query.kind != "variable":
            wrong = promql.replicated_gauges_outside_max(query.expr)
            assert not wrong, f"{query.where}: {wrong} not under max(...): {query.expr}"
    # and the helper does catch one
    assert promql.replicated_gauges_outside_max('sum(erp_dead_letters{service="x"})') == ["erp_dead_letters"]
    assert promql.replicated_gauges_outside_max("max by (service) (erp_dead_letters) > 0") == []


def test_the_promql_helper_reads_names_and_matchers():
    expr = ('histogram_quantile(0.99, sum by (grpc_service, le) (rate(grpc_server_handling_seconds_bucket'
            '{namespace=~"$namespace", grpc_code!="OK"}[$__rate_interval]))) / on (x) group_left '
            'max(erp_serving offset 5m) and up')
    selectors = promql.selectors(expr)
    assert [s.metric for s in selectors] == ["grpc_server_handling_seconds_bucket", "erp_serving", "up"]
    assert selectors[0].matchers == (("namespace", "=~", "x"), ("grpc_code", "!=", "OK"))
    assert promql.grouping_labels(expr) == {"grpc_service", "le", "x"}
    assert promql.base_name("grpc_server_handling_seconds_bucket") == "grpc_server_handling_seconds"
