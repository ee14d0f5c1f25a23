"""Cross-cutting concerns of every gRPC call, in one place.

Server side: request and correlation ids, the incoming deadline, structured logs,
the caller's internal token and scopes (when ERP_INTERNAL_AUTH is on), refusing
undecodable requests with INVALID_ARGUMENT, and the one mapping from domain errors to
gRPC status codes (no exception text ever reaches a caller).
Client side: propagate ids and the remaining deadline to outgoing calls.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn, Protocol, TypeAlias, cast, overload

import grpc
from google.protobuf import any_pb2
from grpc_status import rpc_status
from sqlalchemy import exc as sa_exc

from mesh import access, call_context, identity, metrics, tracing, validation
from mesh.errors import DomainError, to_status

log = logging.getLogger("mesh.rpc")

REQUEST_ID_KEY = "x-request-id"
CORRELATION_ID_KEY = "x-correlation-id"
# grpc reports "no deadline" as a very large remaining time.
_NO_DEADLINE = 10**6
# A method's handler as grpc registers it: its request and response types differ per method.
MethodHandler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"  # (a string: grpc's class takes no [] at run time)


class _Malformed:
    """Stands in for a request whose bytes did not decode."""


MALFORMED = _Malformed()
_NOBODY = identity.Identity("", frozenset())


class _Refused:
    """Stands in for a request that decoded but is refused before its handler runs."""

    def __init__(self, error: DomainError) -> None:
        self.error = error


def _safe_deserializer(deserialize: Callable[[bytes], object] | None) -> Callable[[bytes], object] | None:
    """The request, MALFORMED when its bytes do not decode, or _Refused when a string field holds
    NUL (PostgreSQL refuses NUL in text: INVALID_ARGUMENT, not INTERNAL). Strings travel verbatim,
    so a request whose bytes hold no zero byte has no NUL anywhere, and its fields are not walked."""
    if deserialize is None:
        return None

    def decode(raw: bytes) -> object:
        try:
            request = deserialize(raw)
        except Exception:  # noqa: BLE001 - any decode failure is the caller's bad input
            return MALFORMED
        if b"\0" in raw:
            try:
                validation.refuse_nul(request)
            except DomainError as err:
                return _Refused(err)
        return request

    return decode


class CallRefused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class InternalAuth:
    """Checks the gateway's internal token and, again, the method's scopes: a service
    reached around the gateway refuses the call."""

    def __init__(self, secret: str, rules: dict[str, access.Rule] | None = None) -> None:
        identity.check_secret(secret)
        self.secret = secret
        self.rules = access.table() if rules is None else rules

    def caller(self, method: str, metadata: Mapping[str, str]) -> identity.Identity:
        rule = self.rules.get(method)
        if rule is None:  # health, reflection: not an erp API, open like the probes need
            return identity.Identity("", frozenset())
        token = metadata.get(identity.HEADER)
        if not token:
            raise CallRefused(grpc.StatusCode.UNAUTHENTICATED, "call the mesh through the gateway")
        try:
            caller = identity.verify(self.secret, token, method)
        except identity.InvalidToken as exc:
            raise CallRefused(grpc.StatusCode.UNAUTHENTICATED, str(exc)) from None
        if not rule.grants(caller.scopes):
            raise CallRefused(grpc.StatusCode.PERMISSION_DENIED, f"{method} needs scopes {sorted(rule.scopes)}")
        return caller


class ServerCalls(grpc.ServerInterceptor):
    """The server side's per-call work, on every unary method. Services get it at
    registration (`wrapping(server)`); as a grpc interceptor it does the same work, but
    grpc then runs its interceptor pipeline per call on its one polling thread."""

    def __init__(self, auth: InternalAuth | None = None, service: str = "") -> None:
        self.auth = auth
        self.service = service  # named on the call's span
        # method -> its wrapped handler: built on the first call, not on every one.
        self._wrapped: dict[str, MethodHandler] = {}

    def wrapping(self, server: HandlerRegistry) -> WrappingServer:
        """`server` for add_*Servicer_to_server: the handlers it registers come wrapped,
        so no interceptor runs per call (GetStock on the shape of its handler: 6,900 ->
        7,360 calls/s, with the bare echo at 8,300; loadtests/bench.py row 1)."""
        return WrappingServer(server, self)

    def _caller(self, method: str, metadata: Mapping[str, str]) -> identity.Identity:
        if self.auth is not None:
            return self.auth.caller(method, metadata)
        # Without ERP_INTERNAL_AUTH nothing is verified, so nothing is believed either.
        return _NOBODY

    def intercept_service(self, continuation: Callable[[grpc.HandlerCallDetails], MethodHandler | None],
                          handler_call_details: grpc.HandlerCallDetails) -> MethodHandler | None:
        wrapped: MethodHandler | None = self._wrapped.get(handler_call_details.method)
        if wrapped is not None:
            return wrapped
        handler = continuation(handler_call_details)
        wrapped = self.wrapped(handler_call_details.method, handler)
        if wrapped is not None and wrapped is not handler:  # (None only for a None handler)
            self._wrapped[handler_call_details.method] = wrapped
        return wrapped

    @overload
    def wrapped(self, method: str, handler: MethodHandler) -> MethodHandler: ...
    @overload
    def wrapped(self, method: str, handler: MethodHandler | None) -> MethodHandler | None: ...

    def wrapped(self, method: str, handler: MethodHandler | None) -> MethodHandler | None:
        """`handler` with the per-call work around it; streams (health watch, reflection)
        and unknown methods (None: UNIMPLEMENTED) pass as they are."""
        if handler is None or handler.unary_unary is None:
            return handler
        return self._wrap(method, handler, handler.unary_unary)

    def _wrap(self, method: str, handler: MethodHandler,
              inner: Callable[[Any, grpc.ServicerContext], object]) -> MethodHandler:
        served = metrics.rpc_served(method)

        def behavior(request: object, ctx: grpc.ServicerContext) -> object:
            served.started.inc()
            # grpc gives bytes only for the binary ("-bin") keys, which nothing here reads: the ids,
            # the internal token and the trace context are text.
            metadata = cast("dict[str, str]", dict(ctx.invocation_metadata() or ()))
            remaining = ctx.time_remaining()
            timeout = None if remaining is None or remaining > _NO_DEADLINE else remaining
            try:
                caller = self._caller(method, metadata)
            except CallRefused as refused:
                _abort(ctx, method, time.perf_counter(), refused.code, refused.message, [])
            call_context.begin_call(request=metadata.get(REQUEST_ID_KEY, ""),
                               correlation=metadata.get(CORRELATION_ID_KEY, ""),
                               timeout=timeout, caller=caller.subject, caller_scopes=caller.scopes)
            if tracing.enabled():
                with tracing.server_span(method, metadata, self.service) as span:
                    if order_id := getattr(request, "order_id", ""):  # `erp trace ORDER_ID` finds the call
                        span.set_attribute("erp.order_id", order_id)
                    response = _call(method, inner, request, ctx)
                    # ... and the placement by the order it answered with (the answer is final here:
                    # a first try that was not kept, as mesh.idempotency's in one statement, is not)
                    if order_id := getattr(getattr(response, "order", None), "order_id", ""):
                        span.set_attribute("erp.order_id", order_id)
                    return response
            return _call(method, inner, request, ctx)

        return grpc.unary_unary_rpc_method_handler(
            behavior,
            request_deserializer=_safe_deserializer(handler.request_deserializer),
            response_serializer=handler.response_serializer,
        )


class HandlerRegistry(Protocol):
    """What servicers register on (add_*Servicer_to_server): a grpc.Server, or one of the wrapping
    stand-ins below and in mesh.idempotency that hand what is added on to it."""

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, MethodHandler], /) -> None: ...

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler], /) -> None: ...


class HandlerWrapper(Protocol):
    """Puts work around a method's handler: ServerCalls (per-call context, auth, metrics),
    mesh.idempotency's guard (request ids)."""

    def wrapped(self, method: str, handler: MethodHandler | None, /) -> MethodHandler | None: ...


