"""Settings from the environment, with documented defaults.

Every variable is listed in README.md ("Configuration"). Nothing else reads os.environ
for configuration: services take a Settings object, so tests can build their own.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

_Ordered = TypeVar("_Ordered", int, float, Decimal)

# ERP_<SERVICE>_TARGET: where another service answers (host:port), one variable per service called.
TARGET_VARIABLE = re.compile(r"ERP_([A-Z][A-Z0-9]*)_TARGET")


@dataclasses.dataclass(frozen=True)
class Variables:
    """Typed reads of ERP_* variables, the one way every setting is parsed: mesh's own
    (load() below) and each service's (its Config.from_settings). Blank means the default;
    a bad value raises ValueError naming the variable, so the process stops at start-up."""

    values: Mapping[str, str]

    def text(self, name: str, default: str = "") -> str:
        return self.values.get(name, "").strip() or default

    def integer(self, name: str, default: int, *, least: int | None = None, most: int | None = None) -> int:
        raw = self.text(name)
        try:
            value = int(raw) if raw else default
        except ValueError as exc:
            raise ValueError(f"{name} must be a whole number, got {raw!r}") from exc
        return _within(name, value, least, most)

    def number(self, name: str, default: float, *, least: float | None = None,
               most: float | None = None) -> float:
        raw = self.text(name)
        try:
            value = float(raw) if raw else default
        except ValueError as exc:
            raise ValueError(f"{name} must be a number, got {raw!r}") from exc
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {raw!r}")
        return _within(name, value, least, most)

    def decimal(self, name: str, default: str, *, least: Decimal | None = None,
                most: Decimal | None = None) -> Decimal:
        """An exact amount or fraction (money, rates, tolerances)."""
        raw = self.text(name, default)
        try:
            value = Decimal(raw)
        except InvalidOperation as exc:
            raise ValueError(f"{name} must be a decimal number, got {raw!r}") from exc
        if not value.is_finite():
            raise ValueError(f"{name} must be a finite number, got {raw!r}")
        return _within(name, value, least, most)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if not raw:
            return default
        if raw in ("1", "true", "yes", "on"):
            return True
        if raw in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {raw!r}")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return value


def _within(name: str, value: _Ordered, least: _Ordered | None, most: _Ordered | None) -> _Ordered:
    if least is not None and value < least:
        raise ValueError(f"{name} must be at least {least}, got {value}")
    if most is not None and value > most:
        raise ValueError(f"{name} must be at most {most}, got {value}")
    return value


@dataclasses.dataclass(frozen=True)
class Settings:
    service: str
    data_dir: Path
    database_url: str  # empty: embedded PostgreSQL under data_dir
    redis_url: str  # empty: embedded Redis under data_dir
    amqp_url: str  # empty: embedded transport (the PostgreSQL event bus)
    event_transport: str  # "amqp" or "postgres"
    amqp_namespace: str
    grpc_host: str
    grpc_port: int
    metrics_port: int
    grpc_max_workers: int
    grpc_max_concurrent_rpcs: int
    grpc_max_message_bytes: int
    shutdown_grace_seconds: float
    migrate_on_start: bool
    db_pool_size: int
    cache_ttl_seconds: float
    cache_local_seconds: float
    cache_prefix: str
    event_max_attempts: int
    event_retry_base_ms: int
    event_consumer_threads: int
    relay_poll_seconds: float
    unroutable_grace_seconds: float
    health_check_seconds: float
    log_level: str
    log_format: str
    targets: dict[str, str]  # {service: host:port}, from ERP_<SERVICE>_TARGET
    # Every call must carry the gateway's internal token (mesh/identity.py); off for local
    # runs and tests, on in the Helm chart.
    internal_auth: bool = False
    internal_token_secret: str = ""
    # Every ERP_* variable, for settings only one service reads (see get()).
    # Server processes sharing the port (SO_REUSEPORT); 1: this process serves alone.
    processes: int = 1
    # Redis answers in microseconds; a wait longer than these is Redis in trouble, and the cache
    # and the rate limiter then go on without it (their breakers) rather than hold up the call.
    redis_socket_timeout_seconds: float = 0.25
    redis_connect_timeout_seconds: float = 0.25
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    # AMQP connections: heartbeats, how long a connection the broker blocked (alarm) may stay
    # blocked, how long a socket operation may take; and the service queues' delivery limit.
    amqp_heartbeat_seconds: int = 30
    amqp_blocked_connection_timeout_seconds: float = 30.0
    amqp_socket_timeout_seconds: float = 5.0
    amqp_delivery_limit: int = 20
    amqp_consumers: str = "single"  # "single": one process consumes a service queue at a time; "competing"

    @property
    def variables(self) -> Variables:
        """A service's own settings (documented in README's table), e.g. ERP_FINANCE_TAX_RATE,
        for its Config.from_settings."""
        return Variables(self.env)

    @property
    def schema(self) -> str:
        """The PostgreSQL schema this service owns (its name)."""
        return self.service

    def target(self, service: str) -> str:
        """host:port of another service, for gRPC channels."""
        try:
            return self.targets[service]
        except KeyError:
            raise ValueError(f"ERP_{service.upper()}_TARGET is not set: the host:port where {service} "
                             "answers (make run and the chart set it)") from None


# gRPC worker threads per process: more only fight over the GIL (16 halved GetStock's
# throughput against 4 in `make bench`); processes, not threads, add cores.
GRPC_WORKERS = 4


def load(service: str, default_port: int = 0) -> Settings:
    """Reads the settings of `service` from the environment; default_port: its gRPC port
    when ERP_GRPC_PORT is not set (0: any free port)."""
    upper = service.upper()
    env = {k: v for k, v in os.environ.items() if k.startswith("ERP_")}
    v = Variables(env)
    amqp_url = v.text("ERP_AMQP_URL")
    transport = v.choice("ERP_EVENT_TRANSPORT", "amqp" if amqp_url else "postgres", ("amqp", "postgres"))
    if transport == "amqp" and not amqp_url:
        raise ValueError("ERP_EVENT_TRANSPORT=amqp needs ERP_AMQP_URL")
    targets = {match[1].lower(): value.strip() for name, value in env.items()
               if (match := TARGET_VARIABLE.fullmatch(name)) and value.strip()}
    return Settings(
        service=service,
        data_dir=Path(v.text("ERP_DATA_DIR", ".data")).resolve(),
        database_url=v.text(f"ERP_{upper}_DATABASE_URL") or v.text("ERP_DATABASE_URL"),
        redis_url=v.text("ERP_REDIS_URL"),
        amqp_url=amqp_url,
        event_transport=transport,
        amqp_namespace=v.text("ERP_AMQP_NAMESPACE", "erp"),
        grpc_host=v.text("ERP_GRPC_HOST", "127.0.0.1"),
        grpc_port=v.integer("ERP_GRPC_PORT", default_port, least=0, most=65535),
        metrics_port=v.integer("ERP_METRICS_PORT", 0),
        grpc_max_workers=v.integer("ERP_GRPC_MAX_WORKERS", GRPC_WORKERS),
        grpc_max_concurrent_rpcs=v.integer("ERP_GRPC_MAX_CONCURRENT_RPCS", 256),
        grpc_max_message_bytes=v.integer("ERP_GRPC_MAX_MESSAGE_BYTES", 4 * 1024 * 1024),
        shutdown_grace_seconds=v.number("ERP_SHUTDOWN_GRACE_SECONDS", 10.0),
        migrate_on_start=v.flag("ERP_MIGRATE_ON_START", True),
        db_pool_size=v.integer("ERP_DB_POOL_SIZE", 10),
        cache_ttl_seconds=v.number("ERP_CACHE_TTL_SECONDS", 60.0),
        cache_local_seconds=v.number("ERP_CACHE_LOCAL_MS", 100.0) / 1000,
        cache_prefix=v.text("ERP_CACHE_PREFIX", "erp"),
        event_max_attempts=v.integer("ERP_EVENT_MAX_ATTEMPTS", 5),
        event_retry_base_ms=v.integer("ERP_EVENT_RETRY_BASE_MS", 200),
        event_consumer_threads=v.integer("ERP_EVENT_CONSUMER_THREADS", 1),
        processes=v.integer("ERP_PROCESSES", 1),
        redis_socket_timeout_seconds=v.number("ERP_REDIS_SOCKET_TIMEOUT_SECONDS", 0.25),
        redis_connect_timeout_seconds=v.number("ERP_REDIS_CONNECT_TIMEOUT_SECONDS", 0.25),
        relay_poll_seconds=v.number("ERP_RELAY_POLL_SECONDS", 0.2),
        unroutable_grace_seconds=v.number("ERP_UNROUTABLE_GRACE_SECONDS", 300.0),
        health_check_seconds=v.number("ERP_HEALTH_CHECK_SECONDS", 2.0),
        log_level=v.text("ERP_LOG_LEVEL", "INFO").upper(),
        log_format=v.text("ERP_LOG_FORMAT", "json").lower(),
        targets=targets,
        internal_auth=v.flag("ERP_INTERNAL_AUTH", False),
        internal_token_secret=v.text("ERP_INTERNAL_TOKEN_SECRET"),
        env=env,
        amqp_heartbeat_seconds=v.integer("ERP_AMQP_HEARTBEAT_SECONDS", 30),
        amqp_blocked_connection_timeout_seconds=v.number("ERP_AMQP_BLOCKED_CONNECTION_TIMEOUT_SECONDS", 30.0),
        amqp_socket_timeout_seconds=v.number("ERP_AMQP_SOCKET_TIMEOUT_SECONDS", 5.0),
        amqp_delivery_limit=v.integer("ERP_AMQP_DELIVERY_LIMIT", 20, least=1),
        amqp_consumers=v.choice("ERP_AMQP_CONSUMERS", "single", ("single", "competing")),
    )
