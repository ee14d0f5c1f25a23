"""The chaos suite's own PostgreSQL, Redis and RabbitMQ, started from the machine's server binaries in
data directories and on ports of the run's own, so that killing, restarting or black-holing them never
touches the shared servers. Each engine can be killed (SIGKILL) and started again on the same data."""
from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from services.devrun import free_ports

# In the run's own network namespace, the kernel hands out local ports for outgoing connections from
# 40000 up (chaos/__main__.py sets it), and the servers and replicas listen below: a replica started
# again later must find its port free, not taken by some connection's local end.
_LISTEN_PORTS = itertools.count(20000)


def free_port() -> int:
    if os.environ.get("ERP_CHAOS_NETNS") == "1":
        return next(_LISTEN_PORTS)
    return free_ports(1)[0]


def wait_port(port: int, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{what} did not open port {port} in {timeout:.0f} s")


def postgres_bindir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return candidates[-1].parent if candidates else None


def rabbitmq_server() -> Path | None:
    # Debian's /usr/sbin/rabbitmq-server switches to the rabbitmq user and its home; the script it
    # wraps runs the broker as the caller, with the RABBITMQ_* locations this suite sets.
    for path in ("/usr/lib/rabbitmq/bin/rabbitmq-server",):
        if os.access(path, os.X_OK):
            return Path(path)
    found = shutil.which("rabbitmq-server")
    return Path(found) if found else None


def missing_binaries() -> list[str]:
    """What this machine lacks to run the suite (empty: it can)."""
    missing = []
    if postgres_bindir() is None:
        missing.append("PostgreSQL server binaries (pg_ctl, initdb)")
    if shutil.which("redis-server") is None:
        missing.append("redis-server")
    if rabbitmq_server() is None:
        missing.append("rabbitmq-server")
    return missing


def _kill_group(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


class Postgres:
    """A cluster of its own. PostgreSQL refuses to run as root: there it runs as the `postgres`
    user when the machine has one."""

    def __init__(self, root: Path) -> None:
        self.bindir = postgres_bindir()
        self.data = root / "pgdata"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            root.chmod(0o755)
        self.data.mkdir(parents=True)
        self._own(self.data)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n"
                       "max_connections = 500\nfsync = off\nfull_page_writes = off\nshared_buffers = 128MB\n")
        self.log.touch()
        self._own(self.log)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_via(self, port: int, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def _own(self, path: Path) -> None:
        if self.user:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def restart_immediate(self) -> None:
        """Stops without a checkpoint (as a crash would) and starts again: crash recovery on start."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        self.start()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass


class Redis:
    def __init__(self, root: Path) -> None:
        self.dir = root / "redis"
        self.dir.mkdir()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port, 30, "redis-server")

    def kill(self) -> None:
        _kill_group(self.proc)


class RabbitMQ:
    """A node of its own: its own node name, Mnesia and log folders, ports and no plugins (so it
    opens no management port). Killed with SIGKILL, it recovers its quorum queues on start."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / "rabbitmq"
        self.root.mkdir()
        (self.root / "enabled_plugins").write_text("[].\n")
        self.port = free_port()
        self.env = {
            **os.environ,
            "HOME": str(self.root),  # the Erlang cookie goes here
            "RABBITMQ_NODENAME": f"{name}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(self.root / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.root / "rabbitmq"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.root / "advanced.config"),
            "RABBITMQ_PID_FILE": str(self.root / "pid"),
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 120) -> None:
        out = open(self.root / "server.out", "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen([str(rabbitmq_server())], env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.root)
        self._wait_amqp(timeout)

    def _wait_amqp(self, timeout: float) -> None:
        import pika

        end = time.monotonic() + timeout
        while True:
            try:
                pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
                return
            except Exception:  # noqa: BLE001 - not up yet, whatever the reason
                if self.proc.poll() is not None or time.monotonic() > end:
                    raise TimeoutError(f"RabbitMQ did not answer on {self.port}; see {self.root}/server.out") from None
                time.sleep(0.5)

    def kill(self) -> None:
        _kill_group(self.proc)
