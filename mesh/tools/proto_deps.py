"""Lays the protos that protos/ imports from other packages into protos/google/ for buf.

buf cannot reach the Buf Schema Registry from here, so google/api/annotations.proto and
http.proto come from the installed googleapis-common-protos package (the same files
protoc reads in clients/python/generate.py). protos/google/ is laid, never committed
(.gitignore), and buf.yaml leaves it out of lint and breaking: `make lint` lays it anew.

    python -m mesh.tools.proto_deps [PROTOS_DIR]
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMPORTED = ("google/api/annotations.proto", "google/api/http.proto")


def googleapis_root() -> Path:
    from google.api import annotations_pb2

    return Path(annotations_pb2.__file__).resolve().parents[2]


def lay(protos_dir: Path) -> Path:
    for name in IMPORTED:
        target = protos_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(googleapis_root() / name, target)
    return protos_dir


def main() -> int:
    protos = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "protos"
    lay(protos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
