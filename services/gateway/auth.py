"""Access tokens at the edge (RFC 8725, RFC 9068): JWTs signed by the issuer's keys.

Refused: no token or not a Bearer one, an algorithm outside the allow-list (so never
"none" nor HS*, and a key is only used with an algorithm of its own type: no HS/RS key
confusion), a typ other than at+jwt / JWT, an unknown key id, a wrong issuer or
audience, expired or not yet valid (beyond a small leeway), and a token missing any of
exp, iat, iss, aud, sub.
"""
from __future__ import annotations

import jwt

from mesh.identity import Identity
from services.gateway.jwks import KeySet

REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]
ALLOWED_TYPES = {"at+jwt", "application/at+jwt", "jwt"}
# The key type each asymmetric algorithm family needs.
KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}


class Unauthenticated(Exception):
    """Why a caller is not authenticated; the message is safe to show."""


class Authenticator:
    def __init__(self, keys: KeySet, issuer: str, audience: str, algorithms: tuple[str, ...],
                 leeway_seconds: float = 30) -> None:
        unsafe = set(algorithms) - ASYMMETRIC
        if unsafe:
            raise ValueError(f"only asymmetric algorithms may verify access tokens, not {sorted(unsafe)}")
        if not issuer or not audience:
            raise ValueError("the gateway needs an issuer and an audience (ERP_GATEWAY_ISSUER, ERP_GATEWAY_AUDIENCE)")
        self.keys, self.issuer, self.audience = keys, issuer, audience
        self.algorithms, self.leeway = tuple(algorithms), leeway_seconds

    async def authenticate(self, authorization: str | None) -> Identity:
        token = bearer_token(authorization)
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
        return Identity(str(claims["sub"]), token_scopes(claims), str(claims.get("client_id") or claims.get("azp") or ""))


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
