"""gRPC at the edge: a generic handler that admits each call (edge.py) and forwards it
to the owning service as raw bytes, with its deadline (capped), cancellation,
metadata (minus identity claims) and the service's status, details and trailers.
Unknown and internal-only methods get UNIMPLEMENTED."""
from __future__ import annotations

import logging
import time

import grpc
from grpc_status import rpc_status

from mesh import identity, metrics, tracing
from mesh.errors import to_status
from services.gateway.edge import Edge, Refusal, stripped
from services.gateway.upstream import HIDDEN_CODES, STATUS_DETAILS_KEY, UpstreamError, Upstreams

log = logging.getLogger("gateway.grpc")


class GrpcEdge(grpc.GenericRpcHandler):
    def __init__(self, edge: Edge, upstreams: Upstreams, max_deadline_seconds: float) -> None:
        self.edge, self.upstreams, self.max_deadline = edge, upstreams, max_deadline_seconds
        # Per method, built on its first call (the server asks for a handler on every call):
        # the handler, and the metric children of the method
        self._handlers: dict[str, grpc.RpcMethodHandler] = {}
        self._served: dict[str, metrics.RpcServed] = {}

    def service(self, handler_call_details):
        method = handler_call_details.method
        handler = self._handlers.get(method)
        if handler is None:
            if self.edge.rule(method) is None:
                return None  # UNIMPLEMENTED, as for any method the server does not know

            async def forward(request: bytes, ctx: grpc.aio.ServicerContext):
                return await self.forward(method, request, ctx)

            handler = self._handlers[method] = grpc.unary_unary_rpc_method_handler(forward)  # raw bytes
        return handler

    def timeout(self, ctx) -> float:
        remaining = ctx.time_remaining()
        return self.max_deadline if remaining is None else min(remaining, self.max_deadline)

    async def forward(self, method: str, request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        if not tracing.enabled():
            return await self._counted(method, request, ctx)
        # The trace context is text metadata (binary values are only ever under -bin keys).
        text = {k: v for k, v in ctx.invocation_metadata() or () if isinstance(v, str)}
        with tracing.server_span(method, text, "gateway"):
            return await self._counted(method, request, ctx)

    async def _counted(self, method: str, request: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        served = self._served.get(method)
        if served is None:
            served = self._served[method] = metrics.rpc_served(method)
        served.started.inc()
        started, outcome = time.perf_counter(), ["CANCELLED"]
        try:
            reply = await self._forward(method, request, ctx, outcome)
            outcome[0] = "OK"
            return reply
        finally:
            served.done(outcome[0], started)
            if tracing.enabled():
                tracing.end_rpc(outcome[0], grpc.StatusCode[outcome[0]].value[0])

    async def _forward(self, method: str, request: bytes, ctx: grpc.aio.ServicerContext, outcome: list) -> bytes:
        metadata = ctx.invocation_metadata() or ()
        authorization = None
        for k, v in metadata:
            if k == "authorization" and isinstance(v, str):
                authorization = v
                break
        try:
            admission = await self.edge.admit(method, authorization, ctx.peer)
        except Refusal as refusal:
            outcome[0] = refusal.code.name
            await abort(ctx, refusal.code, refusal.message, refusal.details)
        outgoing = [*stripped(metadata, traced=tracing.enabled()), (identity.HEADER, admission.internal_token)]
        try:
            reply = await self.upstreams.call(method, request, self.timeout(ctx), outgoing)
        except UpstreamError as err:
            outcome[0] = err.code.name
            if err.code in HIDDEN_CODES:
                log.error("%s failed upstream with %s: %s", method, err.code.name, err.message)
                await ctx.abort(err.code, "internal error")
            await ctx.abort(err.code, err.message, trailing_metadata=err.trailing_metadata)
        initial = stripped(reply.initial_metadata)
        if initial:  # sending headers apart costs a write of their own: only when there are any
            await ctx.send_initial_metadata(initial)
        trailing = tuple(kv for kv in reply.trailing_metadata if kv[0] != STATUS_DETAILS_KEY)
        if trailing:
            ctx.set_trailing_metadata(trailing)
        return reply.body


async def abort(ctx: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str, details) -> None:
    status = rpc_status.to_status(to_status(code, message, details))
    await ctx.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)
