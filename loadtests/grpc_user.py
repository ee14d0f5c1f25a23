"""A Locust User for gRPC, built the way Locust documents it for other protocols.

* gRPC is made gevent-compatible (`grpc.experimental.gevent.init_gevent()`) before any channel exists;
  Locust has already monkey-patched the standard library by the time a locustfile is imported.
* Every unary call goes through `LocustInterceptor`, which fires `environment.events.request` with
  request_type "grpc", name = the method ("GetStock"), the response time in ms, the response size and
  the exception (a grpc.RpcError) when the call failed.
* Each user opens its own channels (one per target: per service, or one for all through a gateway; with a
  local subchannel pool, so every user has its own TCP connections and load spreads over server processes,
  replicas and gateway pods) and calls the services
  through the generated stubs (erp.*.v1.*_pb2_grpc), exactly as internal services do.

Targets: ERP_<SERVICE>_TARGET (`ipv4:127.0.0.1:50051,127.0.0.1:50061` round-robins over several local
processes), else `--host` (host:port: a gateway, every service through it; a bare host name or address:
each service on its default port), else ERP_TARGET (a gateway: what the chart's Locust Job sets), else
127.0.0.1 and the default ports.

Token: what erp_client.auth.token_from_env finds (ERP_TOKEN, ERP_TOKEN_FILE, or ERP_TOKEN_URL with
ERP_CLIENT_ID and ERP_CLIENT_SECRET(_FILE), ERP_TOKEN_SCOPES, ERP_TOKEN_AUDIENCE): one source per Locust
process, shared by its users (client credentials are fetched once and refreshed before expiry, not per
user). It is added to every call by erp_client's BearerTokenInterceptor, on TLS channels too
(ERP_TLS=1, ERP_TLS_CA_FILE): gRPC runs call-credential plugins on a thread of its own, outside gevent's
hub, where a token fetch must not run; the interceptor fetches in the calling greenlet.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `locust -f loadtests/x.py` puts loadtests/ on sys.path, not the project root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import grpc  # noqa: E402
import grpc.experimental.gevent as grpc_gevent  # noqa: E402
from locust import User  # noqa: E402
from locust.exception import LocustError  # noqa: E402

from erp.crm.v1 import crm_pb2_grpc  # noqa: E402
from erp.finance.v1 import finance_pb2_grpc  # noqa: E402
from erp.inventory.v1 import inventory_pb2_grpc  # noqa: E402
from erp.notification.v1 import notification_pb2_grpc  # noqa: E402
from erp.orders.v1 import orders_pb2_grpc  # noqa: E402
from erp_client.auth import TokenError, TokenSource, token_from_env  # noqa: E402
from erp_client.channel import MAX_MESSAGE_BYTES, BearerTokenInterceptor, service_config  # noqa: E402

grpc_gevent.init_gevent()

DEFAULT_PORTS = {"inventory": 50051, "orders": 50052, "crm": 50053, "finance": 50054, "notification": 50056}
CALL_TIMEOUT_SECONDS = float(os.environ.get("LOAD_CALL_TIMEOUT_SECONDS", "5"))


def target_for(service: str, host: str | None) -> str:
    explicit = os.environ.get(f"ERP_{service.upper()}_TARGET", "").strip()
    if explicit:
        return explicit
    port = DEFAULT_PORTS[service]
    if host:
        bare = host.split("://", 1)[-1].rstrip("/")
        return bare if ":" in bare and not bare.startswith("[") else f"{bare}:{port}"
    return os.environ.get("ERP_TARGET", "").strip() or f"127.0.0.1:{port}"


_TOKEN: list[TokenSource | None] = []


def token_source() -> TokenSource | None:
    """The process's token source (from the environment, made on first use), or None."""
    if not _TOKEN:
        _TOKEN.append(token_from_env())
    return _TOKEN[0]


def reset_token_source() -> None:
    """Forget the token source: the next channel reads the environment again (tests)."""
    _TOKEN.clear()


