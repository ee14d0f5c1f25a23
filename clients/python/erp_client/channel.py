"""Channels configured the way every caller of the mesh should be.

Retries are declared in the channel's service config (gRPC retries them, with
backoff, before the call returns) and only for UNAVAILABLE: every RPC of the mesh is
safe to repeat, since reads have no effect and mutations carry a request id.

A bearer token (erp_client.auth) goes with every call as `authorization: Bearer ...`:
- over TLS as gRPC call credentials (grpc.metadata_call_credentials, composed with the TLS channel
  credentials), the way gRPC means tokens to be sent;
- over plaintext by a client interceptor that adds the same metadata. gRPC refuses call credentials on
  an insecure channel, and grpc.local_channel_credentials would only do for loopback targets, not for a
  plaintext gateway inside a cluster (`erp-gateway:50050`), so the interceptor serves every plaintext target.
"""
from __future__ import annotations

import collections
import json
from collections.abc import Sequence
from pathlib import Path

import grpc

from erp_client.auth import TokenError, TokenSource

DEFAULT_TIMEOUT_SECONDS = 5.0
MAX_MESSAGE_BYTES = 4 * 1024 * 1024

SERVICES = (
    "erp.inventory.v1.InventoryService",
    "erp.orders.v1.OrderService",
    "erp.crm.v1.CustomerService",
    "erp.finance.v1.FinanceService",
    "erp.notification.v1.NotificationService",
    "erp.procurement.v1.ProcurementService",
)


def service_config(services: Sequence[str] = SERVICES, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> str:
    """The JSON service config: default deadline and retry policy per service."""
    return json.dumps({
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": [{"service": name} for name in services],
            "timeout": f"{timeout}s",
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    })


class BearerToken(grpc.AuthMetadataPlugin):
    """Call credentials: the token source's current token as `authorization: Bearer ...`."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def __call__(self, context, callback) -> None:
        try:
            callback((("authorization", f"Bearer {self.source.token()}"),), None)
        except TokenError as exc:
            callback((), exc)  # the call fails (UNAVAILABLE) with the reason in its details


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")),
               grpc.ClientCallDetails):
    pass


class BearerTokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                             grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """The token as metadata on every call of a plaintext channel (see the module's docstring). A token
    that cannot be had fails the call here, with TokenError, before anything is sent."""

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    def _with_token(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        metadata = [kv for kv in (details.metadata or ()) if kv[0] != "authorization"]
        metadata.append(("authorization", f"Bearer {self.source.token()}"))
        return _Details(details.method, details.timeout, metadata, details.credentials,
                        getattr(details, "wait_for_ready", None), getattr(details, "compression", None))

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_stream_unary(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_token(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation, client_call_details, request_iterator):
        return continuation(self._with_token(client_call_details), request_iterator)


def tls_credentials(ca_file: str | None = None, token: TokenSource | None = None) -> grpc.ChannelCredentials:
    """TLS channel credentials (the system's roots, or the CA in `ca_file`), with the token as call
    credentials when there is one."""
    roots = Path(ca_file).read_bytes() if ca_file else None
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    if token is not None:
        credentials = grpc.composite_channel_credentials(credentials,
                                                         grpc.metadata_call_credentials(BearerToken(token)))
    return credentials


def open_channel(
    target: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
    token: TokenSource | None = None,
    tls: bool = False,
    ca_file: str | None = None,
) -> grpc.Channel:
    """A channel to `target` (host:port, or dns:///name:port for round robin over replicas).

    `tls` (or a `ca_file`): TLS with the token as call credentials; else plaintext with the token added by
    BearerTokenInterceptor. `credentials` (channel credentials of the caller's own) replaces both."""
    if credentials is None and (tls or ca_file):
        credentials, token = tls_credentials(ca_file, token), None
    elif credentials is not None and token is not None:
        credentials = grpc.composite_channel_credentials(credentials,
                                                         grpc.metadata_call_credentials(BearerToken(token)))
        token = None
    if token is not None:
        interceptors = (BearerTokenInterceptor(token), *interceptors)
    options = [
        ("grpc.service_config", service_config(timeout=timeout)),
        ("grpc.enable_retries", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 30_000),
    ]
    if credentials is not None:
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target, options=options)
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel
