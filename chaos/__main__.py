"""The chaos suite: the mesh with two replicas of every service, on PostgreSQL, Redis and RabbitMQ that
the suite starts itself, under a journaled workload, while it kills and black-holes what it runs on.
It then audits over gRPC and prints a table of what must be zero; the exit status is 1 when any count
is not.

    make chaos                              # the full run: 5,000 orders, every fault several times
    .venv/bin/python -m chaos --short       # a few hundred orders, each fault once (part of `make test`)

Where it can, it runs in a private network namespace (`unshare -n`), so its servers' ports and its
RabbitMQ node's epmd are its own; elsewhere it takes free ports on 127.0.0.1. Everything it starts
lives under its run folder (printed), which it keeps when the run fails.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chaos import engines, faults  # noqa: E402
from chaos.audit import CHECKS, audit  # noqa: E402
from chaos.replicas import Mesh  # noqa: E402
from chaos.workload import Journal, Workload, customers  # noqa: E402

PROFILES = {
    # orders, RabbitMQ kills, replica kills per service, PostgreSQL restarts, black holes, Redis kills,
    # SMTP relay outages
    "short": dict(orders=300, rabbitmq=1, replica=1, postgres=1, blackhole=1, redis=1, smtp=1),
    "full": dict(orders=5000, rabbitmq=5, replica=5, postgres=2, blackhole=1, redis=1, smtp=2),
}


def reexec_in_private_network() -> None:
    """Runs this same command again inside a new network namespace, when the machine allows it."""
    if os.environ.get("ERP_CHAOS_NETNS") or os.environ.get("ERP_CHAOS_NO_NETNS"):
        return
    unshare = shutil.which("unshare")
    if not unshare or subprocess.run([unshare, "-n", "true"], capture_output=True).returncode != 0:
        print("note: no private network namespace here (unshare -n): using free ports on 127.0.0.1", flush=True)
        return
    env = {**os.environ, "ERP_CHAOS_NETNS": "1"}
    script = 'ip link set lo up && echo "40000 60999" > /proc/sys/net/ipv4/ip_local_port_range && exec "$@"'
    # Its own PID namespace too, with the run as its init: however the run ends (even SIGKILL), the
    # kernel then ends every server and replica it started.
    pid_ns = ["-p", "-f", "-m", "--mount-proc", "--kill-child"]
    if subprocess.run([unshare, "-n", *pid_ns, "true"], capture_output=True).returncode != 0:
        pid_ns = []
    os.execvpe(unshare, [unshare, "-n", *pid_ns, "--", "sh", "-c", script, "sh", sys.executable, "-m", "chaos",
                         *sys.argv[1:]], env)


def on_sigterm(*_) -> None:
    """`kill` or a timeout: as the init of its own PID namespace the run just exits, and the kernel
    ends every process it started; elsewhere it unwinds through its clean-up."""
    if os.getpid() == 1:
        os._exit(143)
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the short run (CI): each fault once")
    parser.add_argument("--orders", type=int, help="orders to place (default: the profile's)")
    parser.add_argument("--concurrency", type=int, default=12, help="orders in flight")
    parser.add_argument("--replicas", type=int, default=2, help="processes per service")
    parser.add_argument("--blackhole-seconds", type=float, default=60.0)
    parser.add_argument("--settle-timeout", type=float, default=420.0, help="seconds to wait for quiescence")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--keep", action="store_true", help="keep the run folder even when the run passes")
    args = parser.parse_args(argv)
    missing = engines.missing_binaries()
    if missing:
        print(f"SKIPPED: this machine lacks {', '.join(missing)}; the chaos suite starts its own servers")
        return 0
    reexec_in_private_network()
    signal.signal(signal.SIGTERM, on_sigterm)
    profile = dict(PROFILES["short" if args.short else "full"])
    if args.orders:
        profile["orders"] = args.orders
    run_dir = Path(tempfile.mkdtemp(prefix="erp-chaos-"))
    print(f"chaos run {'short' if args.short else 'full'}: {profile}; seed {args.seed}; folder {run_dir}", flush=True)
    try:
        ok = run(args, profile, run_dir)
    finally:
        faults.sweep_namespace()
    if ok and not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ok else 1


def run(args, profile: dict, run_dir: Path) -> bool:
    from erp_client import ErpClient
    from mesh import db
    from services.devrun import start_mail_sink

    started = time.monotonic()
    world = faults.World.start(run_dir, args.replicas)
    world.mail, smtp_url = start_mail_sink(run_dir / "mail")
    try:
        db.ensure_database(world.postgres.url_via(world.postgres.port, "erp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
        env.update({
            "ERP_DATABASE_URL": world.postgres.url_via(world.proxy_port, "erp"), "ERP_REDIS_URL": world.redis.url,
            "ERP_AMQP_URL": world.rabbitmq.url, "ERP_EVENT_TRANSPORT": "amqp", "ERP_AMQP_NAMESPACE": "erp",
            "ERP_SMTP_URL": smtp_url, "ERP_LOG_LEVEL": "WARNING", "ERP_LOG_FORMAT": "text",
            "ERP_DATA_DIR": str(run_dir / "data"),
            # An order whose saga lost an event is driven again sooner than in production (300 s),
            # so that the run can wait for it.
            "ERP_ORDER_PENDING_DEADLINE_SECONDS": "90", "ERP_ORDER_PENDING_SWEEP_SECONDS": "10",
            # 3 attempts (1 s, then 2 s apart): a dispatcher that spent attempts on the SMTP relay's
            # outage would fail every email due during it, and the audit would count them.
            "ERP_NOTIFICATION_MAX_ATTEMPTS": "3",
        })
        world.mesh = Mesh(run_dir, env, args.replicas, engines.free_port)
        world.mesh.start()
        print(f"mesh up: {args.replicas} replicas of {len(world.mesh.replicas) // args.replicas} services "
              f"in {time.monotonic() - started:.0f} s", flush=True)
        with ErpClient(**{f"{s}_target": t for s, t in world.mesh.targets().items()}, timeout=10) as client:
            journal = Journal(run_dir / "journal.jsonl")
            customer_ids = customers(40)
            workload = Workload(client, journal, customer_ids)
            workload.seed()
            schedule = faults.schedule(profile, random.Random(args.seed), args.blackhole_seconds)
            injector = faults.Injector(world, schedule, profile["orders"], random.Random(args.seed))
            injector_thread = threading.Thread(target=injector.run, args=(lambda: len(journal.placed),),
                                               daemon=True)
            injector_thread.start()
            load_start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                rng = random.Random(args.seed)
                seeds = [rng.getrandbits(64) for _ in range(profile["orders"])]
                list(pool.map(lambda i: (injector.gate(i), workload.journey(seeds[i])), range(len(seeds))))
            load_seconds = time.monotonic() - load_start
            injector_thread.join()
            settled = faults.wait_quiet(client, journal, args.settle_timeout)
            found = audit(client, journal, customer_ids, world.dead_letters)
            journal.close()
        report(found, workload.stats, injector.log, load_seconds, settled, world.mesh)
        print(f"parked events (a consumed type no queue took past the grace period): {world.parked_events()}; "
              f"orders driven again by the saga deadline: {world.orders_driven_again()}")
        return settled >= 0 and not any(found.values())
    finally:
        world.stop()


def report(found: dict, stats: dict, fault_log: list, load_seconds: float, settled: float, mesh: Mesh) -> None:
    print(f"\nworkload: {stats} in {load_seconds:.0f} s; "
          + (f"quiet {settled:.0f} s later" if settled >= 0 else "NOT quiet before the settle timeout"))
    print("faults:")
    for line in fault_log:
        print(f"  {line}")
    print("restarts: " + ", ".join(f"{r.name} {r.restarts}" for r in mesh.replicas if r.restarts))
    print(f"\n  {'check':<40} {'count':>7}")
    for name in CHECKS:
        print(f"  {name:<40} {found[name]:>7}")
    print("verdict:", "PASS" if settled >= 0 and not any(found.values()) else "FAIL", flush=True)


if __name__ == "__main__":
    sys.exit(main())
