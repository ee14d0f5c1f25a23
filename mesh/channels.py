"""Channels from one service to another: the client package's channel (deadline and
retry policy in the service config) plus the mesh's client interceptor, which carries
the correlation id and caps each call's timeout by the incoming call's deadline."""
from __future__ import annotations

import grpc

from erp_client.channel import DEFAULT_TIMEOUT_SECONDS, open_channel
from mesh import tracing
from mesh.interceptors import ClientInterceptor
from mesh.settings import Settings


def channel_to(settings: Settings, service: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> grpc.Channel:
    secret = settings.internal_token_secret if settings.internal_auth else ""
    channel = open_channel(settings.target(service), timeout=timeout,
                           interceptors=(ClientInterceptor(timeout, internal_secret=secret, service=settings.service),))
    if tracing.enabled():  # a client span per call, its context in the call's traceparent
        from opentelemetry.instrumentation.grpc import client_interceptor, grpcext

        # the library's interceptor is of its own kind: it goes on through its own intercept_channel
        channel = grpcext.intercept_channel(channel, client_interceptor())
    return channel
