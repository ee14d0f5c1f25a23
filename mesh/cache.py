"""A Redis cache that never makes a read fail: when Redis is down, reads go to the
database and the cache is skipped for a short while (a circuit breaker), so a dead
Redis costs one timeout per second, not one per call.

Versioned values (read_through / set_many_if_newer) are also kept in this process (a
near cache), so a hit costs no Redis round trip. Redis tells every process which keys
changed (CLIENT TRACKING in broadcast mode over the cache's prefix, pushed to a
connection of ours that follow_invalidations reads), so a copy lives as long as the
Redis value (the TTL) and is dropped when any process writes the key: a change is seen
here once Redis has pushed its invalidation, normally well under a millisecond after
the writer updated Redis. While that connection is down (or follow_invalidations is not
running), a copy lives only local_ttl_seconds (ERP_CACHE_LOCAL_MS; 0 turns the copy off).

A value read in the last fifth of its lifetime (the last tenth to fifth: spread by key) is loaded
again in the background and its lifetime renewed (refresh ahead), so a key read often never
expires under its readers: without it, every hot key cost one read of the database per TTL on a
caller's path, and keys filled together (a warm-up, a restart) expired together, a stall of many
misses at once every TTL."""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

import redis

from mesh import metrics

if TYPE_CHECKING:
    from redis.connection import ConnectionInterface

log = logging.getLogger("mesh.cache")
_LOCAL_READS, _REDIS_READS, _LOADS = (metrics.CACHE_READS.labels(w) for w in ("local", "redis", "load"))
OPEN_SECONDS = 1.0
INVALIDATION_CHANNEL = "__redis__:invalidate"
PING_SECONDS = 5.0  # how often the invalidation connection proves it is alive

# Values are stored as b"<version>:<payload>"; an older version never replaces a newer one.
# Any number of keys in one call: KEYS[i] gets ARGV[2i] (its version) and ARGV[2i+1] (its value),
# with ARGV[1] the lifetime in ms. One EVALSHA for a whole commit's keys: a pipeline of one script
# call per key cost a SCRIPT EXISTS round trip before it (redis-py checks a pipeline's scripts) and
# a command per key. The cache runs on one Redis (not a cluster), so the keys need no common slot.
SET_IF_NEWER = """
local stored = 0
for i, key in ipairs(KEYS) do
  local version = tonumber(ARGV[2 * i])
  local current = redis.call('GET', key)
  local held = current and tonumber(string.match(current, '^(%d+):'))
  if not (held and held >= version) then
    redis.call('SET', key, ARGV[2 * i] .. ':' .. ARGV[2 * i + 1], 'PX', ARGV[1])
    stored = stored + 1
  end
end
return stored
"""

# A value loaded again before it expires (refresh ahead). ARGV: lifetime ms, version, value.
# - No key: nothing (a writer deleted it, or it expired: the next reader loads it); a refresh never
#   brings back what a writer deleted.
# - An older version there: replaced by this newer one, as set_if_newer would.
# - This very value there: only its lifetime renewed.
# - Anything else (a newer version, or this version with another value: a reorder point changes a
#   level without a new version, and its writer deletes the key instead): left to expire.
RENEW = """
local current = redis.call('GET', KEYS[1])
if not current then
  return 0
end
local held = tonumber(string.match(current, '^(%d+):'))
local version = tonumber(ARGV[2])
if held and held < version then
  redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PX', ARGV[1])
  return 1
end
if current == ARGV[2] .. ':' .. ARGV[3] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
"""
REFRESH_SHARE = 0.2  # read in the last fifth of its lifetime, a value is loaded again in the background
MAX_REFRESHING = 10_000  # keys waiting for their refresh at most; past that, values just expire

# A value and its remaining lifetime in ms, in one round trip (a copy here must not outlive it).
GET_WITH_TTL = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}"


def _versioned(raw: bytes | None) -> tuple[int, bytes] | None:
    if raw is None:
        return None
    version, _, value = raw.partition(b":")
    return int(version), value


