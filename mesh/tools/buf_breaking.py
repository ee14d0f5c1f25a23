"""`buf breaking` against the previous commit's protos (part of `make lint`).

Compares against HEAD when protos/ has uncommitted changes (what you are about to
commit), else against HEAD~1 (what the last commit changed). Skips, saying why, when
there is no earlier commit with protos to compare with.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = Path(sys.executable).parent / "buf"


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)


def main() -> int:
    dirty = git("status", "--porcelain", "--", "protos").stdout.strip()
    ref = "HEAD" if dirty else "HEAD~1"
    if git("cat-file", "-e", f"{ref}:protos/buf.yaml").returncode != 0:
        print(f"buf breaking: skipped, {ref} has no protos/ to compare with")
        return 0
    against = f"{ROOT / '.git'}#ref={ref},subdir=protos"
    result = subprocess.run([str(BUF), "breaking", "--against", against], cwd=ROOT / "protos")
    if result.returncode == 0:
        print(f"buf breaking: no breaking change against {ref}")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
