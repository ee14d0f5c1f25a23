"""The gateway's own settings (README "Configuration", ERP_GATEWAY_*), read through Settings.variables."""
from __future__ import annotations

import dataclasses
from urllib.parse import urlsplit

from mesh.settings import Settings

DEFAULT_RATE_LIMITS = "read=50/100,write=10/20,report=1/5"


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """A GCRA limit: `per_second` sustained, up to `burst` at once."""

    per_second: float
    burst: int


@dataclasses.dataclass(frozen=True)
class GatewayConfig:
    http_host: str
    http_port: int
    jwks_url: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    leeway_seconds: float
    jwks_refresh_seconds: float
    jwks_min_refetch_seconds: float
    internal_token_secret: str
    max_deadline_seconds: float
    max_body_bytes: int
    rate_limits: dict[str, RateLimit]
    rate_limit_when_redis_down: str  # "open" or "closed"
    dev_issuer: bool
    upstream_health_timeout_seconds: float
    upstream_health_cache_seconds: float
    openapi_server_url: str


def parse_rate_limits(text: str) -> dict[str, RateLimit]:
    """"read=50/100,write=10/20" -> {class: RateLimit(per second, burst)}."""
    limits = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, spec = item.partition("=")
        rate, _, burst = spec.partition("/")
        limits[name.strip()] = RateLimit(float(rate), int(burst or 1))
        if limits[name.strip()].per_second <= 0 or limits[name.strip()].burst < 1:
            raise ValueError(f"ERP_GATEWAY_RATE_LIMITS: {item!r} needs a rate > 0 and a burst >= 1")
    return limits


def check_jwks_url(url: str) -> str:
    """https, except on this machine (tests, the development issuer): keys fetched in the clear
    could be swapped on the way, and every token signed with the swapped ones would pass."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")):
        return url
    raise ValueError(f"ERP_GATEWAY_JWKS_URL must be an https:// URL, got {url!r}")


def load(settings: Settings) -> GatewayConfig:
    v = settings.variables
    dev = v.flag("ERP_GATEWAY_DEV_ISSUER", False)
    http_port = v.integer("ERP_GATEWAY_HTTP_PORT", 8080, least=0, most=65535)
    return GatewayConfig(
        http_host=settings.grpc_host,
        http_port=http_port,
        jwks_url=check_jwks_url(v.text("ERP_GATEWAY_JWKS_URL",
                                       f"http://127.0.0.1:{http_port}/dev/jwks.json" if dev else "")),
        issuer=v.text("ERP_GATEWAY_ISSUER", "erp-dev-issuer" if dev else ""),
        audience=v.text("ERP_GATEWAY_AUDIENCE", "erp-api"),
        algorithms=tuple(a.strip() for a in v.text("ERP_GATEWAY_ALGORITHMS", "RS256,ES256").split(",") if a.strip()),
        leeway_seconds=v.number("ERP_GATEWAY_LEEWAY_SECONDS", 30.0, least=0.0),
        jwks_refresh_seconds=v.number("ERP_GATEWAY_JWKS_REFRESH_SECONDS", 300.0, least=1.0),
        jwks_min_refetch_seconds=v.number("ERP_GATEWAY_JWKS_MIN_REFETCH_SECONDS", 30.0, least=0.0),
        internal_token_secret=settings.internal_token_secret,
        max_deadline_seconds=v.number("ERP_GATEWAY_MAX_DEADLINE_SECONDS", 30.0, least=0.001),
        max_body_bytes=v.integer("ERP_GATEWAY_MAX_BODY_BYTES", 1024 * 1024, least=1),
        rate_limits=parse_rate_limits(v.text("ERP_GATEWAY_RATE_LIMITS", DEFAULT_RATE_LIMITS)),
        rate_limit_when_redis_down=v.choice("ERP_GATEWAY_RATE_LIMIT_WHEN_REDIS_DOWN", "open", ("open", "closed")),
        dev_issuer=dev,
        upstream_health_timeout_seconds=v.number("ERP_GATEWAY_HEALTH_TIMEOUT_SECONDS", 1.0, least=0.001),
        upstream_health_cache_seconds=v.number("ERP_GATEWAY_HEALTH_CACHE_SECONDS", 1.0, least=0.0),
        openapi_server_url=v.text("ERP_GATEWAY_OPENAPI_SERVER_URL"),
    )
