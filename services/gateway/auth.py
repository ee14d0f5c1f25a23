"""Access tokens at the edge (RFC 8725, RFC 9068): JWTs signed by the issuer's keys.

Refused: no token or not a Bearer one, an algorithm outside the allow-list (so never
"none" nor HS*, and a key is only used with an algorithm of its own type: no HS/RS key
confusion), a typ other than at+jwt / JWT, an unknown key id, a wrong issuer or
audience, expired or not yet valid (beyond a small leeway), and a token missing any of
exp, iat, iss, aud, sub.

A verified token is remembered (keyed by its SHA-256, never the token itself) until its
`exp`, so a client that sends the same token on every call pays for the signature once:
verifying RS256/ES256 and parsing the JWT is ~0.3 ms of the gateway's CPU per call. A
remembered token is believed only while the key that verified it is still the key set's
current object for its kid: every JWKS refresh (ERP_GATEWAY_JWKS_REFRESH_SECONDS) builds new
key objects, so a revoked key or a rotated key set ends its tokens' cache entries at the same
moment as it stops new tokens, never later. At most `cache_size` tokens are kept (least
recently used ones go first); refusals are never cached.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable

import jwt

from mesh.identity import Identity
from services.gateway.jwks import KeySet

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
ALLOWED_TYPES = {"at+jwt", "application/at+jwt", "jwt"}
# The key type each asymmetric algorithm family needs.
KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
TOKEN_CACHE_SIZE = 10_000  # verified tokens remembered; ~0.5 KB each


@dataclasses.dataclass(frozen=True)
class Verified:
    """What a verified token established, and what it stays true under."""

    caller: Identity
    expires_at: float  # the token's exp, Unix seconds (the leeway is not extended to cached tokens)
    kid: str
    key: jwt.PyJWK  # the very key object that verified it


class Unauthenticated(Exception):
    """Why a caller is not authenticated; the message is safe to show."""


class Authenticator:
    def __init__(self, keys: KeySet, issuer: str, audience: str, algorithms: tuple[str, ...],
                 leeway_seconds: float = 30, cache_size: int = TOKEN_CACHE_SIZE,
                 clock: Callable[[], float] = time.time) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"only asymmetric algorithms may verify access tokens, not {sorted(unsafe)}")
        if not issuer or not audience:
            raise ValueError("the gateway needs an issuer and an audience (ERP_GATEWAY_ISSUER, ERP_GATEWAY_AUDIENCE)")
        self.keys, self.issuer, self.audience = keys, issuer, audience
        self.algorithms, self.leeway = tuple(algorithms), leeway_seconds
        self.cache_size, self.clock = cache_size, clock
        self._verified: OrderedDict[bytes, Verified] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> Identity:
        token = bearer_token(authorization)
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            # a key gone from the set falls through to the full check, which may refetch the set
            if self.clock() < known.expires_at and self.keys.known(known.kid) is known.key:
                self._verified.move_to_end(digest)
                return known.caller
            self._verified.pop(digest, None)  # expired, or its key was refreshed or removed: verify again
        verified = await self.verify(token)
        if self.cache_size > 0:
            self._verified[digest] = verified
            while len(self._verified) > self.cache_size:
                self._verified.popitem(last=False)
        return verified.caller

    async def verify(self, token: str) -> Verified:
        """The full check of a token, with no cache."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("malformed access token") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise Unauthenticated(f"token algorithm {alg!r} is not accepted")
        if str(header.get("typ", "")).lower() not in ALLOWED_TYPES:
            raise Unauthenticated("token type must be at+jwt")
        key = await self.keys.get(str(header.get("kid", "")))
        if key is None:
            raise Unauthenticated("token signed by an unknown key")
        if key.key_type != KEY_TYPE[alg[:2]]:
            raise Unauthenticated("token algorithm does not match its key")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway, options={"require": REQUIRED_CLAIMS})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"access token refused: {exc}") from None
        caller = Identity(str(claims["sub"]), token_scopes(claims), str(claims.get("client_id") or claims.get("azp") or ""))
        return Verified(caller, float(claims["exp"]), str(header.get("kid", "")), key)


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("missing access token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def token_scopes(claims: dict) -> frozenset[str]:
    """RFC 9068 `scope` (space separated), or a `scp` list as some issuers send."""
    if isinstance(claims.get("scope"), str):
        return frozenset(claims["scope"].split())
    if isinstance(claims.get("scp"), list):
        return frozenset(str(s) for s in claims["scp"])
    return frozenset()
