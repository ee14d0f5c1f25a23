"""What the gateway adds to a call: GetStock direct to inventory vs through the gateway
(gRPC edge and REST edge), in one run, on one machine.

    .venv/bin/python -m loadtests.gateway_latency [--seconds 5] [--concurrency 16]

Starts inventory and the gateway as processes (external engines when reachable, else the
embedded ones), inventory with ERP_INTERNAL_AUTH on, so both paths pay for the internal
token check: direct calls carry a token minted here, gateway calls a development access
token. Sequential calls (one in flight) give the added latency; `--concurrency` calls in
flight give the throughput. Cache hits only (one SKU): the figure is the gateway's cost.
"""
from __future__ import annotations

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import grpc
import psutil

from erp.inventory.v1 import inventory_pb2 as pb
from loadtests import accounting, localmesh
from mesh import identity

GETSTOCK = "/erp.inventory.v1.InventoryService/GetStock"
SECRET = "bench-internal-secret-" + uuid.uuid4().hex


def seed(target: str) -> None:
    def call(method: str, request, response_type):
        token = identity.mint(SECRET, identity.Identity("bench", frozenset({"inventory.write"})), method)
        with grpc.insecure_channel(target) as channel:
            channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=response_type.FromString)(
                request, metadata=[(identity.HEADER, token)], timeout=10)

    prefix = "/erp.inventory.v1.InventoryService/"
    call(prefix + "CreateProduct", pb.CreateProductRequest(product=pb.Product(sku="BENCH-1", name="b",
                                                                              unit_of_measure="EA")),
         pb.CreateProductResponse)
    call(prefix + "CreateWarehouse", pb.CreateWarehouseRequest(warehouse=pb.Warehouse(code="MAIN", name="m")),
         pb.CreateWarehouseResponse)
    call(prefix + "AdjustStock", pb.AdjustStockRequest(request_id=uuid.uuid4().hex, sku="BENCH-1",
                                                       warehouse_code="MAIN", quantity_delta=5, reason="bench"),
         pb.AdjustStockResponse)


def measure(one_call, seconds: float, concurrency: int, servers: dict) -> dict:
    """Latencies of sequential calls, then calls/s with `concurrency` threads, and the CPU each server
    process ({name: psutil.Process}) spent per call over both phases (it holds still when the machine's
    speed does not)."""

    for _ in range(50):
        one_call()  # warm up: connections, caches
    cpu_before = {name: sum(p.cpu_times()[:2]) for name, p in servers.items()}
    latencies = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        one_call()
        latencies.append(time.perf_counter() - t0)
    done = [0] * concurrency
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        while time.perf_counter() < stop:
            one_call()
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    calls = len(latencies) + sum(done)
    cpu = {name: (sum(p.cpu_times()[:2]) - cpu_before[name]) * 1000 / calls for name, p in servers.items()}
    latencies.sort()
    return {"p50": statistics.median(latencies) * 1000, "p99": latencies[int(len(latencies) * 0.99)] * 1000,
            "rps": sum(done) / seconds, "cpu_ms": cpu}


def server_pids(targets: dict) -> dict[int, str]:
    """{pid: service} of the processes listening on the targets' ports."""
    service_of = {int(t.rsplit(":", 1)[1]): name for name, t in targets.items()}
    return {c.pid: service_of[c.laddr.port] for c in psutil.net_connections("tcp")
            if c.status == "LISTEN" and c.laddr.port in service_of and c.pid}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    eng = localmesh.engines()
    namespace = "erpgwbench-" + uuid.uuid4().hex[:8]
    eng = eng.database(namespace.replace("-", "_"))
    data_dir = Path(tempfile.mkdtemp(prefix="erp-gw-bench-"))
    http_port = localmesh.free_ports(1)[0]
    env = {"ERP_INTERNAL_AUTH": "true", "ERP_INTERNAL_TOKEN_SECRET": SECRET, "ERP_GATEWAY_DEV_ISSUER": "true",
           "ERP_GATEWAY_HTTP_PORT": str(http_port), "ERP_DATA_DIR": str(data_dir),
           "ERP_GATEWAY_RATE_LIMITS": "read=1000000/1000000,write=1000000/1000000,report=1000000/1000000"}
    print(f"engines: {eng.description}", flush=True)
    with localmesh.mesh(eng, namespace, services=("inventory", "gateway"), extra_env=env) as targets:
        seed(targets["inventory"])
        request = pb.GetStockRequest(sku="BENCH-1", warehouse_code="MAIN").SerializeToString()
        # `make token`'s command, as a user would run it: the load tests use no part of a service's code
        access_token = subprocess.run([sys.executable, "-m", "services.gateway.devtoken", "inventory.read"],
                                      env={**os.environ, "ERP_DATA_DIR": str(data_dir)}, check=True,
                                      capture_output=True, text=True).stdout.strip()
        direct_channel = grpc.insecure_channel(targets["inventory"])
        gateway_channel = grpc.insecure_channel(targets["gateway"])
        direct, via_gateway = direct_channel.unary_unary(GETSTOCK), gateway_channel.unary_unary(GETSTOCK)
        path = "/v1/warehouses/MAIN/stock/BENCH-1"
        reader = identity.Identity("bench", frozenset({"inventory.read"}))

        def direct_call():  # what the gateway would send: a fresh internal token per call
            direct(request, metadata=[(identity.HEADER, identity.mint(SECRET, reader, GETSTOCK))], timeout=5)

        def gateway_grpc_call():
            via_gateway(request, metadata=[("authorization", f"Bearer {access_token}")], timeout=5)

        local = threading.local()

        def gateway_rest_call():  # http.client, not requests: the client's own cost stays small
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
            local.conn.request("GET", path, headers={"Authorization": f"Bearer {access_token}"})
            response = local.conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"REST GetStock answered {response.status}")

        servers = {name: psutil.Process(pid) for pid, name in server_pids(targets).items()}
        rows = {"direct to inventory (gRPC)": measure(direct_call, args.seconds, args.concurrency, servers),
                "through the gateway (gRPC)": measure(gateway_grpc_call, args.seconds, args.concurrency, servers),
                "through the gateway (REST)": measure(gateway_rest_call, args.seconds, args.concurrency, servers)}
        direct_channel.close()
        gateway_channel.close()
    base = rows["direct to inventory (gRPC)"]
    print(f"\nGetStock, cache hit; sequential p50/p99, then {args.concurrency} in flight (cpu count {os.cpu_count()})")
    print(f"{'path':<30} {'p50 ms':>8} {'p99 ms':>8} {'added p50':>10} {'req/s':>8}  server CPU ms/call")
    for name, row in rows.items():
        cpu = ", ".join(f"{server} {ms:.3f}" for server, ms in row["cpu_ms"].items())
        print(f"{name:<30} {row['p50']:>8.2f} {row['p99']:>8.2f} {row['p50'] - base['p50']:>+10.2f} {row['rps']:>8.0f}"
              f"  {cpu}")
    via = rows["through the gateway (gRPC)"]
    print(f"verdict (issue 18 targets, gRPC edge; load average {os.getloadavg()[0]:.1f}):")
    for verdict in accounting.verdicts(accounting.Figures(gateway_added_p50_ms=via["p50"] - base["p50"],
                                                          gateway_vs_direct=via["rps"] / base["rps"])):
        if "gateway" in verdict.what:
            print(verdict.line())
    localmesh.drop_database(eng)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
