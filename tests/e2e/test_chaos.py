"""The chaos suite's short run (chaos/): the mesh with two replicas of every service on servers the
suite starts itself, each fault injected once under a journaled workload, then audited over gRPC.
Every count of its table must be zero. It needs the machine's PostgreSQL, Redis and RabbitMQ server
binaries (not running servers); without them it is skipped, saying which are missing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chaos import engines
from tests import support

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_short_chaos_run_loses_and_doubles_nothing():
    missing = engines.missing_binaries()
    if missing:
        message = f"the chaos suite starts its own servers; this machine lacks {', '.join(missing)}"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + " (CI requires them: PostgreSQL, Redis and RabbitMQ binaries)", pytrace=False)
        pytest.skip(message)
    run = subprocess.run([sys.executable, "-m", "chaos", "--short"], cwd=ROOT, capture_output=True, text=True,
                         timeout=570)
    print(run.stdout[-6000:])
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert "verdict: PASS" in run.stdout
