"""The mesh as `make run` starts it: each service its own process, driven only
through the generated stubs (and the `erp` command line), on the embedded event bus
and on RabbitMQ."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from erp.orders.v1 import orders_pb2 as pb
from erp.procurement.v1 import procurement_pb2 as proc_pb
from erp_client import demo, walkthrough
from erp_client.client import ErpClient, Line
from services import PORTS, RUNNABLE
from services.devrun import free_ports, start_mail_sink, start_mesh, stop_mesh, wait_serving

pytestmark = pytest.mark.e2e


def free_port_pair() -> int:
    """A free port whose successor is free too, below the ephemeral range (free_ports says why)."""
    while True:
        port = free_ports(1)[0]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port


@pytest.fixture
def processes(engines, tmp_path):
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    mail, smtp_url = start_mail_sink(tmp_path / "mail")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update(ERP_DATABASE_URL=engines.database_url, ERP_REDIS_URL=engines.redis_url,
               ERP_AMQP_URL=engines.amqp_url, ERP_EVENT_TRANSPORT=engines.transport,
               ERP_AMQP_NAMESPACE=engines.namespace, ERP_CACHE_PREFIX=engines.namespace,
               ERP_DATA_DIR=str(tmp_path), ERP_LOG_FORMAT="text", ERP_RELAY_POLL_SECONDS="0.05",
               ERP_SHUTDOWN_GRACE_SECONDS="3", ERP_SMTP_URL=smtp_url)
    metrics_ports = dict(zip(RUNNABLE, free_ports(len(RUNNABLE)), strict=True))
    started = start_mesh(RUNNABLE, env, ports=ports, metrics_ports=metrics_ports)
    for name, proc, _ in started:
        proc.metrics_port = metrics_ports[name]
    try:
        for _, _, target in started:
            wait_serving(target, timeout=60)
        yield started, ports
    finally:
        stop_mesh(started)
        mail.stop()


def client_for(ports) -> ErpClient:
    return ErpClient(**{f"{name}_target": f"127.0.0.1:{ports[name]}" for name in RUNNABLE})


@pytest.mark.parametrize("engines", ["pgbus-embedded", "amqp-external"], indirect=True)
def test_orders_cross_the_services_as_processes(processes, tmp_path):
    started, ports = processes
    with client_for(ports) as erp:
        assert demo.load(erp) == len(demo.PRODUCTS)
        assert demo.load(erp) == len(demo.PRODUCTS)  # loading twice changes nothing
        before = erp.get_stock("CHAIR-OAK", "MAIN")
        assert (before.on_hand, before.reserved) == (120, 0)
        adjusted = erp.adjust_stock("CHAIR-OAK", "MAIN", -20, reason="damaged in transit")
        assert (adjusted.on_hand, adjusted.available) == (100, 100)
        order = erp.place_order("CUST-1", [Line("CHAIR-OAK", 4, "89.90"), Line("LAMP-LED", 2, "24.50"),
                                           Line("SCREWS-4MM", 10, "3.20", "EAST")])
        confirmed = erp.wait_for_order(order.order_id, timeout=30)
        assert confirmed.status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED)
        assert erp.get_order(order.order_id).total.amount == "440.60"
        assert erp.get_stock("CHAIR-OAK", "MAIN").reserved == 4
        assert erp.get_stock("SCREWS-4MM", "EAST").available == 490
        too_many = erp.place_order("CUST-2", [Line("DESK-150", 11, "349.00", "EAST")])
        rejected = erp.wait_for_order(too_many.order_id, timeout=30)
        assert rejected.status == pb.ORDER_STATUS_REJECTED
        assert erp.get_stock("DESK-150", "EAST").reserved == 0
        # The walk-through `erp demo` prints: placement to payment, every service's view.
        printed: list[str] = []
        done = walkthrough.run(erp, "CUST-1", out=printed.append)
        assert done.status == pb.ORDER_STATUS_COMPLETED, "\n".join(printed)
        assert any("trial balance" in line for line in printed)
        # ...then procure to pay: the order above took CHAIR-OAK below its reorder point (100), so procurement
        # raised a draft; it is approved, received in two deliveries, billed, matched and paid.
        po = walkthrough.procure_to_pay(erp, "CUST-1", out=printed.append)
        assert (po.receipt_status, po.billing_status) == (proc_pb.RECEIPT_STATUS_FULL, proc_pb.BILLING_STATUS_FULL), \
            "\n".join(printed)
        balance = erp.trial_balance("EUR")
        assert balance.total_debit.amount == balance.total_credit.amount
        # Emails went through a real SMTP server.
        assert erp.wait_for(lambda: list((tmp_path / "mail").glob("*.eml")), bool, timeout=30)
    # Each process serves its own /metrics (they used to fight over one ERP_METRICS_PORT), counting its calls.
    for name, proc, _ in started:
        with urllib.request.urlopen(f"http://127.0.0.1:{proc.metrics_port}/metrics", timeout=5) as response:
            body = response.read()
        assert b"# HELP grpc_server_handled_total" in body, name
        if name in ("inventory", "orders", "procurement"):  # called above
            assert b'grpc_server_handled_total{grpc_code="OK",grpc_method="' in body, name


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_sigterm_drains_and_exits_cleanly(processes):
    started, _ = processes
    for _, proc, _ in started:
        proc.send_signal(signal.SIGTERM)
    for name, proc, _ in started:
        assert proc.wait(timeout=15) == 0, f"{name} exited with {proc.returncode}"


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_the_erp_command_line_reaches_a_running_mesh(processes):
    _, ports = processes
    env = {**os.environ, **{f"ERP_{name.upper()}_TARGET": f"127.0.0.1:{ports[name]}" for name in RUNNABLE}}
    cli = [sys.executable, "-m", "erp_client.cli"]
    out = subprocess.run([*cli, "health"], env=env, capture_output=True, text=True, timeout=30)
    # every service answers; the gateway is not part of this mesh, so health says so and exits 1
    status = dict(line.split()[:2] for line in out.stdout.splitlines() if line.strip())
    assert status == {**dict.fromkeys(RUNNABLE, "SERVING"), "gateway": "UNAVAILABLE"}, out.stdout
    assert out.returncode == 1
    missing = subprocess.run([*cli, "stock", "get", "NOPE", "MAIN"], env=env, capture_output=True, text=True,
                             timeout=30)
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr


# The signal lands on a worker thread, as the kernel may choose when gRPC's and psycopg's
# threads are running; the main thread must still notice it.
SIGNAL_ON_A_WORKER_THREAD = """
import signal, threading, time
from mesh.service import wait_for_stop_signal
def worker():
    time.sleep(0.5)
    signal.pthread_kill(threading.get_ident(), signal.SIG{name})
    time.sleep(60)
