"""REST/JSON at the edge: routes from the google.api.http rules (routes.py), the same
admission as gRPC (edge.py), JSON transcoded to the request message (transcode.py) and
forwarded as bytes; errors come back as a google.rpc.Status JSON body with the HTTP
status Envoy and grpc-gateway give each gRPC code."""
from __future__ import annotations

import json
import logging
import re
import time

import grpc
from aiohttp import web
from google.rpc import code_pb2, status_pb2

from mesh import call_context, identity, metrics, tracing
from services.gateway.docs import PAGE_PATH, Page
from services.gateway.edge import TRACE_HEADERS, Edge, Refusal
from services.gateway.ratelimit import retry_after_header
from services.gateway.routes import NoRoute, RouteTable
from services.gateway.transcode import HTTP_STATUS, BadRequest, build_request, render, status_json
from services.gateway.upstream import HIDDEN_CODES, STATUS_DETAILS_KEY, UpstreamError, Upstreams

log = logging.getLogger("gateway.rest")
access_log = logging.getLogger("gateway.access")  # one line per call
JSON = "application/json"
PASSED_HEADERS = ("x-correlation-id",)
ROUTED_METHOD = web.RequestKey("routed_method", str)  # the gRPC method a request was routed to, for metrics
ROUTED_TEMPLATE = web.RequestKey("routed_template", str)  # its path template: the handler label, bounded
REQUEST_ID = web.RequestKey("request_id", str)
# A caller's X-Request-Id is kept when it looks like an id (it goes into every service's logs);
# anything else is replaced by a fresh one.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def error(code: int, message: str, details=(), headers: dict | None = None) -> web.Response:
    if code == code_pb2.UNAUTHENTICATED and "WWW-Authenticate" not in (headers or {}):
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}  # every 401 names its scheme (RFC 9110)
    return web.Response(status=HTTP_STATUS[code], body=status_json(code, message, details), content_type=JSON,
                        headers=headers)


def bearer_challenge(authorization: str | None, error_code: str = "", description: str = "") -> str:
    """The WWW-Authenticate challenge of a 401 (RFC 6750 section 3): a bare `Bearer` when the request
    brought no bearer token, with error="invalid_token" when it brought one that was refused."""
    if not error_code:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "Bearer"
        error_code = "invalid_token"
    # a quoted-string: printable ASCII, with " and \ escaped
    text = "".join(c for c in description if " " <= c <= "~").replace("\\", "\\\\").replace('"', '\\"')
    return f'Bearer error="{error_code}"' + (f', error_description="{text}"' if text else "")


