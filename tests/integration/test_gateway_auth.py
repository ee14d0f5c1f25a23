"""Authentication and authorization at the gateway: each way a token can be wrong is
refused on its own, over gRPC and REST alike."""
from __future__ import annotations

import base64
import json
import time
import uuid

import grpc
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from tests.integration.gateway_harness import Harness, RecordingBackend, verify_internal

GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
READ = ["orders.read"]


@pytest.fixture
def backend():
    backend = RecordingBackend()
    yield backend
    backend.stop()


@pytest.fixture
def gateway(redis_server, tmp_path, backend):
    harness = Harness(redis_server, tmp_path, {"orders": f"127.0.0.1:{backend.port}"})
    yield harness
    harness.close()


def refused(gateway, token, code=grpc.StatusCode.UNAUTHENTICATED, method=GET_ORDER) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        gateway.call(method, token=token)
    assert caught.value.code() == code, caught.value.details()
    return caught.value.details()


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_passes_and_the_service_gets_who_called(gateway, backend):
    gateway.call(GET_ORDER, token=gateway.issuer.token(READ))
    seen = backend.seen[-1]
    caller = verify_internal(seen.metadata["x-erp-internal-token"], GET_ORDER)
    assert caller.subject == "user-1" and caller.scopes == {"orders.read"} and "authorization" not in seen.metadata


def test_an_es256_token_passes_too(gateway, backend):
    gateway.call(GET_ORDER, token=gateway.issuer.token(READ, kid="ec-1", alg="ES256"))
    assert len(backend.seen) == 1


def test_missing_token_is_401_and_never_reaches_the_service(gateway, backend):
    refused(gateway, None)
    response = requests.get(f"{gateway.base_url}/v1/orders/o-1", timeout=10)
    assert response.status_code == 401 and response.json()["code"] == 16
    assert backend.seen == []


def test_malformed_token_is_401(gateway, backend):
    refused(gateway, "not.a.jwt")
    refused(gateway, "garbage")
    response = requests.get(f"{gateway.base_url}/v1/orders/o-1", headers={"Authorization": "Basic dXNlcjpw"}, timeout=10)
    assert response.status_code == 401
    assert backend.seen == []


def test_alg_none_is_refused(gateway, backend):
    claims = gateway.issuer.claims(READ)
    token = f"{b64({'alg': 'none', 'typ': 'at+jwt', 'kid': 'rsa-1'})}.{b64(claims)}."
    assert "algorithm" in refused(gateway, token)
    assert backend.seen == []


def test_hs256_signed_with_the_rsa_public_key_is_refused(gateway, backend):
    """The key-confusion attack: the public key (which anyone has) used as an HMAC secret."""
    public_pem = gateway.issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = b64({"alg": "HS256", "typ": "at+jwt", "kid": "rsa-1"})
    payload = b64(gateway.issuer.claims(READ))
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    refused(gateway, f"{header}.{payload}.{signature.rstrip(b'=').decode()}")
    assert backend.seen == []


def test_an_rs256_token_naming_the_ec_key_is_refused(gateway):
    # signed with RSA but claiming the EC key's id: the key type must match the algorithm
    refused(gateway, gateway.issuer.token(READ, kid="ec-1", alg="RS256"))


def test_wrong_issuer_is_refused(gateway):
    assert "issuer" in refused(gateway, gateway.issuer.token(READ, iss="https://evil.test")).lower()


def test_wrong_audience_is_refused(gateway):
    assert "audience" in refused(gateway, gateway.issuer.token(READ, aud="another-api")).lower()


def test_missing_exp_is_refused(gateway):
    assert "exp" in refused(gateway, gateway.issuer.token(READ, exp=None))


def test_missing_sub_is_refused(gateway):
    assert "sub" in refused(gateway, gateway.issuer.token(READ, sub=None))


def test_missing_iat_is_refused(gateway):
    assert "iat" in refused(gateway, gateway.issuer.token(READ, iat=None))


def test_expired_token_is_refused_beyond_the_leeway(gateway):
    now = int(time.time())
    assert "expired" in refused(gateway, gateway.issuer.token(READ, iat=now - 600, exp=now - 120)).lower()


def test_not_yet_valid_token_is_refused(gateway):
    now = int(time.time())
    refused(gateway, gateway.issuer.token(READ, nbf=now + 600))
    refused(gateway, gateway.issuer.token(READ, iat=now + 600, exp=now + 900))


def test_a_token_of_another_type_is_refused(gateway):
    assert "type" in refused(gateway, gateway.issuer.token(READ, typ="id+jwt"))


