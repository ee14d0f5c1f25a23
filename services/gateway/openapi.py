"""The OpenAPI 3.1 document of the REST edge, generated from the same route table the
gateway serves (routes.py) and the proto3 JSON mapping (transcode.py). Committed as
services/gateway/openapi.json and served at /openapi.json; a test fails when it is stale.

    python -m services.gateway.openapi           # rewrite openapi.json
    python -m services.gateway.openapi --check   # fail when it is stale
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

from google.protobuf import descriptor

from services.gateway import routes
from services.gateway.routes import Route, RouteTable, Variable

F = descriptor.FieldDescriptor
PATH = Path(__file__).parent / "openapi.json"
INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
UINT32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
WELL_KNOWN = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.Any": {"type": "object", "properties": {"@type": {"type": "string"}}, "required": ["@type"]},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
}
STATUS_SCHEMA = {
    "type": "object",
    "description": "google.rpc.Status: the gRPC code, a message for people, and typed details.",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": WELL_KNOWN["google.protobuf.Any"]},
    },
    "required": ["code", "message"],
}


def scalar_schema(field: descriptor.FieldDescriptor) -> dict:
    if field.type == F.TYPE_MESSAGE:
        name = field.message_type.full_name
        return dict(WELL_KNOWN[name]) if name in WELL_KNOWN else {"$ref": f"#/components/schemas/{name}"}
    if field.type == F.TYPE_ENUM:  # written by name; read by name or number, as the JSON mapping says
        return {"anyOf": [{"type": "string", "enum": [v.name for v in field.enum_type.values]},
                          {"type": "integer", "enum": [v.number for v in field.enum_type.values]}]}
    if field.type in INT64:  # the JSON mapping writes 64-bit integers as strings
        return {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$" if field.type not in
                (F.TYPE_UINT64, F.TYPE_FIXED64) else "^[0-9]+$"}
    if field.type in INT32:
        return {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1}
    if field.type in UINT32:
        return {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1}
    if field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return {"type": "number"}
    if field.type == F.TYPE_BOOL:
        return {"type": "boolean"}
    if field.type == F.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}


def field_schema(field: descriptor.FieldDescriptor) -> dict:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return {"type": "object", "additionalProperties": field_schema(field.message_type.fields_by_name["value"])}
    if field.is_repeated:
        return {"type": "array", "items": scalar_schema(field)}
    return scalar_schema(field)


def parameter_schema(field: descriptor.FieldDescriptor) -> dict:
    """A path or query parameter: text, so an enum is its name or its number written out."""
    if field.type == F.TYPE_ENUM:
        values = field.enum_type.values
        one = {"type": "string", "enum": [v.name for v in values] + [str(v.number) for v in values]}
        return {"type": "array", "items": one} if field.is_repeated else one
    return field_schema(field)


def message_schema(desc: descriptor.Descriptor, leave_out: frozenset[str] = frozenset()) -> dict:
    return {
        "type": "object",
        "properties": {f.json_name: field_schema(f) for f in desc.fields if f.name not in leave_out},
        "additionalProperties": False,
    }


def referenced(desc: descriptor.Descriptor, seen: dict[str, descriptor.Descriptor]) -> None:
    if desc.full_name in seen or desc.full_name in WELL_KNOWN:
        return
    seen[desc.full_name] = desc
    for field in desc.fields:
        if field.message_type is not None:
            target = field.message_type
            if target.GetOptions().map_entry:
                target = target.fields_by_name["value"].message_type
            if target is not None:
                referenced(target, seen)


def openapi_path(route: Route) -> str:
    parts = []
    for segment in route.template.segments:
        parts.append("{" + ".".join(segment.field_path) + "}" if isinstance(segment, Variable) else segment)
    return "/" + "/".join(parts) + (":" + route.template.verb if route.template.verb else "")


def leaf_fields(desc: descriptor.Descriptor, prefix: str = "", depth: int = 0):
    """(dotted name, field) of every field a query parameter can set."""
    for field in desc.fields:
        name = prefix + field.name
        if field.type == F.TYPE_MESSAGE and field.message_type.full_name not in ("google.protobuf.Timestamp",):
            if not field.is_repeated and depth < 2:
                yield from leaf_fields(field.message_type, name + ".", depth + 1)
            continue
        yield name, field


def field_at(desc: descriptor.Descriptor, path: tuple[str, ...]) -> descriptor.FieldDescriptor:
    field = desc.fields_by_name[path[0]]
    return field if len(path) == 1 else field_at(field.message_type, path[1:])


def operation(route: Route) -> dict:
    method, request = route.method, route.method.input_type
    path_vars = [s.field_path for s in route.template.segments if isinstance(s, Variable)]
    bound = {p[0] for p in path_vars} | ({route.body} if route.body not in ("", "*") else set())
    params = [{"name": ".".join(p), "in": "path", "required": True, "schema": parameter_schema(field_at(request, p))}
              for p in path_vars]
    if route.body != "*":
        params += [{"name": name, "in": "query", "required": False, "schema": parameter_schema(field)}
                   for name, field in leaf_fields(request) if name.split(".")[0] not in bound]
    op = {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "tags": [method.containing_service.full_name],
        "description": f"gRPC {route.grpc_path}. Scopes: {', '.join(sorted(route.rule.scopes)) or 'none'}; "
                       f"rate class {route.rule.rate_class}.",
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {
                "schema": {"$ref": f"#/components/schemas/{method.output_type.full_name}"}}}},
            "default": {"description": "An error: the gRPC status as JSON (HTTP status as Envoy maps the code).",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}}},
        },
    }
    if route.rule.scopes or not route.rule.public:
        op["security"] = [{"bearer": sorted(route.rule.scopes)}]
    if route.body == "*":
        schema = message_schema(request, frozenset(p[0] for p in path_vars))
    elif route.body:
        schema = field_schema(request.fields_by_name[route.body])
    else:
        return op
    op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    return op


def generate(table: RouteTable | None = None) -> dict:
    table = routes.build() if table is None else table
    paths: dict[str, dict] = {}
    messages: dict[str, descriptor.Descriptor] = {}
    for route in sorted(table.routes, key=lambda r: (openapi_path(r), r.http_method)):
        paths.setdefault(openapi_path(route), {})[route.http_method.lower()] = operation(route)
        referenced(route.method.input_type, messages)
        referenced(route.method.output_type, messages)
    schemas = {name: message_schema(messages[name]) for name in sorted(messages)}
    schemas["google.rpc.Status"] = STATUS_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": "ERP mesh API", "version": "v1",
                 "description": "REST/JSON edge of the ERP mesh, transcoded to gRPC by the gateway "
                                "(generated from the google.api.http rules; do not edit)."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2) + "\n"


@functools.cache
def committed() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = dumps(generate())
    if args.check:
        if not PATH.exists() or PATH.read_text() != text:
            print(f"{PATH} is stale: run `make gateway-generate`", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(text)
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
