"""`buf breaking` against the previous commit's protos (part of `make lint`).

Compares against HEAD when protos/ has uncommitted changes (what you are about to
commit), else against HEAD~1 (what the last commit changed). Skips, saying why, when
there is no earlier commit with protos to compare with. Both sides get protos/google/ (the
imported google/api protos, never committed) laid from the installed package.
"""
from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from mesh.tools import proto_deps

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def main() -> int:
    dirty = git("status", "--porcelain", "--", "protos").stdout.strip()
    ref = "HEAD" if dirty else "HEAD~1"
    if git("cat-file", "-e", f"{ref}:protos/buf.yaml").returncode != 0:
        print(f"buf breaking: skipped, {ref} has no protos/ to compare with")
        return 0
    proto_deps.lay(ROOT / "protos")
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(["git", "archive", "--format=tar", ref, "protos"], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        against = Path(tmp) / "protos"
        proto_deps.lay(against)
        result = subprocess.run([str(BUF), "breaking", "--against", str(against)], cwd=ROOT / "protos")
    if result.returncode == 0:
        print(f"buf breaking: no breaking change against {ref}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
