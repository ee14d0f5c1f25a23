"""Channels configured the way every caller of the mesh should be.

Retries are declared in the channel's service config (gRPC retries them, with
backoff, before the call returns) and only for UNAVAILABLE: every RPC of the mesh is
safe to repeat, since reads have no effect and mutations carry a request id.
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import grpc

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


def open_channel(
    target: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    credentials: grpc.ChannelCredentials | None = None,
    interceptors: Sequence[grpc.UnaryUnaryClientInterceptor] = (),
) -> grpc.Channel:
    """A channel to `target` (host:port, or dns:///name:port for round robin over replicas)."""
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