class LocalEntries:
    """key -> (expires at, version, value): this process's copy, filled only by reads and
    dropped by invalidations. A fill that began before an invalidation of its key is
    refused: the reader may hold the value that the invalidated write replaced."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, int, bytes]] = {}
        self._lock = threading.Lock()  # invalidations come from the listener and from writers
        self._generations = itertools.count(1)
        self._generation = 0  # of the latest invalidation
        self._dropped_at: dict[str, int] = {}  # key -> generation of its latest invalidation
        self._floor = 0  # fills that began before this generation are refused (all were dropped)

    def get(self, key: str) -> tuple[int, bytes] | None:
        found = self.read(key)
        return None if found is None else (found[1], found[2])

    def read(self, key: str) -> tuple[float, int, bytes] | None:
        """(seconds it has left, version, value) of the copy of key, or None."""
        entry = self._entries.get(key)  # dict reads are atomic under the GIL: no lock on hits
        if entry is None:
            return None
        left = entry[0] - time.monotonic()
        return None if left < 0 else (left, entry[1], entry[2])

    def mark(self) -> int:
        """Taken before reading a value that fill() will keep."""
        return self._generation

    def fill(self, key: str, version: int, value: bytes, seen: int, ttl: float) -> None:
        with self._lock:
            if ttl <= 0 or seen < self._floor or self._dropped_at.get(key, 0) > seen:
                return
            current = self._entries.get(key)
            if current is not None and current[1] > version and current[0] >= time.monotonic():
                return  # a newer value is here already
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # rare; cheaper than tracking recency on every hit
            self._entries[key] = (time.monotonic() + ttl, version, value)

    def invalidate(self, keys: Iterable[str]) -> None:
        with self._lock:
            self._generation = generation = next(self._generations)
            if len(self._dropped_at) >= self.max_entries:
                self._dropped_at.clear()
                self._floor = generation
            for key in keys:
                self._entries.pop(key, None)
                self._dropped_at[key] = generation

    def invalidate_all(self) -> None:
        with self._lock:
            self._generation = self._floor = next(self._generations)
            self._entries.clear()
            self._dropped_at.clear()


class TrackingRefused(Exception):
    """This Redis cannot push invalidations (before 6.0, or an ACL forbids CLIENT TRACKING)."""


class Cache:
    def __init__(self, url: str, prefix: str, ttl_seconds: float, local_ttl_seconds: float = 0.0,
                 socket_timeout: float = 0.25, connect_timeout: float = 0.25) -> None:
        """socket_timeout, connect_timeout: ERP_REDIS_SOCKET_TIMEOUT_SECONDS, ERP_REDIS_CONNECT_TIMEOUT_SECONDS."""
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=connect_timeout,
                                           health_check_interval=30)
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self._open_until = 0.0
        self._set_if_newer = self.client.register_script(SET_IF_NEWER)
        self._get_ttl = self.client.register_script(GET_WITH_TTL)
        self.local = LocalEntries()
        self.local_ttl = local_ttl_seconds
        self.tracking = False  # invalidations are reaching this process
        self._unsettled: set[str] = set()  # keys whose update after a commit did not reach Redis
        self._unsettled_lock = threading.Lock()
        self._renew = self.client.register_script(RENEW)
        self.refresh_within = ttl_seconds * REFRESH_SHARE  # seconds of a value's life left when it is refreshed
        self._refreshing: set[str] = set()  # keys waiting for, or in, their refresh
        self._refresh_lock = threading.Lock()
        self._refresh_queue: queue.SimpleQueue[tuple[str, Callable[[], tuple[int, bytes]]] | None] = queue.SimpleQueue()
        self._refresher: threading.Thread | None = None  # started with the first refresh
        self._closed = False
        self._refresh_warned_at = -60.0  # when a failed refresh was last logged

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
            # bytes: the client does not decode responses (no decode_responses=True)
            return cast(bytes | None, self.client.get(self._key(key)))
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
        """What Redis holds for a key written by set_if_newer, with its version."""
        return _versioned(self.get(key))

    def read_through(self, key: str, load: Callable[[], tuple[int, bytes]],
                     check: Callable[[], None] | None = None) -> tuple[int, bytes]:
        """(version, value) from this process's copy, else Redis, else load() (which may
        raise), stored in Redis; the value read is kept here too. check() (which may raise)
        runs before the key leaves the process: a key kept here passed it when it was stored."""
        kept = self.local.read(key)
        if kept is not None:
            _LOCAL_READS.inc()
            if kept[0] < self.refresh_within and self.tracking and kept[0] < self._due_within(key):
                self._refresh_soon(key, load)  # (tracked, a copy ends with the Redis value)
            return kept[1], kept[2]
        if check is not None:
            check()
        seen = self.local.mark()
        lifetime = 0.0 if self.local_ttl <= 0 else self.ttl_ms / 1000 if self.tracking else self.local_ttl
        found, left_ms = self._get_with_ttl(key)
        if found is None:
            found = load()
            _LOADS.inc()
            self._fill_redis(key, *found)
        else:
            _REDIS_READS.inc()
            if left_ms < self._due_within(key) * 1000:
                self._refresh_soon(key, load)
            lifetime = min(lifetime, left_ms / 1000)  # a copy never outlives the Redis value
        self.local.fill(key, found[0], found[1], seen, lifetime)
        return found

    # ---------------------------------------------------------------------------- refresh ahead
    def _due_within(self, key: str) -> float:
        """Seconds of life left under which key is refreshed: between half the refresh window and
        all of it, by key (its hash, fixed in this process), so keys cached together (a warm-up)
        are not all refreshed in the same second, and stay apart once renewed."""
        return self.refresh_within * (0.5 + (hash(key) & 0xFF) / 510)

    def _refresh_soon(self, key: str, load: Callable[[], tuple[int, bytes]]) -> None:
        """Queues key for one background refresh (once, however many readers see it due)."""
        if key in self._refreshing:
            return
        with self._refresh_lock:
            if key in self._refreshing or len(self._refreshing) >= MAX_REFRESHING or self._closed:
                return
            self._refreshing.add(key)
            if self._refresher is None:
                self._refresher = threading.Thread(target=self._refresh_all, name="cache-refresh", daemon=True)
                self._refresher.start()
        self._refresh_queue.put((key, load))

    def _refresh_all(self) -> None:
        while (job := self._refresh_queue.get()) is not None and not self._closed:
            key, load = job
            try:
                outcome = self._refresh(key, load)
            except Exception as exc:  # noqa: BLE001 - the value expires, and the next reader loads it
                outcome = "failed"
                if time.monotonic() >= self._refresh_warned_at + 60:  # once a minute, not once per key
                    self._refresh_warned_at = time.monotonic()
                    log.warning("refreshing a cached value failed (%s): it expires, and its next reader loads it",
                                exc.__class__.__name__)
            finally:
                with self._refresh_lock:
                    self._refreshing.discard(key)
            metrics.CACHE_REFRESHES.labels(outcome).inc()

    def _refresh(self, key: str, load: Callable[[], tuple[int, bytes]]) -> str:
        """Loads key again and renews it in Redis (see RENEW); the copy here takes the new lifetime,
        unless an invalidation dropped it first. Skipped ("skipped") when Redis is out of reach, or
        the key is gone or no longer due (another replica renewed it, or a writer replaced it)."""
        if not self._available():
            return "skipped"
        try:
            left_ms = self.client.pttl(self._key(key))
            if left_ms < 0 or left_ms > self._due_within(key) * 1000:
                return "skipped"
            seen = self.local.mark()
            version, value = load()
            renewed = self._renew(keys=[self._key(key)], args=[self.ttl_ms, version, value])
        except redis.RedisError as exc:
            self._trip(exc)
            return "failed"
        if not renewed:
            return "refused"
        if self.tracking and self.local_ttl > 0:
            self.local.fill(key, version, value, seen, self.ttl_ms / 1000)
        return "renewed"

    def _get_with_ttl(self, key: str) -> tuple[tuple[int, bytes] | None, int]:
        if not self._available():
            return None, 0
        try:
            raw, left_ms = self._get_ttl(keys=[self._key(key)])
        except redis.RedisError as exc:
            self._trip(exc)
            return None, 0
        return _versioned(raw), left_ms

    def _store(self, entries: list[tuple[str, int, bytes]]) -> None:
        args: list[int | bytes] = [self.ttl_ms]
        for _, version, value in entries:
            args += (version, value)
        self._set_if_newer(keys=[self._key(key) for key, _, _ in entries], args=args)

    def _fill_redis(self, key: str, version: int, value: bytes) -> None:
        if not self._available():
            return
        try:
            self._store([(key, version, value)])
        except redis.RedisError as exc:
            self._trip(exc)

    def set_if_newer(self, key: str, version: int, value: bytes) -> None:
        """Stores value unless the cache already holds this or a newer version, so a slow
        reader can never overwrite what a later writer put there."""
        self.set_many_if_newer([(key, version, value)])

    def set_many_if_newer(self, entries: list[tuple[str, int, bytes]]) -> None:
        """set_if_newer for several (key, version, value) in one round trip (one script call).
        This process's copies are dropped at once (it reads its own writes); the others'
        when Redis pushes the invalidations. Keys whose update does not reach Redis are
        deleted there as soon as it answers again (see settle)."""
        if entries:
            self._write([key for key, _, _ in entries], lambda: self._store(entries))

    def delete(self, *keys: str) -> None:
        if keys:
            self._write(list(keys), lambda: self.client.delete(*(self._key(k) for k in keys)))

    def _write(self, keys: list[str], write: Callable[[], object]) -> None:
        """Every change of keys: this process's copies go at once; Redis gets `write` unless it
        is down or the write fails, and then the keys are deleted there once it answers (settle)."""
        self.local.invalidate(keys)
        if not self._available():
            self._unsettle(keys)
            return
        try:
            self.settle()
            write()
        except redis.RedisError as exc:
            self._unsettle(keys)
            self._trip(exc)

    def _unsettle(self, keys: Iterable[str]) -> None:
        with self._unsettled_lock:
            self._unsettled.update(keys)

    def settle(self) -> None:
        """Deletes from Redis the keys whose update after a commit did not reach it (an
        error, or the breaker open), so the value they hold now cannot outlive the change
        by more than this process's time without Redis. Raises RedisError when Redis fails."""
        if not self._unsettled:
            return
        with self._unsettled_lock:
            if self._unsettled:
                self.client.delete(*(self._key(k) for k in self._unsettled))
                self._unsettled.clear()

    # ---------------------------------------------------------------------------- invalidations
    def follow_invalidations(self, stop: threading.Event) -> None:
        """Runs until stop is set (a service runs it in a thread of its own): keeps
        self.tracking true while Redis pushes this prefix's invalidations, and applies them."""
        if self.local_ttl <= 0:
            return
        backoff = 0.5
        while not stop.is_set():
            conn = None
            try:
                conn = self._tracking_connection()
                self.local.invalidate_all()  # what was kept before now missed no invalidation
                self.tracking, backoff = True, 0.5
                metrics.CACHE_TRACKING.set(1)
                log.info("following cache invalidations for %s:*", self.prefix)
                self._apply_invalidations(conn, stop)
            except TrackingRefused as exc:
                log.warning("redis refuses CLIENT TRACKING (%s): in-process copies live %.0f ms", exc,
                            self.local_ttl * 1000)
                return
            except (redis.RedisError, OSError) as exc:
                if self.tracking:
                    log.warning("cache invalidations lost (%s); in-process copies dropped", exc.__class__.__name__)
            finally:
                was_tracking, self.tracking = self.tracking, False
                metrics.CACHE_TRACKING.set(0)
                if was_tracking:
                    self.local.invalidate_all()
                if conn is not None:
                    conn.disconnect()
            stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _tracking_connection(self) -> ConnectionInterface:
        """A RESP2 connection subscribed to the invalidation channel that receives, by
        redirection to itself, the invalidations of every key under this prefix."""
        pool = redis.ConnectionPool.from_url(self.url, protocol=2, socket_timeout=PING_SECONDS,
                                             socket_connect_timeout=1.0)
        conn = pool.make_connection()
        conn.connect()
        conn.send_command("CLIENT", "SETNAME", f"invalidations:{self.prefix}")  # for CLIENT LIST
        conn.read_response()
        conn.send_command("CLIENT", "ID")
        client_id = conn.read_response()
        try:
            conn.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST",
                              "PREFIX", f"{self.prefix}:")
            conn.read_response()
        except redis.ResponseError as exc:
            conn.disconnect()
            raise TrackingRefused(str(exc)) from None
        conn.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
        conn.read_response()
        return conn

    def _apply_invalidations(self, conn: ConnectionInterface, stop: threading.Event) -> None:
        strip = len(self.prefix) + 1
        pinged_at, answered = time.monotonic(), True
        while not stop.is_set():
            if self._unsettled and self._available():
                try:
                    self.settle()  # without waiting for this process's next write
                except redis.RedisError as exc:
                    self._trip(exc)
            if conn.can_read(timeout=0.1):  # short: stop is noticed soon
                kind, *rest = conn.read_response()
                if kind == b"message":
                    keys = rest[1]
                    if keys is None:  # FLUSHDB / FLUSHALL
                        self.local.invalidate_all()
                    else:
                        self.local.invalidate([k.decode()[strip:] for k in keys])
                elif kind == b"pong":
                    answered = True
            if time.monotonic() - pinged_at >= PING_SECONDS:
                if not answered:
                    raise redis.ConnectionError("no answer to PING on the invalidation connection")
                conn.send_command("PING")
                pinged_at, answered = time.monotonic(), False

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False

    def close(self) -> None:
        with self._refresh_lock:
            self._closed = True  # no refresh is queued or started from now on
        if self._refresher is not None:
            self._refresh_queue.put(None)
            self._refresher.join(timeout=5)
        self.client.close()
