"""A running gateway for the tests, with real parts around it: an issuer's JWKS served
over HTTP (counting fetches), the real Redis for rate limits, and a recording gRPC
backend (a real server) standing in for the services, or the real services."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import threading
import time
import uuid
from concurrent import futures

import grpc
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mesh import identity
from services import local_targets
from services.gateway import service as gateway_service
from tests import support

ISSUER = "https://issuer.test"
AUDIENCE = "erp-api"
SECRET = "test-internal-secret-0123456789-abcdef"


class LoopThread:
    """An asyncio loop in a thread: the gateway is asyncio, the tests are not."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class Issuer:
    """An OAuth issuer's keys: an RSA and an EC key in a JWKS served over HTTP."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.fetches = 0
        self.port = 0

    def jwks(self) -> dict:
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key()))
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key()))
        return {"keys": [{**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                         {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"}]}

    async def serve(self) -> web.AppRunner:
        async def handler(_request):
            self.fetches += 1
            return web.json_response(self.jwks())

        app = web.Application()
        app.router.add_get("/jwks.json", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return runner

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/jwks.json"

    def claims(self, scopes=(), **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300,
                  "scope": " ".join(scopes), "client_id": "client-1"}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, scopes=(), kid="rsa-1", alg="RS256", typ="at+jwt", **claims) -> str:
        key = self.rsa if alg.startswith(("RS", "PS")) else self.ec
        headers = {"kid": kid, "typ": typ} if typ else {"kid": kid}
        return jwt.encode(self.claims(scopes, **claims), key, algorithm=alg, headers=headers)


@dataclasses.dataclass
class Seen:
    method: str
    request: bytes
    metadata: dict
    time_remaining: float | None


class RecordingBackend:
    """A real gRPC server answering every erp method: records what reached it and
    answers with `reply` (bytes, or a callable(request, ctx) -> bytes)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.replies: dict[str, object] = {}
        self.cancelled = threading.Event()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
        self.server.add_generic_rpc_handlers((self,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def service(self, details):
        method = details.method

        def behaviour(request: bytes, ctx: grpc.ServicerContext) -> bytes:
            self.seen.append(Seen(method, request, dict(ctx.invocation_metadata()), ctx.time_remaining()))
            ctx.add_callback(lambda: None if ctx.is_active() else self.cancelled.set())
            reply = self.replies.get(method, b"")
            return reply(request, ctx) if callable(reply) else reply

        return grpc.unary_unary_rpc_method_handler(behaviour)

    def stop(self) -> None:
        self.server.stop(0)


class Harness:
    def __init__(self, redis_url: str, tmp_path, targets: dict[str, str], rules=None, env=None,
                 internal_secret: str = SECRET) -> None:
        self.loop = LoopThread()
        self.issuer = Issuer()
        self.issuer_runner = self.loop.run(self.issuer.serve())
        self.prefix = "gwtest-" + uuid.uuid4().hex[:8]
        settings = support.settings_for(
            "gateway", support.Engines("", redis_url, "postgres", namespace=self.prefix), tmp_path,
            targets={**local_targets(), **targets},
            internal_token_secret=internal_secret, grpc_max_concurrent_rpcs=1024,
            env={"ERP_GATEWAY_JWKS_URL": self.issuer.url, "ERP_GATEWAY_ISSUER": ISSUER,
                 "ERP_GATEWAY_AUDIENCE": AUDIENCE, "ERP_GATEWAY_HTTP_PORT": "0",
                 "ERP_GATEWAY_JWKS_MIN_REFETCH_SECONDS": "3600", **(env or {})})
        self.gateway = self.loop.run(gateway_service.start(settings, rules))
        self.grpc_target = f"127.0.0.1:{self.gateway.grpc_port}"
        self.base_url = f"http://127.0.0.1:{self.gateway.http_port}"
        self.channel = grpc.insecure_channel(self.grpc_target)

    def call(self, method: str, request: bytes = b"", token: str | None = None, metadata=(), timeout=10):
        md = list(metadata) + ([("authorization", f"Bearer {token}")] if token else [])
        return self.channel.unary_unary(method).with_call(request, metadata=md, timeout=timeout)

    def close(self) -> None:
        self.channel.close()
        self.loop.run(self.gateway.stop(0))
        self.loop.run(self.issuer_runner.cleanup())
        self.loop.close()


def verify_internal(token: str, method: str) -> identity.Identity:
    return identity.verify(SECRET, token, method)
