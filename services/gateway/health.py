"""The standard health check (grpc.health.v1.Health) at the gateway, per service.

"" and erp.gateway are the gateway itself (NOT_SERVING once it drains). Every service the
gateway routes, and lists in server reflection, is answered from the owning service's own
health check for that name, asked with a short deadline and kept for a moment, so a load
balancer or `grpc_health_probe -addr=gateway:50050 -service=erp.orders.v1.OrderService` sees
what a caller through the gateway would get. An upstream that cannot be asked (unreachable,
too slow, or not serving that name) is NOT_SERVING, not an RPC error: the gateway is up and
knows the service, so the probe's answer is about the service, and every probe reads
NOT_SERVING as "send no traffic". Names the gateway does not route: NOT_FOUND (Check) or
SERVICE_UNKNOWN (Watch), as the protocol says.
"""
from __future__ import annotations

import asyncio
import logging
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.gateway.upstream import Upstreams

log = logging.getLogger("gateway.health")
Status = health_pb2.HealthCheckResponse
SERVING, NOT_SERVING = Status.SERVING, Status.NOT_SERVING


class GatewayHealth(health.aio.HealthServicer):
    def __init__(self, upstreams: Upstreams, routed: dict[str, str], timeout_seconds: float = 1.0,
                 cache_seconds: float = 1.0, watch_interval_seconds: float = 2.0) -> None:
        """routed: gRPC service name -> the domain (upstream) that owns it."""
        super().__init__()
        self.upstreams, self.routed = upstreams, dict(routed)
        self.timeout, self.cache_seconds, self.watch_interval = timeout_seconds, cache_seconds, watch_interval_seconds
        self._cache: dict[str, tuple[float, int]] = {}  # name -> (monotonic expiry, status)
        self._asking: dict[str, asyncio.Future] = {}  # one question per name in flight, shared by its askers
        self._draining = False

    async def enter_graceful_shutdown(self) -> None:
        self._draining = True
        await super().enter_graceful_shutdown()

    async def Check(self, request: health_pb2.HealthCheckRequest, context):
        if request.service not in self.routed:
            return await super().Check(request, context)
        remaining = context.time_remaining()
        return Status(status=await self.upstream_status(request.service, remaining))

    async def Watch(self, request: health_pb2.HealthCheckRequest, context):
        if request.service not in self.routed:
            return await super().Watch(request, context)
        last = None
        while True:  # until the caller goes away (the call is cancelled)
            status = await self.upstream_status(request.service)
            if status != last:
                await context.write(Status(status=status))
                last = status
            await asyncio.sleep(self.watch_interval)

    async def upstream_status(self, name: str, remaining: float | None = None) -> int:
        if self._draining:
            return NOT_SERVING
        cached = self._cache.get(name)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        asking = self._asking.get(name)
        if asking is None:
            timeout = self.timeout if remaining is None else max(0.05, min(self.timeout, remaining - 0.05))
            asking = self._asking[name] = asyncio.ensure_future(self._ask(name, timeout))
            asking.add_done_callback(lambda _f: self._asking.pop(name, None))
        return await asyncio.shield(asking)  # a caller giving up does not cancel the others' question

    async def _ask(self, name: str, timeout: float) -> int:
        if self.routed[name] not in self.upstreams.targets:
            return NOT_SERVING  # routed, but no target configured: nothing serves it
        stub = health_pb2_grpc.HealthStub(self.upstreams.channel(self.routed[name]))
        try:
            # types-grpcio-health-checking's HealthStub declares no methods
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=name),  # type: ignore[attr-defined]
                                     timeout=timeout)
            status = SERVING if reply.status == SERVING else NOT_SERVING
        except grpc.aio.AioRpcError as exc:
            status = NOT_SERVING
            log.debug("health of %s upstream: %s %s", name, exc.code().name, exc.details())
        previous = self._cache.get(name)
        if previous is not None and previous[1] != status:
            log.warning("%s upstream is %s", name, Status.ServingStatus.Name(status))
        self._cache[name] = (time.monotonic() + self.cache_seconds, status)
        return status