def _tls_credentials() -> grpc.ChannelCredentials | None:
    ca_file = os.environ.get("ERP_TLS_CA_FILE", "").strip()
    if os.environ.get("ERP_TLS", "").strip().lower() in ("1", "true", "yes", "on") or ca_file:
        return grpc.ssl_channel_credentials(Path(ca_file).read_bytes() if ca_file else None)
    return None


def method_name(full_method: str | bytes) -> str:
    """'/erp.inventory.v1.InventoryService/GetStock' -> 'GetStock'."""
    if isinstance(full_method, bytes):
        full_method = full_method.decode()
    return full_method.rsplit("/", 1)[-1]


class LocustInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Reports every unary call as a Locust request event."""

    def __init__(self, environment) -> None:
        self.env = environment

    def intercept_unary_unary(self, continuation, client_call_details, request):
        start = time.perf_counter()
        response_length = 0
        exception = None
        call = None
        try:
            call = continuation(client_call_details, request)
            response_length = call.result().ByteSize()
        except grpc.RpcError as exc:
            exception = exc
        except TokenError as exc:  # no token could be had: nothing was sent
            exception = exc
        self.env.events.request.fire(
            request_type="grpc", name=method_name(client_call_details.method),
            response_time=(time.perf_counter() - start) * 1000, response_length=response_length,
            response=None, context={}, exception=exception)
        if call is None:
            raise exception
        return call


def open_channel(target: str, environment=None) -> grpc.Channel:
    """A channel of its own (local subchannel pool) with the mesh's service config (deadline, retries
    of UNAVAILABLE, round robin over the target's addresses), TLS when asked for, the token, and (given
    a Locust environment) the reporting interceptor."""
    options = [
        ("grpc.service_config", service_config(timeout=CALL_TIMEOUT_SECONDS)),
        ("grpc.enable_retries", 1),
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ]
    credentials = _tls_credentials()
    channel = (grpc.secure_channel(target, credentials, options=options) if credentials is not None
               else grpc.insecure_channel(target, options=options))
    interceptors = [LocustInterceptor(environment)] if environment is not None else []
    token = token_source()
    if token is not None:  # inside the reporting one: a failed token fetch is reported as the call's failure
        interceptors.append(BearerTokenInterceptor(token))
    return grpc.intercept_channel(channel, *interceptors) if interceptors else channel


def channel_for(service: str, host: str | None) -> grpc.Channel:
    """A channel to a service for a suite's own set-up and checks (seeding, end-of-test reads): the same
    target, TLS and token as the users', not reported to Locust."""
    return open_channel(target_for(service, host))


class GrpcUser(User):
    """Base class: `services` names what a user calls; each becomes a stub attribute
    (self.inventory, self.orders, self.crm, self.finance, self.notification)."""

    abstract = True
    services: tuple[str, ...] = ("inventory",)
    STUBS = {
        "inventory": inventory_pb2_grpc.InventoryServiceStub,
        "orders": orders_pb2_grpc.OrderServiceStub,
        "crm": crm_pb2_grpc.CustomerServiceStub,
        "finance": finance_pb2_grpc.FinanceServiceStub,
        "notification": notification_pb2_grpc.NotificationServiceStub,
    }

    def __init__(self, environment) -> None:
        super().__init__(environment)
        unknown = set(self.services) - set(self.STUBS)
        if unknown:
            raise LocustError(f"unknown services {sorted(unknown)}")
        self._channels = {}  # by target: through a gateway, one channel (connection) per user for every service
        for service in self.services:
            target = target_for(service, self.host)
            if target not in self._channels:
                self._channels[target] = open_channel(target, environment)
            setattr(self, service, self.STUBS[service](self._channels[target]))

    def on_stop(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

    def report(self, request_type: str, name: str, started: float, exception: Exception | None = None) -> None:
        """Reports a measurement that is not one RPC (e.g. an order's saga), from perf_counter() `started`."""
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000,
            response_length=0, response=None, context={}, exception=exception)