class WrappingServer:
    """Stands for a grpc.Server while servicers register: hands what they add on, wrapped."""

    def __init__(self, server: HandlerRegistry, wrapper: HandlerWrapper) -> None:
        self._server, self._wrapper = server, wrapper

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, MethodHandler]) -> None:
        wrapped = {name: self._wrapper.wrapped(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, {n: h for n, h in wrapped.items() if h is not None})

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_WrappedGeneric(h, self._wrapper) for h in handlers))


class _WrappedGeneric(grpc.GenericRpcHandler):
    """A generic handler (grpc's fallback lookup for methods not registered by name), wrapped."""

    def __init__(self, inner: grpc.GenericRpcHandler, wrapper: HandlerWrapper) -> None:
        self._inner, self._wrapper = inner, wrapper
        self._by_method: dict[str, MethodHandler | None] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> MethodHandler | None:
        method = handler_call_details.method
        if method not in self._by_method:
            self._by_method[method] = self._wrapper.wrapped(method, self._inner.service(handler_call_details))
        return self._by_method[method]


def _call(method: str, inner: Callable[[Any, grpc.ServicerContext], object], request: object,
          ctx: grpc.ServicerContext) -> object:
    started = time.perf_counter()
    if request is MALFORMED:
        _abort(ctx, method, started, grpc.StatusCode.INVALID_ARGUMENT,
               "request body is not a valid protobuf message for " + method, [])
    if isinstance(request, _Refused):
        _abort(ctx, method, started, request.error.code, request.error.message, request.error.details())
    try:
        response = inner(request, ctx)
    except DomainError as err:
        _abort(ctx, method, started, err.code, err.message, err.details())
    except (sa_exc.OperationalError, sa_exc.TimeoutError) as err:
        # Transient: a dropped or refused connection, a deadlock or serialization failure, an
        # exhausted pool. UNAVAILABLE tells the caller (and its channel's retry policy) to try again.
        rid = call_context.request_id.get()
        log.warning("database unavailable in %s: %s", method, err.__class__.__name__,
                    extra={"fields": {"method": method}})
        _abort(ctx, method, started, grpc.StatusCode.UNAVAILABLE,
               f"the database is unavailable right now (request id {rid}); retry", [])
    except Exception:
        # grpc's servicer context has code() (since grpc 1.38); the stubs lack it.
        if ctx.code() not in (None, grpc.StatusCode.OK):  # type: ignore[attr-defined]
            raise  # the servicer aborted on purpose; grpc carries its status
        rid = call_context.request_id.get()
        log.exception("unhandled error in %s", method, extra={"fields": {"method": method}})
        _abort(ctx, method, started, grpc.StatusCode.INTERNAL, f"internal error (request id {rid})", [])
    _observe(method, started, "OK")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("rpc ok", extra={"fields": _fields(method, started, "OK")})
    # The caller learns the id its call is logged under, in the trailers (sent with the status: no
    # write of their own, unlike initial metadata).
    ctx.set_trailing_metadata(((REQUEST_ID_KEY, call_context.request_id.get()),))
    return response


