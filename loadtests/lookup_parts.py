"""Where GetStock's distance to the bare echo goes, in the same run (`make bench`, right after row 2).

Rows 1 and 2 say how far a cached GetStock is from a bare echo; these rows say what that distance is
made of. Two stand-ins answer GetStock with a constant and nothing behind it, each on a server built
as the services' are (mesh.service.grpc_server: its workers, options and limit of calls), measured in
turns with the echo and GetStock itself (echo, 1b, 1w, GetStock, GetStock, 1w, ...):
  1b  bare: grpc's own cost of a protobuf method (decoding the request, encoding the answer);
  1w  behind the mesh's per-call wrap (mesh.interceptors.ServerCalls: ids, deadline, caller, metrics,
      the NUL check, error mapping, the request-id trailer), as every method of every service is.
Each row's notes give its throughput over the echo's; the line after them splits what one GetStock
call costs its server beyond an echo call (CPU from /proc over each row, which holds stiller than
throughput over one-second slices) into grpc's protobuf method (1b - echo), the mesh's per-call work
(1w - 1b) and GetStock's own handler, its checks, the cache and its answer (GetStock - 1w), all
from the same turns.
"""
from __future__ import annotations

import dataclasses

ANSWER = {"sku": "BENCH-0000001", "warehouse_code": "MAIN", "on_hand": 1_000_000, "available": 1_000_000,
          "version": 1}


def serve(port: int, wrapped: bool) -> None:
    """One stand-in (`wrapped`: behind the mesh's per-call wrap) on 127.0.0.1:port, for an hour at most."""
    from erp.inventory.v1 import inventory_pb2 as pb
    from erp.inventory.v1 import inventory_pb2_grpc
    from mesh import settings
    from mesh.interceptors import ServerCalls
    from mesh.service import grpc_server

    answer = pb.GetStockResponse(stock=pb.StockLevel(**ANSWER))

    class Constant(inventory_pb2_grpc.InventoryServiceServicer):
        def GetStock(self, request, context):  # noqa: N802 - the RPC's name
            return answer

    server = grpc_server(settings.load("inventory"))
    registry = ServerCalls(service="inventory").wrapping(server) if wrapped else server
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(Constant(), registry)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination(timeout=3600)


@dataclasses.dataclass(frozen=True)
class Split:
    """The server CPU of one call (µs) that GetStock spends beyond the echo's, by what spends it."""

    grpc_method: float
    mesh_wrap: float
    handler: float

    @property
    def total(self) -> float:
        return self.grpc_method + self.mesh_wrap + self.handler


def split(call_us: dict[str, float | None]) -> Split | None:
    """From the server CPU of one call of the echo, 1b ("bare"), 1w ("wrapped") and GetStock ("lookup");
    None when one was not read."""
    echo, bare, wrapped, lookup = (call_us.get(k) for k in ("echo", "bare", "wrapped", "lookup"))
    if echo is None or bare is None or wrapped is None or lookup is None:
        return None
    return Split(bare - echo, wrapped - bare, lookup - wrapped)


def lines(call_us: dict[str, float | None]) -> list[str]:
    """What the bench prints after rows 1b and 1w."""
    parts = split(call_us)
    if parts is None:
        return ["where GetStock's server CPU goes: not read (a row failed)"]
    return [f"server CPU per call: echo {call_us['echo']:.0f} µs, GetStock {call_us['lookup']:.0f} µs, "
            f"{parts.total:+.0f} of which grpc's protobuf method {parts.grpc_method:+.0f}, the mesh's per-call "
            f"wrap {parts.mesh_wrap:+.0f}, GetStock's own handler {parts.handler:+.0f} (rows 1b and 1w; each part "
            "moves by up to ~10 µs from run to run: read several runs)"]
