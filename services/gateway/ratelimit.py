"""Rate limits per client and rate class: GCRA (the generic cell rate algorithm) in one
Redis Lua script, so every gateway replica shares one count and one clock (Redis TIME).

Leases: a replica does not ask Redis for every call. It takes a lease of up to
`lease_cells(limit)` cells at once from the shared GCRA (one round trip: the script
grants as many of the asked cells as the limit has room for, at least one or none) and
spends them locally, one per call; only when they are gone does the next call (one per
client and class at a time: concurrent calls wait for the same lease) ask again. Every
cell a replica spends was taken from the shared limit first, so replicas still share one
limit and the sustained rate is never exceeded. The price is a bounded over-admission in
a burst: cells a replica took but has not spent yet are spent on top of what the shared
GCRA then allows, at most `lease_cells - 1` per replica and (client, class), i.e. at most
10% of the burst per replica (`lease_cells` is a tenth of the burst, 1 to 64 cells: the
defaults give read 10, write 2, report 1; a burst under 20 leases 1 cell and is exact). Cells
taken and never spent (a client that stops, an entry dropped from the bounded table) are
lost to that client: under-admission, never over-admission. A refusal carries Redis's
wait until the next cell, and is kept locally until then (no cell can appear earlier:
the shared TAT only grows), so a refused client's retries cost Redis nothing.

When Redis is unreachable the limiter fails OPEN by default (ERP_GATEWAY_RATE_LIMIT_WHEN_
REDIS_DOWN=open): the limit protects capacity, not access (authentication and scopes do
not depend on Redis), and failing closed would make Redis an outage of the whole API.
Each refusal to reach Redis is logged, and the breaker skips Redis for a second at a
time. `closed` refuses every call with UNAVAILABLE instead, for installs that prefer
that. Cells already leased are spent either way: they were granted while Redis was up.
"""
from __future__ import annotations

import asyncio
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
MAX_LEASE_CELLS = 64
MAX_ENTRIES = 10_000  # (client, class) allowances kept; past it the oldest is dropped (its cells are lost)

# KEYS[1]: the client's key for one rate class. ARGV: emission interval (microseconds),
# burst (cells), cells wanted. Returns {cells granted (0 to wanted), microseconds until
# the next cell when none was}. The stored value is the theoretical arrival time (TAT); a
# cell is allowed when TAT - (burst - 1) * interval <= now, so `room` is how many cells fit.
GCRA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local room = math.floor((now + burst * interval - tat) / interval)
if room < 1 then
  return {0, tat - (burst - 1) * interval - now}
end
local granted = math.min(wanted, room)
local new_tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {granted, 0}
"""


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: float = 0.0
    redis_down: bool = False


ALLOWED = Decision(True)


def lease_cells(limit: RateLimit, most: int = MAX_LEASE_CELLS) -> int:
    """Cells taken per round trip: a tenth of the burst, 1 to `most`."""
    return max(1, min(most, limit.burst // 10))


@dataclasses.dataclass
class Allowance:
    """One (client, class)'s local cells, the lease being fetched, and a refusal kept until it ends."""

    cells: int = 0
    pending: asyncio.Future | None = None
    refused_until: float = 0.0


class RateLimiter:
    def __init__(self, url: str, limits: dict[str, RateLimit], prefix: str = "erp:gateway:rl",
                 when_redis_down: str = "open", socket_timeout: float = 0.25, connect_timeout: float = 0.25,
                 max_lease_cells: int = MAX_LEASE_CELLS) -> None:
        self.client = aioredis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout)
        self.script = self.client.register_script(GCRA)
        self.limits, self.prefix, self.when_redis_down = limits, prefix, when_redis_down
        self.max_lease_cells = max_lease_cells
        self._skip_until = 0.0
        self._allowances: dict[str, Allowance] = {}

    async def check(self, client: str, rate_class: str) -> Decision:
        key = f"{self.prefix}:{rate_class}:{client}"
        allowance = self._allowances.get(key)
        if allowance is None:
            if len(self._allowances) >= MAX_ENTRIES:
                del self._allowances[next(iter(self._allowances))]
            allowance = self._allowances[key] = Allowance()
        while True:
            if allowance.cells > 0:
                allowance.cells -= 1
                return ALLOWED
            now = time.monotonic()
            if now < allowance.refused_until:
                return Decision(False, allowance.refused_until - now)
            if now < self._skip_until:
                return self._redis_down()
            if allowance.pending is None:
                limit = self.limits.get(rate_class) or self.limits["read"]
                allowance.pending = asyncio.ensure_future(self._lease(key, limit, allowance))
            # shielded: a caller that goes away does not cancel the lease the others wait for
            await asyncio.shield(allowance.pending)

    async def _lease(self, key: str, limit: RateLimit, allowance: Allowance) -> None:
        """One round trip: adds the granted cells to the allowance, or records the refusal."""
        try:
            granted, wait_us = await self.script(keys=[key], args=[int(1_000_000 / limit.per_second), limit.burst,
                                                                   lease_cells(limit, self.max_lease_cells)])
        except (RedisError, OSError) as exc:
            self._skip_until = time.monotonic() + BREAKER_SECONDS
            log.warning("redis unavailable for rate limits (%s); failing %s for %.0fs", exc.__class__.__name__,
                        self.when_redis_down, BREAKER_SECONDS)
            return
        finally:
            allowance.pending = None
        if granted:
            allowance.cells += int(granted)
        else:
            allowance.refused_until = time.monotonic() + int(wait_us) / 1_000_000

    def _redis_down(self) -> Decision:
        return Decision(self.when_redis_down == "open", redis_down=True)

    async def close(self) -> None:
        await self.client.aclose()


def retry_after_header(seconds: float) -> str:
    """Retry-After is whole seconds (RFC 9110); rounding up never invites an early retry."""
    return str(max(1, math.ceil(seconds)))
