"""Rate limits per client and rate class: GCRA (the generic cell rate algorithm) in one
Redis Lua script, so every gateway replica shares one count and one clock (Redis TIME).

When Redis is unreachable the limiter fails OPEN by default (ERP_GATEWAY_RATE_LIMIT_WHEN_
REDIS_DOWN=open): the limit protects capacity, not access (authentication and scopes do
not depend on Redis), and failing closed would make Redis an outage of the whole API.
Each refusal to reach Redis is logged, and the breaker skips Redis for a second at a
time. `closed` refuses every call with UNAVAILABLE instead, for installs that prefer
that.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from services.gateway.config import RateLimit

log = logging.getLogger("gateway.ratelimit")

RATE_CLASSES = ("read", "write", "report")
BREAKER_SECONDS = 1.0

# KEYS[1]: the client's key for one rate class. ARGV: emission interval and burst
# tolerance, in microseconds. Returns {allowed (1/0), microseconds until the next call
# would be allowed}. The stored value is the theoretical arrival time (TAT).
GCRA = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
"""


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: float = 0.0
    redis_down: bool = False


class RateLimiter:
    def __init__(self, url: str, limits: dict[str, RateLimit], prefix: str = "erp:gateway:rl",
                 when_redis_down: str = "open", socket_timeout: float = 0.25, connect_timeout: float = 0.25) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout)
        self.script = self.client.register_script(GCRA)
        self.limits, self.prefix, self.when_redis_down = limits, prefix, when_redis_down
        self._skip_until = 0.0

    async def check(self, client: str, rate_class: str) -> Decision:
        limit = self.limits.get(rate_class) or self.limits["read"]
        if time.monotonic() < self._skip_until:
            return self._redis_down()
        interval = 1_000_000 / limit.per_second
        try:
            allowed, wait_us = await self.script(keys=[f"{self.prefix}:{rate_class}:{client}"],
                                                 args=[int(interval), int(interval * (limit.burst - 1))])
        except (RedisError, OSError) as exc:
            self._skip_until = time.monotonic() + BREAKER_SECONDS
            log.warning("redis unavailable for rate limits (%s); failing %s for %.0fs", exc.__class__.__name__,
                        self.when_redis_down, BREAKER_SECONDS)
            return self._redis_down()
        return Decision(bool(allowed), int(wait_us) / 1_000_000)

    def _redis_down(self) -> Decision:
        return Decision(self.when_redis_down == "open", redis_down=True)

    async def close(self) -> None:
        await self.client.aclose()


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110); rounding up never invites an early retry."""
    return str(max(1, math.ceil(seconds)))
