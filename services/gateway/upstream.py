"""Calls to the owning services, as raw bytes: the gateway never re-serializes a gRPC
request or response on its way through."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import grpc
from google.rpc import status_pb2
from prometheus_client import Counter

from erp_client.channel import MAX_MESSAGE_BYTES, service_config
from mesh import metrics, tracing

# Status codes whose text may carry a service's internals: the caller gets a generic message.
HIDDEN_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Codes grpc's transport (or a proxy on the way) also produces, with text about addresses and
# sockets ("ipv4:10.0.0.7:50051: Connection refused"): unless the service itself set the status,
# the caller gets this message about the owning service instead.
TRANSPORT_MESSAGES = {
    grpc.StatusCode.UNAVAILABLE: "{} is unavailable, retry later",
    grpc.StatusCode.DEADLINE_EXCEEDED: "deadline exceeded calling {}",
}
log = logging.getLogger("gateway.upstream")


@dataclasses.dataclass
class Reply:
    body: bytes
    initial_metadata: tuple
    trailing_metadata: tuple


class UpstreamError(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, trailing_metadata: tuple) -> None:
        super().__init__(message)
        self.code, self.message, self.trailing_metadata = code, message, trailing_metadata


def domain_of(method: str) -> str:
    """/erp.orders.v1.OrderService/GetOrder -> orders, the service that owns it."""
    return method.lstrip("/").split(".")[1]


def set_by_the_service(code: grpc.StatusCode, message: str, trailing_metadata: tuple) -> bool:
    """Whether the service's own code set this status: the mesh (mesh.interceptors) sends every
    status it sets with its google.rpc.Status, same code and message, in the trailers; grpc's
    transport, its deadline and a proxy on the way never do."""
    raw = next((v for k, v in trailing_metadata if k == STATUS_DETAILS_KEY), None)
    if not raw:
        return False
    try:
        status = status_pb2.Status.FromString(raw)
    except Exception:  # noqa: BLE001 - undecodable: not the mesh's
        return False
    return status.code == code.value[0] and status.message == message


def _interceptors() -> list:
    """A client span per upstream call when tracing is on (mesh.tracing)."""
    if not tracing.enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return aio_client_interceptors()


class ClientCalls:
    """One method's way upstream, built once: grpc.aio's multicallable (building one per call
    cost a Channel.unary_unary and its metadata setup every time) and its metric children."""

    def __init__(self, channel: grpc.aio.Channel, method: str) -> None:
        # No serializers: bytes in, bytes out.
        self.call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
        self.method, self._labels = method, metrics.rpc_labels(method)
        self.seconds = metrics.GRPC_CLIENT_SECONDS.labels(*self._labels)
        self._handled: dict[str, Counter] = {}

    def done(self, code: str, started: float) -> None:
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = metrics.GRPC_CLIENT_HANDLED.labels(*self._labels, code)
        handled.inc()
        self.seconds.observe(time.perf_counter() - started)


class Upstreams:
    def __init__(self, targets: dict[str, str]) -> None:
        self.targets = targets
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._calls: dict[str, ClientCalls] = {}

    def channel(self, domain: str) -> grpc.aio.Channel:
        if domain not in self._channels:
            self._channels[domain] = grpc.aio.insecure_channel(self.targets[domain], interceptors=_interceptors(), options=[
                ("grpc.service_config", service_config()),
                ("grpc.enable_retries", 1),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.keepalive_time_ms", 30_000),
            ])
        return self._channels[domain]

    def calls(self, method: str) -> ClientCalls:
        calls = self._calls.get(method)
        if calls is None:
            calls = self._calls[method] = ClientCalls(self.channel(domain_of(method)), method)
        return calls

    async def call(self, method: str, request: bytes, timeout: float, metadata: list) -> Reply:
        started = time.perf_counter()
        upstream = self.calls(method)
        call = upstream.call(request, timeout=timeout, metadata=metadata)
        try:
            body = await call
        except asyncio.CancelledError:
            call.cancel()  # the caller went away: so does the call to the service
            upstream.done(grpc.StatusCode.CANCELLED.name, started)
            raise
        except grpc.aio.AioRpcError as exc:
            code, message, trailing = exc.code(), exc.details() or "", tuple(exc.trailing_metadata() or ())
            upstream.done(code.name, started)
            if code in TRANSPORT_MESSAGES and not set_by_the_service(code, message, trailing):
                log.warning("%s failed in transport with %s: %s", method, code.name, message)
                message = TRANSPORT_MESSAGES[code].format(domain_of(method))
            raise UpstreamError(code, message, trailing) from None
        upstream.done("OK", started)
        return Reply(body, tuple(await call.initial_metadata() or ()), tuple(await call.trailing_metadata() or ()))

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