def _observe(method: str, started: float, code: str) -> None:
    metrics.rpc_served(method).done(code, started)
    if tracing.enabled():
        tracing.end_rpc(code, grpc.StatusCode[code].value[0])


def _abort(ctx: grpc.ServicerContext, method: str, started: float, code: grpc.StatusCode, message: str,
           details: list[any_pb2.Any]) -> NoReturn:
    _observe(method, started, code.name)
    level = logging.ERROR if code == grpc.StatusCode.INTERNAL else logging.INFO
    log.log(level, "rpc failed: %s", message, extra={"fields": _fields(method, started, code.name)})
    status = rpc_status.to_status(to_status(code, message, details))
    ctx.abort_with_status(_Status(status.code, status.details,
                                  (*status.trailing_metadata, (REQUEST_ID_KEY, call_context.request_id.get()))))


class _Status(collections.namedtuple("_Status", ("code", "details", "trailing_metadata")), grpc.Status):
    pass


def _fields(method: str, started: float, code: str) -> dict[str, object]:
    return {"method": method, "code": code, "ms": round((time.perf_counter() - started) * 1000, 3)}


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class ClientInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds ids and caps the timeout by the incoming call's remaining deadline. With an
    internal-token secret (ERP_INTERNAL_AUTH on), it also mints the internal token of the
    outgoing call: a service calling another acts on its own authority (the callee
    method's scopes, client id service:<name>: a purchase order's draft may look products
    up for a caller who holds no inventory scope), on behalf of the incoming call's subject
    (or service:<name> when there is none, as in event handlers), which the callee sees."""

    def __init__(self, default_timeout: float, internal_secret: str = "", service: str = "") -> None:
        self.default_timeout = default_timeout
        self.internal_secret = internal_secret
        self.service = service
        self._minter = identity.Minter(internal_secret) if internal_secret else None
        self._minting = threading.Lock()

    def _internal_token(self, method: str) -> str:
        rule = access.table().get(method)
        me = f"service:{self.service}"
        caller = identity.Identity(call_context.subject.get() or me, rule.scopes if rule else frozenset(), me)
        if self._minter is None:
            return identity.mint(self.internal_secret, caller, method)  # (refuses the empty secret)
        with self._minting:
            return self._minter.mint(caller, method)

    def intercept_unary_unary(self, continuation: Callable[[grpc.ClientCallDetails, Any], Any],
                              client_call_details: grpc.ClientCallDetails, request: Any) -> Any:
        timeout = client_call_details.timeout or self.default_timeout
        remaining = call_context.time_remaining()
        if remaining is not None:
            timeout = min(timeout, remaining)
        metadata = list(client_call_details.metadata or ())
        keys = {k for k, _ in metadata}
        rid, cid = call_context.request_id.get(), call_context.correlation_id.get()
        if cid and CORRELATION_ID_KEY not in keys:
            metadata.append((CORRELATION_ID_KEY, cid))
        if rid and REQUEST_ID_KEY not in keys:
            metadata.append((REQUEST_ID_KEY, call_context.new_id()))
        if self.internal_secret and identity.HEADER not in keys:
            metadata.append((identity.HEADER, self._internal_token(client_call_details.method)))
        details = _CallDetails(
            client_call_details.method, timeout, metadata, client_call_details.credentials,
            client_call_details.wait_for_ready, client_call_details.compression,
        )
        started, method = time.perf_counter(), client_call_details.method
        outcome = continuation(details, request)
        outcome.add_done_callback(lambda done: metrics.observe_client(method, done.code().name, started))
        return outcome
