"""A Redis cache that never makes a read fail: when Redis is down, reads go to the
database and the cache is skipped for a short while (a circuit breaker), so a dead
Redis costs one timeout per second, not one per call.

Versioned values (get_versioned/set_if_newer) are also kept in this process for
ERP_CACHE_LOCAL_MS (default 100 ms; 0 turns it off): a hit then costs no Redis round
trip. This process's own writes replace its entries at once (newest version wins), so
only a change committed by another process of the service can be served stale, for at
most that long on top of the Redis bound."""
from __future__ import annotations

import logging
import time

import redis

log = logging.getLogger("mesh.cache")
OPEN_SECONDS = 1.0

# Values are stored as b"<version>:<payload>"; an older version never replaces a newer one.
SET_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+):'))
  if version and version >= tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. ARGV[2], 'PX', ARGV[3])
return 1
"""


class LocalEntries:
    """key -> (expires at, version, value), bounded; dict operations are atomic under the GIL."""

    def __init__(self, ttl_seconds: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, int, bytes]] = {}

    def get(self, key: str) -> tuple[int, bytes] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def put(self, key: str, version: int, value: bytes) -> None:
        if self.ttl <= 0:
            return
        current = self._entries.get(key)
        if current is not None and current[1] > version and current[0] >= time.monotonic():
            return  # a newer value is here already
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare; cheaper than tracking recency on every hit
        self._entries[key] = (time.monotonic() + self.ttl, version, value)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)


class Cache:
    def __init__(self, url: str, prefix: str, ttl_seconds: float, local_ttl_seconds: float = 0.0) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=0.25, socket_connect_timeout=0.25,
                                           health_check_interval=30)
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._open_until = 0.0
        self._set_if_newer = self.client.register_script(SET_IF_NEWER)
        self.local = LocalEntries(local_ttl_seconds)

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _available(self) -> bool:
        return time.monotonic() >= self._open_until

    def _trip(self, exc: Exception) -> None:
        if self._available():
            log.warning("redis unavailable (%s); bypassing the cache for %.0fs", exc.__class__.__name__, OPEN_SECONDS)
        self._open_until = time.monotonic() + OPEN_SECONDS

    def get(self, key: str) -> bytes | None:
        if not self._available():
            return None
        try:
            return self.client.get(self._key(key))
        except redis.RedisError as exc:
            self._trip(exc)
            return None

    def set(self, key: str, value: bytes) -> None:
        if not self._available():
            return
        try:
            self.client.set(self._key(key), value, px=self.ttl_ms)
        except redis.RedisError as exc:
            self._trip(exc)

    def get_versioned(self, key: str) -> tuple[int, bytes] | None:
        """A value stored by set_if_newer, with its version."""
        local = self.local.get(key)
        if local is not None:
            return local
        raw = self.get(key)
        if raw is None:
            return None
        version, _, value = raw.partition(b":")
        self.local.put(key, int(version), value)
        return int(version), value

    def set_if_newer(self, key: str, version: int, value: bytes) -> None:
        """Stores value unless the cache already holds this or a newer version, so a slow
        reader can never overwrite what a later writer put there."""
        self.local.put(key, version, value)
        if not self._available():
            return
        try:
            self._set_if_newer(keys=[self._key(key)], args=[version, value, self.ttl_ms])
        except redis.RedisError as exc:
            self._trip(exc)

    def set_many_if_newer(self, entries: list[tuple[str, int, bytes]]) -> None:
        """set_if_newer for several (key, version, value) in one round trip (a pipeline)."""
        for key, version, value in entries:
            self.local.put(key, version, value)
        if not entries or not self._available():
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, version, value in entries:
                self._set_if_newer(keys=[self._key(key)], args=[version, value, self.ttl_ms], client=pipe)
            pipe.execute()
        except redis.RedisError as exc:
            self._trip(exc)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        for key in keys:
            self.local.drop(key)
        try:
            self.client.delete(*(self._key(k) for k in keys))
        except redis.RedisError as exc:
            # The TTL bounds how long a value can outlive a failed invalidation.
            self._trip(exc)

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        self.client.close()
