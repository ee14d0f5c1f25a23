"""The development token issuer of `make run`: an ES256 key under ERP_DATA_DIR, whose
public half the gateway serves as a JWKS (/dev/jwks.json) when ERP_GATEWAY_DEV_ISSUER
is on, and tokens for the scopes you ask for:

    make token SCOPES="orders.read orders.write"
    .venv/bin/python -m services.gateway.devtoken orders.read inventory.read

Never for production: anyone who can read the data folder can mint tokens.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mesh.settings import load

ISSUER = "erp-dev-issuer"
AUDIENCE = "erp-api"
KID = "erp-dev-1"


def key_file(data_dir: Path) -> Path:
    return data_dir / "gateway" / "dev-issuer-key.pem"


def load_or_create_key(data_dir: Path) -> ec.EllipticCurvePrivateKey:
    path = key_file(data_dir)
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} holds a {type(key).__name__}, not the dev issuer's EC key: remove it to make one")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return key


def jwks(key: ec.EllipticCurvePrivateKey) -> dict:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**public, "kid": KID, "use": "sig", "alg": "ES256"}]}


def token(key: ec.EllipticCurvePrivateKey, scopes: list[str], subject: str = "dev-user",
          ttl_seconds: int = 3600, audience: str = AUDIENCE) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "sub": subject, "iat": now, "nbf": now, "exp": now + ttl_seconds,
              "jti": uuid.uuid4().hex, "scope": " ".join(scopes), "client_id": "erp-dev-cli"}
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID, "typ": "at+jwt"})


def main() -> int:
    parser = argparse.ArgumentParser(description="print a development access token for the local gateway")
    parser.add_argument("scopes", nargs="*", help="scopes, e.g. orders.read inventory.read")
    parser.add_argument("--subject", default="dev-user")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    args = parser.parse_args()
    scopes = [s for item in args.scopes for s in item.split()]
    print(token(load_or_create_key(load("gateway").data_dir), scopes, args.subject, args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