def test_a_flood_of_random_key_ids_causes_a_bounded_number_of_jwks_fetches(gateway):
    before = gateway.issuer.fetches
    for _ in range(100):
        refused(gateway, gateway.issuer.token(READ, kid=uuid.uuid4().hex))
    # at most one refetch per ERP_GATEWAY_JWKS_MIN_REFETCH_SECONDS (an hour here), however many unknown ids
    assert gateway.issuer.fetches - before <= 1


def test_token_in_the_query_string_is_refused(gateway, backend):
    token = gateway.issuer.token(READ)
    response = requests.get(f"{gateway.base_url}/v1/orders/o-1", params={"access_token": token}, timeout=10)
    assert response.status_code == 401 and "query string" in response.json()["message"]
    assert backend.seen == []


def test_one_missing_scope_is_403(gateway, backend):
    assert "orders.read" in refused(gateway, gateway.issuer.token(["inventory.read", "orders.write"]),
                                    grpc.StatusCode.PERMISSION_DENIED)
    response = requests.get(f"{gateway.base_url}/v1/orders/o-1", timeout=10,
                            headers={"Authorization": f"Bearer {gateway.issuer.token(['orders.write'])}"})
    assert response.status_code == 403 and response.json()["code"] == 7
    assert backend.seen == []


def test_a_prefix_of_the_required_scope_is_not_the_scope(gateway, backend):
    for scopes in (["orders"], ["orders.rea"], ["orders.read.all"], ["orders.*"]):
        refused(gateway, gateway.issuer.token(scopes), grpc.StatusCode.PERMISSION_DENIED)
    assert backend.seen == []


def test_spoofed_identity_headers_are_stripped(gateway, backend):
    spoofed = [("x-erp-internal-token", "forged"), ("x-erp-subject", "admin"), ("x-user-id", "admin"),
               ("x-forwarded-user", "admin"), ("x-auth-request-user", "admin"), ("x-jwt-payload", "e30")]
    gateway.call(GET_ORDER, token=gateway.issuer.token(READ), metadata=[*spoofed, ("x-request-id", "r-1")])
    headers = {k: v for k, v in spoofed}
    requests.get(f"{gateway.base_url}/v1/orders/o-1", timeout=10,
                 headers={**headers, "Authorization": f"Bearer {gateway.issuer.token(READ)}"})
    assert len(backend.seen) == 2
    for seen in backend.seen:
        assert verify_internal(seen.metadata["x-erp-internal-token"], GET_ORDER).subject == "user-1"
        for name, _ in spoofed[1:]:
            assert name not in seen.metadata, name
    assert backend.seen[0].metadata["x-request-id"] == "r-1", "ordinary metadata is passed on"


def test_a_forged_signature_is_refused(gateway):
    header, payload, _ = gateway.issuer.token(READ).split(".")
    forged = jwt.encode(gateway.issuer.claims(READ, sub="admin"), "x" * 32, algorithm="HS256").split(".")[2]
    refused(gateway, f"{header}.{b64(gateway.issuer.claims(READ, sub='admin'))}.{forged}")


def test_a_401_names_the_bearer_scheme_and_says_when_the_token_was_refused(gateway, backend):
    """RFC 6750 section 3: no token (or another scheme) gets a bare challenge; a bearer token that was
    refused gets error="invalid_token"; a token in the query string is an invalid request."""
    url = f"{gateway.base_url}/v1/orders/o-1"
    for headers in ({}, {"Authorization": "Basic dXNlcjpw"}, {"Authorization": "Bearer "}):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer", headers
    expired = gateway.issuer.token(READ, exp=int(time.time()) - 3600)
    for token in ("garbage", expired, gateway.issuer.token(READ, aud="another-api")):
        response = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        challenge = response.headers["WWW-Authenticate"]
        assert response.status_code == 401 and challenge.startswith('Bearer error="invalid_token"'), challenge
        assert ', error_description="' in challenge
    response = requests.get(url, params={"access_token": gateway.issuer.token(READ)}, timeout=10)
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')
    ok = requests.get(url, headers={"Authorization": f"Bearer {gateway.issuer.token(READ)}"}, timeout=10)
    assert ok.status_code == 200 and "WWW-Authenticate" not in ok.headers
    assert len(backend.seen) == 1


def test_a_401_from_the_service_behind_names_the_scheme_too(gateway, backend):
    def unauthenticated(_request, ctx):
        ctx.abort(grpc.StatusCode.UNAUTHENTICATED, "internal token refused")

    backend.replies[GET_ORDER] = unauthenticated
    response = requests.get(f"{gateway.base_url}/v1/orders/o-1",
                            headers={"Authorization": f"Bearer {gateway.issuer.token(READ)}"}, timeout=10)
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
