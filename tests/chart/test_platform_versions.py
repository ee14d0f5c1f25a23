"""The operators the platform expects, pinned (issue 17): k8s/operators/versions.env names exact versions,
k8s/README.md installs exactly those, and k8s/operators/install.sh applies only manifests whose sha256
matches the one recorded (tried here with stand-ins for curl, helm and kubectl)."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.chart.conftest import K8S

OPERATORS = K8S / "operators"


def _versions(path: Path = OPERATORS / "versions.env") -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            assert re.fullmatch(r"[A-Z0-9_]+", key), line
            pairs[key] = value
    return pairs


def test_every_operator_is_pinned_to_an_exact_version():
    versions = _versions()
    pinned = {k: v for k, v in versions.items() if k.endswith("_VERSION")}
    assert {"CNPG_CHART_VERSION", "CNPG_VERSION", "RABBITMQ_OPERATOR_VERSION", "CERT_MANAGER_VERSION",
            "GATEWAY_API_VERSION", "PROMETHEUS_OPERATOR_VERSION"} <= set(pinned)
    for key, value in pinned.items():
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", value), f"{key}={value} is not an exact version"
    for key, url in versions.items():  # url: the value (a URL or a sum)
        if key.endswith("_URL"):
            stem = key.removesuffix("_URL").removesuffix("_CRDS")
            assert url.startswith("https://") and "latest" not in url, key
            assert f"/v{pinned[stem + '_VERSION'].lstrip('v')}/" in url, f"{key} is not the pinned version's"
            assert f"{key.removesuffix('_URL')}_SHA256" in versions, f"{key} has no sha256 entry"
        if key.endswith("_SHA256"):
            assert re.fullmatch(r"([0-9a-f]{64})?", url), key
    # Gateway API: the chart writes HTTPRoute and GRPCRoute v1, which need 1.1 or newer
    major, minor, _ = map(int, versions["GATEWAY_API_VERSION"].lstrip("v").split("."))
    assert (major, minor) >= (1, 1)


def test_the_docs_and_the_platform_use_the_pinned_versions():
    versions = _versions()
    readme = (K8S / "README.md").read_text()
    assert "k8s/operators/install.sh" in readme
    for key, value in versions.items():
        if key.endswith("_VERSION"):
            assert value.lstrip("v") in readme, f"k8s/README.md does not name {key}={value}"
    assert "releases/latest" not in readme, "k8s/README.md installs an unpinned operator"
    redis = [d for d in yaml.safe_load_all((K8S / "redis.yaml").read_text()) if d and d["kind"] == "Deployment"]
    assert redis[0]["spec"]["template"]["spec"]["containers"][0]["image"] == versions["REDIS_IMAGE"]


def test_install_script_uses_only_what_versions_env_defines():
    script = (OPERATORS / "install.sh").read_text()
    assert subprocess.run(["bash", "-n", str(OPERATORS / "install.sh")]).returncode == 0
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script)) - {"ERP_ACCEPT_UNPINNED"}
    assert used and used <= set(_versions()), sorted(used - set(_versions()))
    assert os.access(OPERATORS / "install.sh", os.X_OK)


@pytest.fixture
def sandbox(tmp_path):
    """install.sh beside a versions.env of ours, with curl, helm and kubectl stand-ins that log their calls."""
    shutil.copy(OPERATORS / "install.sh", tmp_path / "install.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    (bin_dir / "curl").write_text('#!/bin/sh\nwhile [ "$1" != "-o" ]; do shift; done\nprintf "kind: Manifest\\n" > "$2"\n')
    for tool in ("helm", "kubectl"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n'
                                    'for a in "$@"; do case "$a" in /*.yaml) cat "$a" >> "' + str(log) + '";; esac; done\n')
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)

    def run(sha256: str, *args: str, accept: bool = False):
        text = (OPERATORS / "versions.env").read_text()
        text = re.sub(r"^RABBITMQ_OPERATOR_SHA256=.*$", f"RABBITMQ_OPERATOR_SHA256={sha256}", text, flags=re.M)
        (tmp_path / "versions.env").write_text(text)
        log.write_text("")
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
        if accept:
            env["ERP_ACCEPT_UNPINNED"] = "1"
        out = subprocess.run(["bash", str(tmp_path / "install.sh"), *args], capture_output=True, text=True,
                             env=env, timeout=60)
        return out, log.read_text()

    return run


def test_install_script_applies_only_a_checked_manifest(sandbox):
    good = hashlib.sha256(b"kind: Manifest\n").hexdigest()
    out, calls = sandbox(good)
    assert out.returncode == 0, out.stderr
    versions = _versions()
    assert f"--version {versions['CNPG_CHART_VERSION']}" in calls
    assert "kubectl apply -f /" in calls and "kind: Manifest" in calls, "the checked file is applied, not the URL"
    out, calls = sandbox("0" * 64, "rabbitmq")
    assert out.returncode == 1 and "does not match" in out.stderr and "kubectl apply" not in calls
    out, calls = sandbox("", "rabbitmq")
    assert out.returncode == 1 and good in out.stderr and "kubectl apply" not in calls
    out, calls = sandbox("", "rabbitmq", accept=True)
    assert out.returncode == 0 and "kubectl apply" in calls
    out, _ = sandbox(good, "mystery")
    assert out.returncode == 2
