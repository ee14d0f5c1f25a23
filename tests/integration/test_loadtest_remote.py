"""`make loadtest HOST=<gateway>` against a deployment-like mesh: inventory with internal auth on (it refuses
calls around the gateway) behind the gateway; the suite (seeding included) runs through the gateway with
the token of ERP_TOKEN_FILE, and fails without one."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness

ROOT = Path(__file__).resolve().parents[2]
THRESHOLDS = """
[suites.inventory_lookup]
file = "inventory_lookup.py"
users = 2
spawn_rate = 2
env = { LOAD_LOOKUP_RATE = "5", LOAD_SKUS = "20" }

[[suites.inventory_lookup.thresholds]]
name = "GetStock"
max_failure_ratio = 0
min_requests = 3
"""


@pytest.fixture
def gateway(embedded_engines, embedded_redis, tmp_path):
    with running_mesh(embedded_engines, tmp_path, services=("inventory",), internal_auth=True,
                      internal_token_secret=SECRET) as (_client, started):
        harness = Harness(embedded_redis, tmp_path, {"inventory": f"127.0.0.1:{started['inventory'].port}"},
                          env={"ERP_GATEWAY_RATE_LIMITS": "read=10000/10000,write=10000/10000,report=10/10"})
        try:
            yield harness
        finally:
            harness.close()


def run_suite(gateway, tmp_path, env: dict[str, str]) -> subprocess.CompletedProcess:
    # Locust's run time starts before the suite's seeding ends: 6 s leaves a cold first run time to call.
    (tmp_path / "thresholds.toml").write_text(THRESHOLDS)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ERP_", "LOAD_"))}
    return subprocess.run(
        [sys.executable, "-m", "loadtests.run", "--host", gateway.grpc_target, "--run-time", "6s",
         "--thresholds", str(tmp_path / "thresholds.toml"), "--reports", str(tmp_path / "reports"),
         "inventory_lookup"],
        cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=300)


def test_a_suite_runs_through_the_gateway_with_a_token_and_fails_without(gateway, tmp_path):
    if importlib.util.find_spec("locust") is None:
        message = "Locust is the `load` extra (make test and make loadtest install it)"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + "; CI runs make test, which installs it", pytrace=False)
        pytest.skip(message)
    token = tmp_path / "token"
    token.write_text(gateway.issuer.token(["inventory.read", "inventory.write"]))
    done = run_suite(gateway, tmp_path, {"ERP_TOKEN_FILE": str(token)})
    verdicts = "\n".join(line for line in done.stdout.splitlines() if "PASS" in line or "FAIL" in line)
    assert done.returncode == 0, verdicts + done.stderr[-2000:]
    assert "thresholds met" in done.stdout and "FAIL" not in done.stdout

    refused = run_suite(gateway, tmp_path, {})
    assert refused.returncode != 0
    assert "UNAUTHENTICATED" in refused.stdout + refused.stderr
