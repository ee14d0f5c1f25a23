"""The gateway's cache of verified access tokens (services/gateway/auth.py): a token's
signature is checked once, and its cache entry ends with its exp, with the key that
verified it (a JWKS refresh or a removed key), or when the cache is full. No I/O."""
from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.gateway import auth
from services.gateway.auth import Authenticator, Unauthenticated

ISSUER, AUDIENCE = "https://issuer.test", "erp-api"
PRIVATE = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_JWK = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(PRIVATE.public_key())), "kid": "k1", "use": "sig"}


class Keys:
    """A key set as the gateway's KeySet answers it: each refresh makes new key objects."""

    def __init__(self) -> None:
        self.refresh()

    def refresh(self, keys: tuple[dict, ...] = (PUBLIC_JWK,)) -> None:
        self.current = {k["kid"]: jwt.PyJWK(k) for k in keys}

    def known(self, kid: str):
        return self.current.get(kid)

    async def get(self, kid: str):
        return self.current.get(kid)


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def token(subject: str = "user-1", lifetime: int = 300, scope: str = "orders.read") -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "iat": now, "exp": now + lifetime, "scope": scope}
    return jwt.encode(claims, PRIVATE, algorithm="RS256", headers={"kid": "k1", "typ": "at+jwt"})


@pytest.fixture
def decodes(monkeypatch):
    """How many times a signature was verified."""
    calls = []
    real = jwt.decode

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(auth.jwt, "decode", counting)
    return calls


def authenticator(keys=None, clock=None, cache_size=auth.TOKEN_CACHE_SIZE) -> Authenticator:
    return Authenticator(keys or Keys(), ISSUER, AUDIENCE, ("RS256",), cache_size=cache_size,
                         clock=clock or time.time)


def run(a: Authenticator, *tokens: str):
    async def go():
        return [await a.authenticate(f"Bearer {t}") for t in tokens]

    return asyncio.run(go())


def test_the_same_token_is_verified_once_and_gives_the_same_caller(decodes):
    t = token()
    first, second = run(authenticator(), t, t)
    assert first == second and first.subject == "user-1" and first.scopes == {"orders.read"}
    assert len(decodes) == 1


def test_different_tokens_are_verified_each_and_keep_their_own_callers(decodes):
    a, b = run(authenticator(), token("alice", scope="orders.read"), token("bob", scope="orders.write"))
    assert (a.subject, a.scopes, b.subject, b.scopes) == ("alice", {"orders.read"}, "bob", {"orders.write"})
    assert len(decodes) == 2


def test_an_entry_ends_at_the_tokens_expiry(decodes):
    clock = Clock()
    a, t = authenticator(clock=clock), token(lifetime=60)
    run(a, t, t)
    clock.now += 61  # past exp by the cache's clock: verified again (here still inside PyJWT's leeway)
    run(a, t)
    assert len(decodes) == 2


def test_a_jwks_refresh_makes_remembered_tokens_verify_again(decodes):
    keys = Keys()
    a, t = authenticator(keys), token()
    run(a, t)
    keys.refresh()  # same key material, new key objects: the cache does not outlive a refresh
    run(a, t, t)
    assert len(decodes) == 2


def test_a_removed_key_stops_its_remembered_tokens_at_once(decodes):
    keys = Keys()
    a, t = authenticator(keys), token()
    run(a, t)
    keys.refresh(keys=())  # the issuer revoked k1
    with pytest.raises(Unauthenticated, match="unknown key"):
        run(a, t)


def test_a_tampered_token_is_refused_after_the_genuine_one_was_remembered(decodes):
    a, t = authenticator(), token()
    run(a, t)
    head, body, signature = t.split(".")
    forged = ".".join((head, body, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")))
    with pytest.raises(Unauthenticated):
        run(a, forged)


def test_refusals_are_not_remembered(decodes):
    a = authenticator()
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            run(a, token(lifetime=-120))  # expired beyond the leeway
    assert len(decodes) == 2 and not a._verified


def test_the_cache_is_bounded_and_drops_the_least_recently_used(decodes):
    a = authenticator(cache_size=2)
    t1, t2, t3 = token("a"), token("b"), token("c")
    run(a, t1, t2, t1, t3)  # t2 is the least recently used when t3 comes
    assert len(a._verified) == 2 and len(decodes) == 3
    run(a, t1, t3)
    assert len(decodes) == 3
    run(a, t2)
    assert len(decodes) == 4


def test_entries_are_keyed_by_a_hash_never_the_token():
    a, t = authenticator(), token()
    run(a, t)
    assert all(len(k) == 32 and t.encode() not in k for k in a._verified)


def test_size_zero_turns_the_cache_off(decodes):
    a, t = authenticator(cache_size=0), token()
    run(a, t, t)
    assert len(decodes) == 2 and not a._verified
