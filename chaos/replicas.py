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
        self.crash_dir = run_dir / "crash-points"  # a folder per service (mesh.faults.crash_point)
        for service in RUNNABLE:
            (self.crash_dir / service).mkdir(parents=True)
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
        # The first replica of each service migrates its schema alone; the second starts once it serves.
        for index in range(max(r.index for r in self.replicas) + 1):
            batch = [r for r in self.replicas if r.index == index]
            for r in batch:
                self._spawn(r)
            for r in batch:
                wait_serving(r.target, timeout)
        self._supervisor.start()

    def _spawn(self, r: Replica) -> None:
        env = {**self.env, "ERP_GRPC_PORT": str(r.port), "ERP_GRPC_HOST": "127.0.0.1",
               "ERP_CRASH_POINTS_DIR": str(self.crash_dir / r.service)}
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

    def crash_at(self, replicas: list[Replica], point: str, timeout: float = 30) -> Replica | None:
        """Makes the first of a service's `replicas` to pass `point` kill itself there. Armed for all
        of them at once: only the leading relay publishes and only the active consumer commits, and
        the work in flight when the fault is due passes through whichever that is. None when none
        passed it within `timeout` (the request is then withdrawn)."""
        flag = self.crash_dir / replicas[0].service / point
        with self._lock:
            before = {r.name: r.proc for r in replicas}
        flag.touch()
        end = time.monotonic() + timeout
        while flag.exists() and time.monotonic() < end:
            time.sleep(0.1)
        try:
            flag.unlink()
            return None  # withdrawn: no replica passed the point
        except FileNotFoundError:
            pass  # the replica that passed it removed it, and killed itself
        end = time.monotonic() + 10
        while time.monotonic() < end:
            with self._lock:
                for r in replicas:
                    proc = before[r.name]
                    if proc is not None and (proc.poll() is not None or r.proc is not proc):
                        return r
            time.sleep(0.05)
        raise RuntimeError(f"a replica of {replicas[0].service} took the {point} crash and did not die")

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
