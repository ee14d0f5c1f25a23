"""Wiring: the gateway as the mesh runs it. One asyncio process: a grpc.aio server for
the gRPC edge (with health and reflection) and an aiohttp server for REST/JSON, both
deciding through one Edge, forwarding through one set of channels."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
import signal

import grpc
from aiohttp import web
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from erp_client.channel import MAX_MESSAGE_BYTES
from mesh import access, embedded
from mesh.settings import Settings
from services.gateway import config as gateway_config
from services.gateway import devtoken, docs, openapi, routes
from services.gateway.auth import Authenticator
from services.gateway.edge import Edge
from services.gateway.grpc_edge import GrpcEdge
from services.gateway.health import GatewayHealth
from services.gateway.jwks import KeySet
from services.gateway.ratelimit import RateLimiter
from services.gateway.rest_edge import RestEdge
from services.gateway.upstream import Upstreams, domain_of

log = logging.getLogger("gateway")
NAME = "gateway"
HEALTH_NAME = "erp.gateway"  # what the probes ask for: the gateway serves no API of its own
OPENAPI_PATH = "/openapi.json"
DEV_JWKS_PATH = "/dev/jwks.json"


@dataclasses.dataclass(frozen=True)
class GatewaySpec:
    name: str
    grpc_services: tuple[str, ...]


def spec() -> GatewaySpec:
    return GatewaySpec(NAME, (HEALTH_NAME,))


@dataclasses.dataclass
class Gateway:
    grpc_server: grpc.aio.Server
    http_runner: web.AppRunner
    grpc_port: int
    http_port: int
    keys: KeySet
    limiter: RateLimiter
    upstreams: Upstreams
    health: GatewayHealth

    async def stop(self, grace: float = 2.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.http_runner.cleanup()
        await self.grpc_server.stop(grace)
        await self.keys.stop()
        await self.upstreams.close()
        await self.limiter.close()


def internal_secret(settings: Settings) -> str:
    if settings.internal_token_secret:
        return settings.internal_token_secret
    # Only for local runs, where the services do not check (ERP_INTERNAL_AUTH off).
    log.warning("ERP_INTERNAL_TOKEN_SECRET not set: using a random one; services with ERP_INTERNAL_AUTH will refuse")
    return secrets.token_urlsafe(32)


async def start(settings: Settings, rules: dict[str, access.Rule] | None = None) -> Gateway:
    """Starts both edges; grpc_port / ERP_GATEWAY_HTTP_PORT 0 pick free ports (tests)."""
    cfg = gateway_config.load(settings)
    rules = access.table() if rules is None else rules
    documents = {OPENAPI_PATH: openapi.served(openapi.committed(), cfg.openapi_server_url)}
    if cfg.dev_issuer:
        documents[DEV_JWKS_PATH] = devtoken.jwks(devtoken.load_or_create_key(settings.data_dir))
    keys = KeySet(cfg.jwks_url, cfg.jwks_refresh_seconds, cfg.jwks_min_refetch_seconds)
    authenticator = Authenticator(keys, cfg.issuer, cfg.audience, cfg.algorithms, cfg.leeway_seconds)
    limiter = RateLimiter(settings.redis_url or embedded.redis_url(settings.data_dir), cfg.rate_limits,
                          prefix=f"{settings.cache_prefix}:gateway:rl", when_redis_down=cfg.rate_limit_when_redis_down,
                          socket_timeout=settings.redis_socket_timeout_seconds,
                          connect_timeout=settings.redis_connect_timeout_seconds)
    edge = Edge(rules, authenticator, limiter, internal_secret(settings))
    upstreams = Upstreams(settings.targets)

    runner = web.AppRunner(RestEdge(edge, upstreams, routes.build(rules), cfg.max_deadline_seconds,
                                    cfg.max_body_bytes, documents, docs.pages()).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.http_host, cfg.http_port)
    await site.start()
    http_port = runner.addresses[0][1]  # the bound port, also when 0 was asked

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                                      ("grpc.so_reuseport", 0)],
                             maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs)
    edge_services = sorted({r.method.split("/")[1] for r in rules.values() if not r.internal_only})
    # each routed service's health is its owning service's: the gateway asks it (health.py)
    health_servicer = GatewayHealth(upstreams, {name: domain_of(f"/{name}/") for name in edge_services},
                                    cfg.upstream_health_timeout_seconds, cfg.upstream_health_cache_seconds)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((*edge_services, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    server.add_generic_rpc_handlers((GrpcEdge(edge, upstreams, cfg.max_deadline_seconds),))
    grpc_port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    await keys.start()  # after the HTTP edge is up: in dev mode the gateway serves its own JWKS
    for name in ("", HEALTH_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gateway: gRPC on %s:%d, REST on %s:%d", settings.grpc_host, grpc_port, cfg.http_host, http_port)
    return Gateway(server, runner, grpc_port, http_port, keys, limiter, upstreams, health_servicer)


async def serve(settings: Settings) -> None:
    gateway = await start(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("draining (grace %.1fs)", settings.shutdown_grace_seconds)
    await gateway.stop(settings.shutdown_grace_seconds)