class RestEdge:
    def __init__(self, edge: Edge, upstreams: Upstreams, table: RouteTable, max_deadline_seconds: float,
                 max_body_bytes: int, documents: dict[str, dict], pages: dict[str, Page] | None = None) -> None:
        self.edge, self.upstreams, self.table = edge, upstreams, table
        self.pages = pages or {}  # path -> static page (the /docs page and its assets)
        self.max_deadline, self.max_body = max_deadline_seconds, max_body_bytes
        # path -> JSON document served as is (the OpenAPI, the dev JWKS), serialized once
        self.documents = {path: json.dumps(doc).encode() for path, doc in documents.items()}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body)
        # every path (including ones with a decoded newline) comes to handle(): routing is ours
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        if not tracing.enabled():
            return await self._handle(request)
        with tracing.http_server_span(request.method, request.headers, "gateway") as span:
            response = await self._handle(request)
            tracing.http_route(span, request.method, request.get(ROUTED_TEMPLATE, "unrouted"), response.status)
            return response

    async def _handle(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        given = request.headers.get("x-request-id", "")
        request[REQUEST_ID] = given if WELL_FORMED_ID.fullmatch(given) else call_context.new_id()
        call_context.request_id.set(request[REQUEST_ID])  # this request's own task: its log lines carry it
        try:
            response = await self.transcode(request)
        except Exception:  # noqa: BLE001 - a bug here is a 500 with no text, never a stack trace
            log.exception("REST edge failed on %s %s", request.method, request.path)
            response = error(code_pb2.INTERNAL, "internal error")
        method = request.get(ROUTED_METHOD, "unrouted")
        metrics.observe_http(request.method, request.get(ROUTED_TEMPLATE, "unrouted"), response.status, started)
        response.headers["X-Request-Id"] = request[REQUEST_ID]  # the id to quote in a support request
        millis = (time.perf_counter() - started) * 1000
        access_log.info("%s %s -> %d %s %.1fms", request.method, request.path, response.status, method, millis,
                        extra={"fields": {"http_method": request.method, "path": request.path,
                                          "status": response.status, "grpc_method": method,
                                          "duration_ms": round(millis, 2), "client": request.remote or ""}})
        return response

    async def transcode(self, request: web.Request) -> web.Response:
        path = request.raw_path.split("?", 1)[0]
        if request.method == "GET" and path in self.documents:
            return web.Response(body=self.documents[path], content_type=JSON)
        if request.method == "GET" and path in self.pages:
            page = self.pages[path]
            headers = {**dict(page.headers), "Vary": "Accept-Encoding"}
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                headers["Content-Encoding"] = "gzip"
                return web.Response(body=page.gzipped, content_type=page.content_type, headers=headers)
            return web.Response(body=page.body, content_type=page.content_type, headers=headers)
        if request.method == "GET" and self.pages and path == PAGE_PATH + "/":
            return web.Response(status=308, headers={"Location": "../docs"})
        if "access_token" in request.query:
            message = "tokens in the query string are refused: send Authorization: Bearer <token>"
            return error(code_pb2.UNAUTHENTICATED, message, headers={
                "WWW-Authenticate": bearer_challenge(None, "invalid_request", message)})
        try:
            match = self.table.match(request.method, path)
        except NoRoute as no_route:
            if no_route.status == 405:
                return web.Response(status=405, body=status_json(code_pb2.UNIMPLEMENTED, "method not allowed"),
                                    content_type=JSON, headers={"Allow": ", ".join(no_route.allowed)})
            return error(code_pb2.NOT_FOUND, f"no route for {request.method} {path}")
        request[ROUTED_METHOD] = match.route.grpc_path
        request[ROUTED_TEMPLATE] = match.route.template.text
        if (request.content_length or 0) > self.max_body:
            return self.too_large()
        try:
            admission = await self.edge.admit(match.route.grpc_path, request.headers.get("Authorization"),
                                              lambda: request.remote or "")
        except Refusal as refusal:
            headers = {"Retry-After": retry_after_header(refusal.retry_after_seconds)} \
                if refusal.retry_after_seconds is not None else {}
            if refusal.code == grpc.StatusCode.UNAUTHENTICATED:
                headers["WWW-Authenticate"] = bearer_challenge(request.headers.get("Authorization"),
                                                               description=refusal.message)
            return error(refusal.code.value[0], refusal.message, refusal.details, headers)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self.too_large()
        try:
            upstream_request = build_request(match, body, list(request.query.items()))
        except BadRequest as exc:
            return error(code_pb2.INVALID_ARGUMENT, str(exc))
        # Untraced, the caller's trace context goes on as it came; traced, the client span's replaces it.
        passed = PASSED_HEADERS if tracing.enabled() else (*PASSED_HEADERS, *TRACE_HEADERS)
        metadata = [(h, request.headers[h]) for h in passed if h in request.headers]
        metadata.append(("x-request-id", request[REQUEST_ID]))
        metadata.append((identity.HEADER, admission.internal_token))
        try:
            reply = await self.upstreams.call(match.route.grpc_path, upstream_request.SerializeToString(),
                                              self.max_deadline, metadata)
        except UpstreamError as err:
            return upstream_error(match.route.grpc_path, err)
        return web.Response(body=render(reply.body, match.route.method.output_type), content_type=JSON)

    def too_large(self) -> web.Response:
        return web.Response(status=413, content_type=JSON, body=status_json(
            code_pb2.RESOURCE_EXHAUSTED, f"request body larger than {self.max_body} bytes"))


def upstream_error(method: str, err: UpstreamError) -> web.Response:
    code = err.code.value[0]
    if err.code in HIDDEN_CODES:
        log.error("%s failed upstream with %s: %s", method, err.code.name, err.message)
        return error(code, "internal error")
    details = []
    raw = next((v for k, v in err.trailing_metadata if k == STATUS_DETAILS_KEY), None)
    if raw:
        try:
            details = list(status_pb2.Status.FromString(raw).details)
        except Exception:  # noqa: BLE001 - undecodable details are dropped, the status stays
            details = []
    return error(code, err.message, details)