threading.Thread(target=worker, daemon=True).start()
print(wait_for_stop_signal().name, flush=True)
"""


@pytest.mark.parametrize("name", ["INT", "TERM"])
def test_a_stop_signal_delivered_to_another_thread_still_stops_the_service(name):
    out = subprocess.run([sys.executable, "-c", SIGNAL_ON_A_WORKER_THREAD.format(name=name)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"SIG{name}"


def _rpc_count(metrics_port: int) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("grpc_server_handled_total{") and "GetStock" in line)


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(x) for x in f.read().split()]


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_erp_processes_share_one_port_and_stop_together(engines, tmp_path):
    import time

    import grpc

    from erp.inventory.v1 import inventory_pb2 as inv
    from erp.inventory.v1 import inventory_pb2_grpc as inv_grpc

    grpc_port, metrics_port = free_ports(1)[0], free_port_pair()  # process i serves metrics on port + i
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update(ERP_DATABASE_URL=engines.database_url, ERP_REDIS_URL=engines.redis_url, ERP_EVENT_TRANSPORT="postgres",
               ERP_DATA_DIR=str(tmp_path), ERP_LOG_FORMAT="text", ERP_GRPC_PORT=str(grpc_port),
               ERP_METRICS_PORT=str(metrics_port), ERP_PROCESSES="2", ERP_SHUTDOWN_GRACE_SECONDS="2")
    parent = subprocess.Popen([sys.executable, "-m", "services.inventory"], env=env)
    try:
        wait_serving(f"127.0.0.1:{grpc_port}", timeout=60)
        children = _children(parent.pid)
        assert len(children) == 2
        with ErpClient(f"127.0.0.1:{grpc_port}") as erp:
            erp.create_warehouse("MAIN", "Main")
            erp.create_product("SKU-1", "A product")
        for _ in range(40):  # a new connection each time: the kernel spreads them over the processes
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                inv_grpc.InventoryServiceStub(channel).GetStock(inv.GetStockRequest(sku="SKU-1", warehouse_code="MAIN"),
                                                                timeout=10)
        served = [_rpc_count(metrics_port + i) for i in range(2)]
        assert sum(served) == 40 and min(served) > 0, served
        # One process dying takes the rest down with it: the pod restarts whole.
        os.kill(children[0], signal.SIGKILL)
        assert parent.wait(timeout=30) == 1
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{children[1]}") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{children[1]}")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_sigterm_stops_every_erp_process(engines, tmp_path):
    grpc_port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update(ERP_DATABASE_URL=engines.database_url, ERP_REDIS_URL=engines.redis_url, ERP_EVENT_TRANSPORT="postgres",
               ERP_DATA_DIR=str(tmp_path), ERP_LOG_FORMAT="text", ERP_GRPC_PORT=str(grpc_port),
               ERP_PROCESSES="2", ERP_SHUTDOWN_GRACE_SECONDS="2")
    parent = subprocess.Popen([sys.executable, "-m", "services.orders"], env=env)
    try:
        wait_serving(f"127.0.0.1:{grpc_port}", timeout=60)
        children = _children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=30) == 0
        assert not [c for c in children if os.path.exists(f"/proc/{c}")]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
