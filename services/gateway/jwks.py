"""The issuer's signing keys, from its JWKS endpoint.

Refreshed in the background; a token naming an unknown key id triggers a refetch, but
at most one per `min_refetch_seconds` however many unknown ids arrive (concurrent
callers share one fetch), so a flood of random key ids cannot turn the gateway into a
load generator against the issuer.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import jwt

log = logging.getLogger("gateway.jwks")
MAX_JWKS_BYTES = 256 * 1024


async def fetch_over_http(url: str) -> dict:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
        response.raise_for_status()
        body = await response.content.read(MAX_JWKS_BYTES + 1)
        if len(body) > MAX_JWKS_BYTES:
            raise ValueError("JWKS document too large")
        return json.loads(body)


class KeySet:
    def __init__(self, url: str, refresh_seconds: float = 300, min_refetch_seconds: float = 30,
                 fetch: Callable[[str], Awaitable[dict]] = fetch_over_http) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self._fetch = fetch
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_fetch = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self.fetches = 0

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            await self.refresh()

    async def refresh(self) -> None:
        """Fetches the key set; on failure keeps the keys it had."""
        self._last_fetch = time.monotonic()
        self.fetches += 1
        try:
            document = await self._fetch(self.url)
            keys = {}
            for entry in document.get("keys", []):
                if entry.get("use", "sig") != "sig" or "kid" not in entry:
                    continue
                try:
                    keys[entry["kid"]] = jwt.PyJWK(entry)
                except jwt.PyJWTError as exc:
                    log.warning("JWKS key %s skipped: %s", entry.get("kid"), exc)
            self._keys = keys
        except Exception as exc:  # noqa: BLE001 - a failed refresh keeps the old keys
            log.warning("JWKS fetch from %s failed: %s", self.url, exc)

    def known(self, kid: str) -> jwt.PyJWK | None:
        """The current key of that id, without fetching: what a cached token's key is checked against."""
        return self._keys.get(kid)

    async def get(self, kid: str) -> jwt.PyJWK | None:
        key = self._keys.get(kid)
        if key is not None:
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._last_fetch >= self.min_refetch_seconds:
                await self.refresh()
                key = self._keys.get(kid)
        return key
