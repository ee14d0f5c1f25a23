"""The one admission decision of the gateway, the same for gRPC and REST: the method's
access rule, the caller's token, its scopes, its rate limit, and the internal token the
owning service will verify."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2

from mesh import access, identity
from mesh.identity import Identity
from services.gateway.auth import Authenticator, Unauthenticated
from services.gateway.ratelimit import RateLimiter

# Inbound metadata that claims an identity or is the gateway's to set: never passed on.
# The internal token is the only identity a service believes, and only the gateway mints it.
STRIPPED_PREFIXES = ("x-erp-", "x-forwarded-", "x-auth-", "x-user", "x-remote-", "x-jwt-", "x-authenticated-")
STRIPPED_HEADERS = {"authorization", "cookie", "proxy-authorization", "remote-user", "x-client-id", "x-subject",
                    "x-principal", "x-email", "x-scopes", "x-roles", "user-agent", "te", "content-type",
                    "grpc-timeout", "grpc-accept-encoding", "grpc-encoding", "host", "content-length"}


TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
DROPPED_TRACED = STRIPPED_HEADERS | TRACE_HEADERS


def stripped(metadata, traced: bool = False) -> list[tuple[str, str | bytes]]:
    """The caller's metadata minus identity claims and transport headers. A tracing gateway
    also drops the caller's trace context: its own client span's goes in its place."""
    dropped = DROPPED_TRACED if traced else STRIPPED_HEADERS
    kept = []
    for k, v in metadata:
        key = k.lower()
        if key not in dropped and not key.startswith(STRIPPED_PREFIXES) and not key.startswith(":"):
            kept.append((k, v))
    return kept


class Refusal(Exception):
    """The gateway refuses a call; message and details are safe to show the caller."""

    def __init__(self, code: grpc.StatusCode, message: str, details: list[any_pb2.Any] | None = None,
                 retry_after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details or []
        self.retry_after_seconds = retry_after_seconds


@dataclasses.dataclass(frozen=True)
class Admission:
    rule: access.Rule
    caller: Identity
    internal_token: str


class Edge:
    def __init__(self, rules: dict[str, access.Rule], authenticator: Authenticator, limiter: RateLimiter,
                 internal_secret: str) -> None:
        identity.check_secret(internal_secret)
        self.rules, self.authenticator, self.limiter = rules, authenticator, limiter
        self.internal_secret = internal_secret
        self.minter = identity.Minter(internal_secret)

    def rule(self, method: str) -> access.Rule | None:
        """The rule of a method reachable from outside; internal-only ones look unknown."""
        rule = self.rules.get(method)
        return None if rule is None or rule.internal_only else rule

    async def admit(self, method: str, authorization: str | None, peer: Callable[[], str]) -> Admission:
        """`peer` is asked only for a public method called without a token: it names the client then."""
        rule = self.rule(method)
        if rule is None:
            raise Refusal(grpc.StatusCode.UNIMPLEMENTED, f"unknown method {method}")
        if rule.public and not authorization:
            caller, client = Identity("", frozenset()), "peer:" + peer()
        else:
            try:
                caller = await self.authenticator.authenticate(authorization)
            except Unauthenticated as exc:
                raise Refusal(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
            client = "client:" + (caller.client_id or caller.subject)
        if not rule.grants(caller.scopes):
            missing = sorted(rule.scopes - caller.scopes)
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs scope(s) {', '.join(missing)}")
        await self._limit(client, rule.rate_class)
        return Admission(rule, caller, self.minter.mint(caller, method))

    async def _limit(self, client: str, rate_class: str) -> None:
        decision = await self.limiter.check(client, rate_class)
        if decision.allowed:
            return
        if decision.redis_down:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, "rate limiting is unavailable; retry later")
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(decision.retry_after_seconds * 1e9))
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
        raise Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, f"rate limit of class {rate_class} exceeded",
                      [packed], decision.retry_after_seconds)
