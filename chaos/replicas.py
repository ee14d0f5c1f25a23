"""Two (or more) replicas of every service as processes, each on a port of its own, restarted when they
die, as Kubernetes restarts a crashed pod. Callers reach a service's replicas round-robin (`ipv4:a,b`):
a call that meets a dead replica fails fast and is retried by the workload with the same request id."""
from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from services import RUNNABLE
from services.devrun import wait_serving


@dataclasses.dataclass
class Replica:
    service: str
    index: int
    port: int
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started: float = 0.0  # monotonic time of its latest start

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"


class Mesh:
    def __init__(self, run_dir: Path, env: dict[str, str], replicas: int, ports) -> None:
        self.env = env
        self.crash_dir = run_dir / "crash-points"
        self.crash_dir.mkdir()
        self.replicas = [Replica(service, i, ports(), run_dir / f"{service}-{i}.log")
                         for service in RUNNABLE for i in range(replicas)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, name="supervisor", daemon=True)

    def targets(self) -> dict[str, str]:
        by_service: dict[str, list[str]] = {}
        for r in self.replicas:
            by_service.setdefault(r.service, []).append(r.target)
        return {s: "ipv4:" + ",".join(t) if len(t) > 1 else t[0] for s, t in by_service.items()}

    def start(self, timeout: float = 180) -> None:
        targets = self.targets()
        self.env.update({f"ERP_{s.upper()}_TARGET": t for s, t in targets.items()})
        self.env["ERP_CRASH_POINTS_DIR"] = str(self.crash_dir)
        # The first replica of each service migrates its schema alone; the second starts once it serves.
        for index in range(max(r.index for r in self.replicas) + 1):
            batch = [r for r in self.replicas if r.index == index]
            for r in batch:
                self._spawn(r)
            for r in batch:
                wait_serving(r.target, timeout)
        self._supervisor.start()

    def _spawn(self, r: Replica) -> None:
        env = {**self.env, "ERP_GRPC_PORT": str(r.port), "ERP_GRPC_HOST": "127.0.0.1"}
        r.started = time.monotonic()
        with open(r.log, "ab") as log:
            r.proc = subprocess.Popen([sys.executable, "-m", f"services.{r.service}"], env=env, stdout=log,
                                      stderr=subprocess.STDOUT)

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                for r in self.replicas:
                    # One that died within 5 s of its start waits 5 s (as Kubernetes backs off a crash loop).
                    if r.proc is not None and r.proc.poll() is not None and time.monotonic() - r.started > 5:
                        r.restarts += 1
                        self._spawn(r)

    def kill(self, r: Replica) -> None:
        """SIGKILL: no drain, no cleanup; the supervisor starts it again."""
        with self._lock:
            if r.proc is not None and r.proc.poll() is None:
                r.proc.send_signal(signal.SIGKILL)

    def crash_at(self, r: Replica, point: str, timeout: float = 30) -> bool:
        """Makes the replica kill itself the next time it passes `point`; False when it did not
        pass it within `timeout` (the request is then withdrawn)."""
        with self._lock:
            pid = r.proc.pid
        flag = self.crash_dir / f"{pid}.{point}"
        flag.touch()
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not flag.exists():
                return True
            time.sleep(0.1)
        flag.unlink(missing_ok=True)
        return False

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for r in self.replicas:
                if r.proc is not None and r.proc.poll() is None:
                    r.proc.send_signal(signal.SIGTERM)
            for r in self.replicas:
                if r.proc is None:
                    continue
                try:
                    r.proc.wait(15)
                except subprocess.TimeoutExpired:
                    r.proc.kill()
