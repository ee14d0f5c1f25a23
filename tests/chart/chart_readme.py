"""helm/erp/README.md, generated from values.yaml and its comments (helm-docs style, in Python: helm-docs is a
Go binary no package registry here ships).

    python -m tests.chart.chart_readme            # write helm/erp/README.md   (make chart-readme)
    python -m tests.chart.chart_readme --check    # exit 1 when it is stale    (tests/chart/test_chart_readme.py)

A comment block starting with `# --` right above a key describes it, continued by the `#` lines that follow
it up to the key (helm-docs' convention); a plain comment block right above a key describes it too. Every
value gets a row: each leaf (a scalar, a list, an empty map) and each map that has a description of its
own, with its type and default from values.yaml. A value without a description of its own points at the
nearest described map above it. The page's text around the table comes from Chart.yaml and the template
below.
"""
from __future__ import annotations

import difflib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "erp"
README = CHART / "README.md"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\"'/-]+):(?:\s|$)")


@dataclass
class Row:
    path: str
    type: str
    default: str
    description: str
    inherited: bool = False


def _descriptions(text: str) -> dict[str, str]:
    """Key path -> the description in the comment block right above the key."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, key) of the maps we are in
    pending: list[tuple[int, str]] = []
    in_list_indent: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        indent = len(line) - len(line.lstrip(" "))
        if stripped.startswith("#"):
            pending.append((indent, stripped[1:].strip()))
            continue
        if in_list_indent is not None:
            if indent > in_list_indent or (indent == in_list_indent and stripped.startswith("- ")):
                pending = []
                continue
            in_list_indent = None
        if stripped.startswith("- "):
            in_list_indent = indent
            pending = []
            continue
        match = KEY.match(line)
        if not match:
            pending = []
            continue
        key = match.group("key").strip("\"'")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key])
        block = [c for i, c in pending if i == indent]
        starts = [n for n, c in enumerate(block) if c.startswith("--")]
        if starts:
            described = block[starts[-1]:]
            described[0] = described[0][2:].strip()
            found[path] = " ".join(c for c in described if c)
        elif block:
            found[path] = " ".join(c for c in block if c)
        pending = []
        rest = line[match.end():].strip()
        if not rest or rest.startswith("#"):
            stack.append((indent, key))
    return found


def _type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _default(value) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    return "`" + text.replace("|", "\\|") + "`"


def rows(values_text: str) -> list[Row]:
    values = yaml.safe_load(values_text)
    described = _descriptions(values_text)
    out: list[Row] = []

    def walk(node, path: str, parent: str | None) -> None:
        own = described.get(path)
        if isinstance(node, dict) and node:
            if own is not None:
                whole = _leafy(node) and not any(f"{path}.{k}" in described for k in node)
                out.append(Row(path, "object", _default(node) if whole else "see below", own))
                if whole:  # a small map of undescribed values: its row shows it whole
                    return
            for key, child in node.items():
                walk(child, f"{path}.{key}" if path else str(key), path if own is not None else parent)
            return
        if own is not None:
            out.append(Row(path, _type(node), _default(node), own))
        else:
            out.append(Row(path, _type(node), _default(node),
                           f"See `{parent}`." if parent else "", inherited=True))

    walk(values, "", None)
    return out


def _leafy(node: dict) -> bool:
    """A small map of plain values, shown whole in its own row (resources, probes, matchLabels...)."""
    return len(json.dumps(node)) <= 160 and not any(isinstance(v, dict) and len(v) > 3 for v in node.values())


TEMPLATE = """<!-- Generated by `make chart-readme` (python -m tests.chart.chart_readme) from values.yaml and Chart.yaml:
edit those, then regenerate. `make test` fails while this file is stale. -->
# {name} chart

{description}

Version {version}, appVersion {app_version}; Kubernetes {kube_version}.

Installing it, from an empty cluster (the operators, the platform in `k8s/`, the image): `k8s/README.md`.
The service settings the values map to (`ERP_*`): the repository's `README.md` ("Configuration").

```sh
helm upgrade --install erp helm/erp --namespace erp \\
  --set image.repository=$REGISTRY/erp-mesh --set image.digest=$DIGEST --wait --timeout 10m
helm test erp -n erp --logs      # health of every service through the gateway
```

`values.schema.json` checks every value below: a misspelled key or a wrong type fails the install.

## Values

| Key | Type | Default | Description |
|-----|------|---------|-------------|
{rows}
"""


def render(values_text: str | None = None) -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values_text = (CHART / "values.yaml").read_text() if values_text is None else values_text
    table = "\n".join(f"| `{r.path}` | {r.type} | {r.default} | {r.description.replace('|', chr(92) + '|')} |"
                      for r in rows(values_text))
    return TEMPLATE.format(name=chart["name"], description=" ".join(chart["description"].split()),
                           version=chart["version"], app_version=chart["appVersion"],
                           kube_version=chart.get("kubeVersion", "any"), rows=table)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = README.read_text() if README.exists() else ""
        if current != text:
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), "README.md", "generated", lineterm="")
            print("\n".join(list(diff)[:60]))
            print("helm/erp/README.md is stale: run `make chart-readme`", file=sys.stderr)
            return 1
        return 0
    README.write_text(text)
    print(f"wrote {README.relative_to(CHART.parents[1])}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
