"""The caller's identity inside the mesh: a short-lived internal token.

The gateway verifies the caller's access token at the edge and passes who the caller is
to the owning service as an internal token: a JWT signed with HS256 by a secret the
gateway and the services share (ERP_INTERNAL_TOKEN_SECRET), valid for one method and
a few seconds. Every service's interceptor verifies it (ERP_INTERNAL_AUTH), so a service
reached directly, around the gateway, refuses the call.
"""
from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable

import jwt

HEADER = "x-erp-internal-token"
ISSUER = "erp-gateway"
AUDIENCE = "erp-mesh"
ALGORITHM = "HS256"
TTL_SECONDS = 30
LEEWAY_SECONDS = 5
MIN_SECRET_BYTES = 32


class InvalidToken(Exception):
    """The internal token is missing, forged, expired or for another method."""


@dataclasses.dataclass(frozen=True)
class Identity:
    subject: str
    scopes: frozenset[str]
    client_id: str = ""


def check_secret(secret: str) -> bytes:
    raw = secret.encode()
    if len(raw) < MIN_SECRET_BYTES:
        raise ValueError(f"ERP_INTERNAL_TOKEN_SECRET must be at least {MIN_SECRET_BYTES} bytes")
    return raw


def mint(secret: str, identity: Identity, method: str, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    claims = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": identity.subject, "iat": issued, "exp": issued + TTL_SECONDS,
        "jti": uuid.uuid4().hex, "scope": " ".join(sorted(identity.scopes)), "azp": identity.client_id,
        # bound to one method: a token that leaks from one call is no key to any other
        "mth": method,
    }
    return jwt.encode(claims, check_secret(secret), algorithm=ALGORITHM)


class Minter:
    """Mints internal tokens, handing out the same one for a (caller, method) for up to
    REUSE_SECONDS: a token is an HMAC-signed JWT encoded per call otherwise (4% of the gateway's
    CPU per call in `make bench-gateway`'s profile). A reused token still has at least
    TTL_SECONDS - REUSE_SECONDS to live when it is sent; its jti identifies no single call
    (nothing checks it). Not thread-safe: the gateway's event loop owns one; a threaded
    caller (mesh.interceptors) guards it with a lock."""

    REUSE_SECONDS = 10.0
    MAX_ENTRIES = 10_000

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        check_secret(secret)
        self.secret, self.clock = secret, clock
        self._minted: dict[tuple[Identity, str], tuple[float, str]] = {}

    def mint(self, identity: Identity, method: str) -> str:
        now = self.clock()
        key = (identity, method)
        found = self._minted.get(key)
        if found is not None and now - found[0] < self.REUSE_SECONDS:
            return found[1]
        if len(self._minted) >= self.MAX_ENTRIES:
            self._minted.clear()  # many callers at once: start over rather than track an order
        token = mint(self.secret, identity, method, now)
        self._minted[key] = (now, token)
        return token


def verify(secret: str, token: str, method: str) -> Identity:
    try:
        claims = jwt.decode(token, check_secret(secret), algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                            leeway=LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "mth"]})
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"internal token refused: {exc}") from None
    if claims["mth"] != method:
        raise InvalidToken("internal token was issued for another method")
    return Identity(claims["sub"], frozenset(str(claims.get("scope", "")).split()), str(claims.get("azp", "")))
