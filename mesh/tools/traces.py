"""Print a trace as a tree with timings, from the span files a local mesh writes (`erp trace`).

    python -m mesh.tools.traces ORDER_ID | TRACE_ID [--sql] [--dir DIR] [--output tree|json]

`make run` has every process write its spans to .data/traces (ERP_TRACES_DIR; mesh.tracing).
An order id prints every trace that touched the order (placement, and later calls such as
cancel or ship); a trace id (32 hex digits) prints that trace. Database and Redis spans are
counted, not shown, unless --sql. Exit status: 0 printed, 1 nothing found, 2 a usage error.
A deployed mesh sends its spans to a collector (OTEL_EXPORTER_OTLP_ENDPOINT): use its UI.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from mesh.settings import load

TRACE_ID = re.compile(r"[0-9a-f]{32}")
ORDER_KEYS = ("erp.order_id", "erp.aggregate_id")
# One span as mesh.tracing.span_record writes it: a JSON object.
Span = dict[str, Any]


def read_spans(directory: Path) -> list[Span]:
    spans = []
    for path in sorted(directory.glob("*.jsonl*")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    spans.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a process killed mid-write
    return spans


def traces_of(spans: list[Span], wanted: str) -> dict[str, list[Span]]:
    """{trace id: its spans} for a trace id, or for every trace with a span about order `wanted`."""
    if TRACE_ID.fullmatch(wanted):
        ids = {wanted}
    else:
        ids = {s["trace_id"] for s in spans if any(s["attributes"].get(k) == wanted for k in ORDER_KEYS)}
    found: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span["trace_id"] in ids:
            found[span["trace_id"]].append(span)
    return dict(sorted(found.items(), key=lambda item: min(s["start_ns"] for s in item[1])))


def is_storage(span: Span) -> bool:
    return "db.system" in span["attributes"] or "db.system.name" in span["attributes"]


def tree_lines(spans: list[Span], with_storage: bool) -> list[str]:
    start = min(s["start_ns"] for s in spans)
    end = max(s["end_ns"] for s in spans)
    shown = [s for s in spans if with_storage or not is_storage(s)]
    ids = {s["span_id"] for s in shown}
    hidden: dict[str | None, int] = defaultdict(int)
    for span in spans:
        if span not in shown:
            hidden[span["parent_id"]] += 1
    children: dict[str | None, list[Span]] = defaultdict(list)
    for span in shown:
        children[span["parent_id"] if span["parent_id"] in ids else None].append(span)
    lines = [f"trace {spans[0]['trace_id']}  {len(spans)} spans, {(end - start) / 1e6:.1f} ms"]

    def walk(span: Span, depth: int) -> None:
        offset, took = (span["start_ns"] - start) / 1e6, (span["end_ns"] - span["start_ns"]) / 1e6
        flag = f"  ERROR {span['status_message']}".rstrip() if span["status"] == "ERROR" else ""
        storage = f"  (+{hidden[span['span_id']]} sql/redis)" if hidden.get(span["span_id"]) else ""
        lines.append(f"{offset:>9.1f} ms {took:>8.1f} ms  {'  ' * depth}{span['service'] or '?'}: "
                     f"{span['name']}{flag}{storage}")
        for child in sorted(children[span["span_id"]], key=lambda s: s["start_ns"]):
            walk(child, depth + 1)

    for root in sorted(children[None], key=lambda s: s["start_ns"]):
        walk(root, 0)
    return lines


def traces_dir(given: str | None) -> Path:
    if given:
        return Path(given)
    return Path(os.environ.get("ERP_TRACES_DIR") or load("traces").data_dir / "traces")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("id", help="an order id, or a trace id (32 hex digits)")
    parser.add_argument("--sql", action="store_true", help="show database and Redis spans too")
    parser.add_argument("--dir", help="where the span files are (default: ERP_TRACES_DIR, else .data/traces)")
    parser.add_argument("--output", choices=("tree", "json"), default="tree")
    args = parser.parse_args(argv)
    directory = traces_dir(args.dir)
    found = traces_of(read_spans(directory), args.id.lower() if TRACE_ID.fullmatch(args.id.lower()) else args.id)
    if not found:
        print(f"no trace for {args.id} in {directory} (is the mesh tracing? `make run` writes spans there)",
              file=sys.stderr)
        return 1
    if args.output == "json":
        json.dump(found, sys.stdout, indent=2)
        print()
        return 0
    print("\n\n".join("\n".join(tree_lines(spans, args.sql)) for spans in found.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
