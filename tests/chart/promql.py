"""What the chart's dashboards and alerts query: their PromQL expressions, and the metric names and
label matchers in them. Used by tests/chart/test_monitoring.py (syntax through promtool, replicas'
gauges aggregated with max) and tests/e2e/test_metrics_contract.py (every name exists in a real
scrape of the running mesh).

The extraction is a small tokenizer, not a PromQL parser: enough for the expressions written here
(selectors, functions, aggregations with by/without, binary operators with on/ignoring/group_*,
ranges, offsets), and promtool checks each expression's syntax, so nothing it misreads goes unseen.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "erp"
ALERTS = CHART / "files" / "alerts.yaml"
DASHBOARDS = CHART / "dashboards"

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Gauges every replica of a service reads alike from the service's database (mesh/sampled.py): an
# expression must take their max over the replicas, never a sum.
REPLICATED_GAUGES = ("erp_outbox_pending", "erp_outbox_oldest_pending_age_seconds", "erp_outbox_parked",
                     "erp_dead_letters", "erp_orders", "erp_orders_oldest_pending_age_seconds",
                     "erp_order_pending_deadline_seconds")
# Labels Prometheus adds to every series when it scrapes (target labels), not the processes.
TARGET_LABELS = frozenset({"namespace", "job", "instance", "pod", "container", "endpoint", "service_name"})

_KEYWORDS = frozenset({"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
                       "bool", "offset", "atan2", "inf", "nan"})
_IDENT = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_STRING = r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\''
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")')
_GRAFANA_INTERVALS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@dataclasses.dataclass(frozen=True)
class Query:
    where: str  # "erp-rpc.json, panel 'Calls / s'" or "alert ErpOutboxLag"
    expr: str   # as written (Grafana variables included)
    kind: str   # alert, panel, or variable (the selector of a label_values() lookup)

    @property
    def promql(self) -> str:
        """The expression with Grafana's variables replaced, so that Prometheus can parse it."""
        return without_grafana_variables(self.expr)


@dataclasses.dataclass(frozen=True)
class Selector:
    metric: str
    matchers: tuple[tuple[str, str, str], ...]  # (label, operator, value)


def without_grafana_variables(expr: str) -> str:
    expr = _GRAFANA_INTERVALS.sub("5m", expr)
    return _GRAFANA_VARIABLE.sub("x", expr)


def _strip_strings(expr: str) -> str:
    return re.sub(_STRING, '""', expr)


def selectors(expr: str) -> list[Selector]:
    """Each metric named in expr, with the label matchers of its selector, in order of appearance."""
    text = without_grafana_variables(expr)
    found: list[tuple[int, Selector]] = []
    blank = list(text)
    # name{...} (the braces may hold strings with } in them): the name and its matchers.
    for match in re.finditer(rf'(?<![\w.:])({_IDENT})\s*(\{{(?:{_STRING}|[^}}"\'])*\}})', text):
        matchers = tuple((m.group(1), m.group(2), json.loads(m.group(3))) for m in _MATCHER.finditer(match.group(2)))
        found.append((match.start(), Selector(match.group(1), matchers)))
        blank[match.start():match.end()] = " " * (match.end() - match.start())
    # Bare names: blank out strings, ranges and grouping label lists; functions and keywords are no names.
    rest = _strip_strings("".join(blank))
    rest = re.sub(r"\[[^\]]*\]", lambda m: " " * len(m.group(0)), rest)
    rest = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", lambda m: " " * len(m.group(0)),
                  rest)
    for match in re.finditer(rf"(?<![\w.:]){_IDENT}", rest):
        name = match.group(0)
        if name in _KEYWORDS or re.match(r"\s*\(", rest[match.end():]):
            continue
        found.append((match.start(), Selector(name, ())))
    return [selector for _, selector in sorted(found, key=lambda item: item[0])]


def metric_names(expr: str) -> set[str]:
    return {s.metric for s in selectors(expr)}


def grouping_labels(expr: str) -> set[str]:
    """Labels named in by/without/on/ignoring/group_left/group_right clauses."""
    text = _strip_strings(without_grafana_variables(expr))
    labels: set[str] = set()
    for match in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(label.strip() for label in match.group(2).split(",") if label.strip())
    return labels


def base_name(name: str) -> str:
    """A histogram's name for its _bucket, _sum and _count series; other names as they are."""
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def alert_queries(path: Path = ALERTS) -> list[Query]:
    rules = yaml.safe_load(path.read_text())
    return [Query(f"alert {rule.get('alert') or rule.get('record')}", str(rule["expr"]), "alert")
            for group in rules["groups"] for rule in group["rules"]]


def dashboard_files(folder: Path = DASHBOARDS) -> list[Path]:
    return sorted(folder.glob("*.json"))


def _panels(panels: list[dict]) -> Iterator[dict]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_queries(path: Path) -> list[Query]:
    """Every PromQL expression of a dashboard: its panels' targets, and the metric selector of each
    query variable (label_values(<selector>, <label>))."""
    board = json.loads(path.read_text())
    queries = []
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append(Query(f"{path.name}, panel {panel['title']!r}", target["expr"], "panel"))
    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", query)
        if match:
            queries.append(Query(f"{path.name}, variable {variable['name']!r}", match.group(1), "variable"))
        elif not re.fullmatch(r"\s*label_values\(\s*\w+\s*\)\s*", query):
            queries.append(Query(f"{path.name}, variable {variable['name']!r}", query, "variable"))
    return queries


def all_queries() -> list[Query]:
    return alert_queries() + [q for path in dashboard_files() for q in dashboard_queries(path)]


def replicated_gauges_outside_max(expr: str) -> list[str]:
    """The replicated gauges (REPLICATED_GAUGES) expr reads other than directly inside max(...) or
    max by/without (...) (...): those would count a value once per replica."""
    text = _strip_strings(without_grafana_variables(expr))
    wrong = []
    for name in REPLICATED_GAUGES:
        for match in re.finditer(rf"(?<![\w:]){re.escape(name)}(?![\w:])", text):
            before = text[: match.start()]
            # the innermost parenthesis still open before the name
            depth, opened = 0, None
            for i in range(len(before) - 1, -1, -1):
                if before[i] == ")":
                    depth += 1
                elif before[i] == "(":
                    if depth == 0:
                        opened = i
                        break
                    depth -= 1
            head = before[:opened].rstrip() if opened is not None else ""
            if not re.search(r"(?<![\w:])max(\s+(by|without)\s*\([^)]*\))?$", head) and \
                    not re.search(r"(?<![\w:])max\s*$", head):
                wrong.append(name)
    return wrong
