"""What the chaos suite runs on, the faults it injects into it, and how it knows the mesh is quiet again."""
from __future__ import annotations

import dataclasses
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chaos import engines
from chaos.replicas import Mesh, Replica
from services.devrun import wait_serving

# The services whose relays publish, and whose consumers commit, under the workload (procurement
# only reorders and pays suppliers, which the workload does not do): crash points go there.
PUBLISHERS = ("orders", "inventory", "crm", "finance")
# Longer than the 3 s in which the run's 3 attempts (ERP_NOTIFICATION_MAX_ATTEMPTS) would be spent.
SMTP_OUTAGE_SECONDS = 8.0
BUSY_CONSUMERS = ("inventory", "orders", "crm", "finance", "notification")
CONSUMERS = ("inventory", "orders", "crm", "finance", "procurement", "notification")


@dataclasses.dataclass
class World:
    postgres: engines.Postgres
    redis: engines.Redis
    rabbitmq: engines.RabbitMQ
    proxy: subprocess.Popen
    proxy_port: int
    mesh: Mesh | None = None
    mail: Any = None  # the SMTP relay every email goes through (an aiosmtpd Controller)

    @classmethod
    def start(cls, run_dir: Path, replicas: int) -> World:
        postgres, redis, rabbitmq = engines.Postgres(run_dir), engines.Redis(run_dir), engines.RabbitMQ(
            run_dir, f"erp-chaos-{os.getpid()}")
        postgres.start()
        redis.start()
        rabbitmq.start()
        # PostgreSQL is reached through a proxy the suite owns, which can drop everything for a while.
        proxy = subprocess.Popen([sys.executable, "-m", "chaos.blackhole", str(postgres.port)],
                                 stdout=subprocess.PIPE, text=True)
        return cls(postgres, redis, rabbitmq, proxy, int(proxy.stdout.readline()))

    def dead_letters(self) -> int:
        """Dead letters of every service: those recorded in its dead_letters table, and those the broker
        dead-lettered into its .dlq that no tool has moved there yet. (Parked events, rows no queue
        took, are not dead letters: they are counted apart, see parked_events.)"""
        return sum(self._letters(service)["dead"] for service in CONSUMERS) + self._dlq_messages()

    def orders_driven_again(self) -> int:
        """Orders the saga deadline had to drive again (read from orders' table: a diagnosis, not
        part of the audit). Not zero means some answer was late past the deadline or lost."""
        import sqlalchemy as sa

        from mesh import db

        engine = db.create_engine(self.postgres.url_via(self.postgres.port, "erp"), schema="orders", pool_size=1)
        try:
            with engine.connect() as conn:
                return conn.execute(sa.text("SELECT count(*) FROM orders WHERE drives > 0")).scalar()
        finally:
            engine.dispose()

    def parked_events(self) -> int:
        return sum(self._letters(service)["parked"] for service in CONSUMERS)

    def _letters(self, service: str) -> dict[str, int]:
        from mesh import db
        from mesh.events import dead_letters

        engine = db.create_engine(self.postgres.url_via(self.postgres.port, "erp"), schema=service, pool_size=1)
        try:
            return dead_letters.counts(engine)
        finally:
            engine.dispose()

    def _dlq_messages(self) -> int:
        import pika

        conn = pika.BlockingConnection(pika.URLParameters(self.rabbitmq.url))
        try:
            ch = conn.channel()
            return sum(ch.queue_declare(f"erp.{s}.dlq", passive=True).method.message_count for s in CONSUMERS)
        finally:
            conn.close()

    def smtp_outage(self, seconds: float) -> None:
        """Stops the SMTP relay (its sessions drop, new connections are refused) and starts it again
        on the same port."""
        from aiosmtpd.controller import Controller

        handler, host, port = self.mail.handler, self.mail.hostname, self.mail.port
        self.mail.stop()
        time.sleep(seconds)
        self.mail = Controller(handler, hostname=host, port=port)
        self.mail.start()

    def stop(self) -> None:
        if self.mail is not None:
            self.mail.stop()
        if self.mesh is not None:
            self.mesh.stop()
        self.proxy.terminate()
        self.rabbitmq.kill()
        self.redis.kill()
        self.postgres.stop()


def schedule(profile: dict, rng: random.Random, blackhole_seconds: float) -> list[tuple]:
    """The faults of a run, in a random order: (kind, argument)."""
    plan = [("rabbitmq", None)] * profile["rabbitmq"] + [("postgres", None)] * profile["postgres"]
    plan += [("blackhole", blackhole_seconds)] * profile["blackhole"] + [("redis", None)] * profile["redis"]
    plan += [("smtp", SMTP_OUTAGE_SECONDS)] * profile.get("smtp", 0)
    kinds = ("kill", "relay.published", "consumer.committed")
    for n, service in enumerate(CONSUMERS):
        for i in range(profile["replica"]):
            kind = kinds[(n + i) % len(kinds)]
            if (kind == "relay.published" and service not in PUBLISHERS
                    or kind == "consumer.committed" and service not in BUSY_CONSUMERS):
                kind = "kill"
            plan.append((kind, service))
    rng.shuffle(plan)
    return plan


