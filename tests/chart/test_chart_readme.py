"""helm/erp/README.md documents every value and is what values.yaml generates (`make chart-readme`)."""
from __future__ import annotations

import yaml

from tests.chart import chart_readme
from tests.chart.conftest import CHART


def _leaves(node, path: str = ""):
    if isinstance(node, dict) and node:
        for key, child in node.items():
            yield from _leaves(child, f"{path}.{key}" if path else str(key))
    else:
        yield path


def test_chart_readme_is_up_to_date():
    assert (CHART / "README.md").read_text() == chart_readme.render(), \
        "helm/erp/README.md is stale: run `make chart-readme` and commit it"


def test_every_value_has_a_documented_row():
    values_text = (CHART / "values.yaml").read_text()
    rows = chart_readme.rows(values_text)
    documented = {row.path for row in rows}
    for leaf in _leaves(yaml.safe_load(values_text)):
        parts = leaf.split(".")
        assert any(".".join(parts[:n]) in documented for n in range(len(parts), 0, -1)), f"{leaf} has no row"
    assert all(row.description for row in rows), [row.path for row in rows if not row.description]
    top = {row.path: row for row in rows if "." not in row.path}
    assert set(top) == set(yaml.safe_load(values_text)), "every top-level value has a row of its own"
    assert all(not row.inherited for row in top.values()), \
        f"top-level values without a `# --` description: {[p for p, r in top.items() if r.inherited]}"


def test_descriptions_come_from_the_comments():
    rows = {row.path: row for row in chart_readme.rows((CHART / "values.yaml").read_text())}
    assert rows["image.digest"].description.startswith("sha256:... of the pushed image")
    assert rows["ingress.rest.host"].description.startswith("Host name of the REST/JSON edge")
    assert rows["gateway.port"].default == "`50050`" and rows["gateway.port"].type == "int"
    assert rows["image.repository"].description == "See `image`."
    # multi-line `# --` blocks are joined; a commented-out example inside a list is not taken for a key
    assert "restricted-v2 SCC" in rows["podSecurityContext"].description
    assert not any(path.startswith("services.notification.env.ERP_SMTP_URL") for path in rows)


def test_a_toy_values_file():
    text = """# -- The first.
# Continued.
a: 1
# a plain comment
b:
  # -- Inner.
  c: [x]
  d: {}
e:
  - f: 1  # list items are values, not keys
"""
    rows = {row.path: row for row in chart_readme.rows(text)}
    assert rows["a"].description == "The first. Continued."
    assert rows["b"].description == "a plain comment" and rows["b"].default == "see below"
    assert rows["b.c"].description == "Inner." and rows["b.c"].type == "list"
    assert rows["b.d"].description == "See `b`." and rows["b.d"].default == "`{}`"
    assert set(rows) == {"a", "b", "b.c", "b.d", "e"} and rows["e"].default == '`[{"f": 1}]`'
