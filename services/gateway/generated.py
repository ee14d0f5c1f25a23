"""The gateway's generated files (its OpenAPI document, its Istio policy): each is written by
`make gateway-generate`, and `--check` fails while the committed one is stale."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def main(path: Path, render: Callable[[], str], description: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not path.exists() or path.read_text() != text:
            print(f"{path} is stale: run `make gateway-generate`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0
