"""The REST route table, from the google.api.http rules of the erp protos.

Path templates follow google/api/http.proto (the grammar Envoy's transcoder and
grpc-gateway implement): literal segments, `*` (one segment), `**` (the rest), variables
`{field.path}` (one segment) or `{field.path=segments}`, and a trailing `:verb`. A
one-segment variable's value is percent-decoded whole; a multi-segment one keeps `%2F`
encoded, so the segment boundaries it matched survive.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor

from mesh import access

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@dataclasses.dataclass(frozen=True)
class Variable:
    field_path: tuple[str, ...]
    segments: tuple[str, ...]  # the sub-pattern: ("*",) when none is given


@dataclasses.dataclass(frozen=True)
class Template:
    text: str
    segments: tuple[str | Variable, ...]
    verb: str

    def match(self, path: str) -> dict[tuple[str, ...], str] | None:
        """The variables' values when the (still percent-encoded) path matches, else None."""
        if not path.startswith("/"):
            return None
        raw = path[1:].split("/")
        if self.verb:
            last, sep, verb = raw[-1].rpartition(":")
            if not sep or unquote(verb) != self.verb:
                return None
            raw[-1] = last
        flat = _flatten(self.segments)
        values: dict[tuple[str, ...], list[str]] = {}
        position = 0
        for index, (pattern, owner) in enumerate(flat):
            if pattern == "**":
                taken = raw[position:] if index == len(flat) - 1 else None
                if taken is None:
                    return None
                position = len(raw)
            else:
                if position >= len(raw) or raw[position] == "":
                    return None
                taken = [raw[position]]
                if pattern != "*" and unquote(raw[position]) != pattern:
                    return None
                position += 1
            if owner is not None:
                values.setdefault(owner.field_path, []).extend(taken)
        if position != len(raw):
            return None
        return {path_: _decode(parts) for path_, parts in values.items()}


def _decode(parts: list[str]) -> str:
    if len(parts) == 1:
        return unquote(parts[0])
    return "/".join(re.sub(r"%(?!2[Ff])([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), p) for p in parts)


def _flatten(segments) -> list[tuple[str, Variable | None]]:
    flat: list[tuple[str, Variable | None]] = []
    for segment in segments:
        if isinstance(segment, Variable):
            flat += [(s, segment) for s in segment.segments]
        else:
            flat.append((segment, None))
    return flat


def parse_template(text: str) -> Template:
    if not text.startswith("/"):
        raise ValueError(f"path template must start with '/': {text!r}")
    body, verb = text[1:], ""
    tail = body.rsplit("/", 1)[-1]
    if ":" in tail and "}" not in tail.rsplit(":", 1)[1]:
        body, verb = body.rsplit(":", 1)
    segments: list[str | Variable] = []
    for token in re.findall(r"\{[^}]*\}|[^/]+", body):
        if token.startswith("{"):
            name, _, pattern = token[1:-1].partition("=")
            segments.append(Variable(tuple(name.split(".")), tuple(pattern.split("/")) if pattern else ("*",)))
        else:
            segments.append(token)
    return Template(text, tuple(segments), verb)


@dataclasses.dataclass(frozen=True)
class Route:
    http_method: str  # upper case
    template: Template
    body: str  # "" (none), "*" or a top-level field name
    method: descriptor.MethodDescriptor
    rule: access.Rule

    @property
    def grpc_path(self) -> str:
        return self.rule.method


def _bindings(rule: http_pb2.HttpRule):
    yield rule
    yield from rule.additional_bindings


def routes_of(method: descriptor.MethodDescriptor, rule: access.Rule) -> list[Route]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    found = []
    for binding in _bindings(options.Extensions[annotations_pb2.http]):
        kind = binding.WhichOneof("pattern")
        if kind in HTTP_METHODS:
            verb, path = kind.upper(), getattr(binding, kind)
        elif kind == "custom":
            verb, path = binding.custom.kind.upper(), binding.custom.path
        else:
            continue
        found.append(Route(verb, parse_template(path), binding.body, method, rule))
    return found


@dataclasses.dataclass(frozen=True)
class Match:
    route: Route
    variables: dict[tuple[str, ...], str]


class NoRoute(Exception):
    def __init__(self, status: int, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(status)
        self.status, self.allowed = status, allowed


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes

    def match(self, http_method: str, path: str) -> Match:
        """The route for a request, or NoRoute(404) / NoRoute(405, allowed methods)."""
        candidates = [(r, v) for r in self.routes if (v := r.template.match(path)) is not None]
        if any(r.template.verb for r, _ in candidates):
            # a path ending in a known :verb belongs to that verb's routes only
            candidates = [(r, v) for r, v in candidates if r.template.verb]
        for route, variables in candidates:
            if route.http_method == http_method.upper():
                return Match(route, variables)
        if candidates:
            raise NoRoute(405, tuple(sorted({r.http_method for r, _ in candidates})))
        raise NoRoute(404)


def build(rules: dict[str, access.Rule] | None = None) -> RouteTable:
    rules = access.table() if rules is None else rules
    routes = []
    for method in access.methods():
        rule = rules.get(access.grpc_path(method))
        if rule is not None and not rule.internal_only:
            routes += routes_of(method, rule)
    return RouteTable(routes)


@functools.cache
def default_table() -> RouteTable:
    return build()