class Injector:
    """Fires the faults one after another, interleaved with the workload: the orders are split into
    len(plan) + 1 segments; fault k fires once every order of segment k has been sent, and segment k+1
    starts only once fault k has, so each fault meets work in flight and the next orders run through it."""

    def __init__(self, world: World, plan: list[tuple], orders: int, rng: random.Random) -> None:
        self.world, self.plan, self.orders, self.rng = world, plan, orders, rng
        self.log: list[str] = []
        self._fired = 0
        self._changed = threading.Condition()
        self._t0 = time.monotonic()

    def _segment(self, order_index: int) -> int:
        return order_index * (len(self.plan) + 1) // self.orders

    def gate(self, order_index: int) -> None:
        """Blocks order `order_index` until the faults before its segment have fired."""
        with self._changed:
            self._changed.wait_for(lambda: self._fired >= self._segment(order_index))

    def run(self, sent) -> None:
        for k, (kind, arg) in enumerate(self.plan):
            segment_end = next((i for i in range(self.orders) if self._segment(i) > k), self.orders)
            while sent() < segment_end:
                time.sleep(0.1)
            start = time.monotonic()
            with self._changed:
                self._fired += 1
                self._changed.notify_all()
            try:
                what = self._fire(kind, arg)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported
                what = f"{kind} {arg or ''}: could not inject ({exc!r})"
            self.log.append(f"{start - self._t0:7.1f} s  {what} ({time.monotonic() - start:.1f} s)")
            print(f"fault: {self.log[-1]}", flush=True)

    def _fire(self, kind: str, arg) -> str:
        w = self.world
        if kind == "rabbitmq":
            w.rabbitmq.kill()
            time.sleep(2)
            w.rabbitmq.start()
            return "RabbitMQ SIGKILLed and restarted"
        if kind == "postgres":
            w.postgres.restart_immediate()
            return "PostgreSQL restarted (immediate mode)"
        if kind == "blackhole":
            w.proxy.send_signal(signal.SIGUSR1)
            time.sleep(arg)
            w.proxy.send_signal(signal.SIGUSR2)
            return f"PostgreSQL black-holed for {arg:.0f} s"
        if kind == "smtp":
            w.smtp_outage(arg)
            return f"SMTP relay stopped for {arg:.0f} s"
        if kind == "redis":
            w.redis.kill()
            time.sleep(2)
            w.redis.start()
            return "Redis SIGKILLed and restarted"
        replicas = [r for r in w.mesh.replicas if r.service == arg]
        self.rng.shuffle(replicas)
        if kind == "kill":
            w.mesh.kill(replicas[0])
            self._back(replicas[0])
            return f"{replicas[0].name} SIGKILLed"
        crashed = w.mesh.crash_at(replicas, kind, timeout=40)
        if crashed is None:
            return f"{arg}: no replica passed {kind} within 40 s"
        self._back(crashed)
        return f"{crashed.name} crashed at {kind}"

    def _back(self, r: Replica) -> None:
        time.sleep(1)  # the supervisor notices within 0.5 s
        wait_serving(r.target, 120)


def wait_quiet(client, journal, timeout: float) -> float:
    """Seconds until no answered order is PENDING and stock, books and exposure stop moving for 10 s;
    -1 when that does not happen within `timeout`."""
    from chaos.workload import SCARCE_SKU, SKUS, WAREHOUSE
    from erp.orders.v1 import orders_pb2 as ord_pb

    start = time.monotonic()
    pending = [p["order_id"] for p in journal.placed.values() if "order_id" in p]
    last, still_since = None, time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            pending = [o for o in pending if client.get_order(o).status == ord_pb.ORDER_STATUS_PENDING]
            levels = client.batch_get_stock([(sku, WAREHOUSE) for sku in [*SKUS, SCARCE_SKU]]).stocks
            balance = client.trial_balance("EUR")
            now = (tuple((s.on_hand, s.reserved) for s in levels), balance.total_debit.amount)
        except Exception:  # noqa: BLE001 - a replica still restarting: ask again
            time.sleep(1)
            continue
        if pending or now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= 10:
            return time.monotonic() - start
        time.sleep(1)
    return -1.0


def sweep_namespace() -> None:
    """In the run's own network namespace, ends whatever is left in it (epmd, a stray child)."""
    if os.environ.get("ERP_CHAOS_NETNS") != "1":
        return
    mine = os.readlink("/proc/self/ns/net")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            if os.readlink(f"/proc/{pid}/ns/net") == mine:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass
