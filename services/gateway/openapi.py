"""The OpenAPI 3.1 document of the REST edge, generated from the same route table the
gateway serves (routes.py) and the proto3 JSON mapping (transcode.py). Committed as
services/gateway/openapi.json and served at /openapi.json (and read by the /docs page); a
test fails when it is stale.

The protos' comments become its descriptions: the generated stubs carry no comments (protoc
leaves source info out of the descriptors it embeds), so generating runs protoc once more over
protos/ with --include_source_info and reads the leading comments of every service, rpc,
message, field, enum and enum value from that descriptor set. Query parameters are named as
the JSON mapping names fields (lowerCamelCase, `page.pageSize`), enums are strings, their names.

    python -m services.gateway.openapi           # rewrite openapi.json
    python -m services.gateway.openapi --check   # fail when it is stale
"""
from __future__ import annotations

import functools
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, descriptor_pb2

from services.gateway import descriptors, generated, routes
from services.gateway.routes import Route, RouteTable, Variable

F = descriptor.FieldDescriptor
PATH = Path(__file__).parent / "openapi.json"
PROTOS = Path(__file__).resolve().parents[2] / "protos"
INT64 = {F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64, F.TYPE_UINT64, F.TYPE_FIXED64}
INT32 = {F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32}
UINT32 = {F.TYPE_UINT32, F.TYPE_FIXED32}
WELL_KNOWN: dict[str, dict[str, Any]] = {
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
        name = descriptors.message_type(field).full_name
        return dict(WELL_KNOWN[name]) if name in WELL_KNOWN else {"$ref": f"#/components/schemas/{name}"}
    if field.type == F.TYPE_ENUM:  # by name, written and read (the REST edge refuses numbers)
        return {"$ref": f"#/components/schemas/{descriptors.enum_type(field).full_name}"}
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


def described(schema: dict, text: str) -> dict:
    return {**schema, "description": text} if text else schema


def property_schema(field: descriptor.FieldDescriptor) -> dict:
    return described(field_schema(field), comment(f"{descriptors.containing_type(field).full_name}.{field.name}"))


def enum_schema(enum: descriptor.EnumDescriptor) -> dict:
    """A named string; its description lists what each value means."""
    values = [f"- `{v.name}`" + (f": {text}" if (text := comment(f"{enum.full_name}.{v.name}")) else "")
              for v in enum.values]
    return {"type": "string", "enum": [v.name for v in enum.values],
            "description": "\n\n".join(filter(None, [comment(enum.full_name), "\n".join(values)]))}


def parameter_schema(field: descriptor.FieldDescriptor) -> dict:
    """A path or query parameter: text, so an enum is one of its names."""
    if field.type == F.TYPE_ENUM:
        one = {"type": "string", "enum": [v.name for v in descriptors.enum_type(field).values]}
        return {"type": "array", "items": one} if field.is_repeated else one
    return field_schema(field)


def message_schema(desc: descriptor.Descriptor, leave_out: frozenset[str] = frozenset()) -> dict:
    return described({
        "type": "object",
        "properties": {f.json_name: property_schema(f) for f in desc.fields if f.name not in leave_out},
        "additionalProperties": False,
    }, comment(desc.full_name))


def referenced(desc: descriptor.Descriptor, seen: dict[str, descriptor.Descriptor | descriptor.EnumDescriptor]) -> None:
    """Every message and enum a message's schema refers to, by full name."""
    if desc.full_name in seen or desc.full_name in WELL_KNOWN:
        return
    seen[desc.full_name] = desc
    for field in desc.fields:
        target = field
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target = field.message_type.fields_by_name["value"]
        if target.enum_type is not None:
            seen.setdefault(target.enum_type.full_name, target.enum_type)
        elif target.message_type is not None:
            referenced(target.message_type, seen)


def openapi_path(route: Route) -> str:
    parts = []
    for segment in route.template.segments:
        parts.append("{" + ".".join(segment.field_path) + "}" if isinstance(segment, Variable) else segment)
    return "/" + "/".join(parts) + (":" + route.template.verb if route.template.verb else "")


def leaf_fields(desc: descriptor.Descriptor, prefix: str = "", depth: int = 0):
    """(dotted JSON name, field) of every field a query parameter can set: `page.pageSize`, as the
    JSON mapping names fields (the REST edge takes the proto names, page.page_size, too)."""
    for field in desc.fields:
        name = prefix + field.json_name
        if field.type == F.TYPE_MESSAGE and descriptors.message_type(field).full_name != "google.protobuf.Timestamp":
            if not field.is_repeated and depth < 2:
                yield from leaf_fields(descriptors.message_type(field), name + ".", depth + 1)
            continue
        yield name, field


def field_at(desc: descriptor.Descriptor, path: tuple[str, ...]) -> descriptor.FieldDescriptor:
    field = desc.fields_by_name[path[0]]
    return field if len(path) == 1 else field_at(descriptors.message_type(field), path[1:])


def operation(route: Route) -> dict:
    method, request = route.method, route.method.input_type
    path_vars = [s.field_path for s in route.template.segments if isinstance(s, Variable)]
    bound = {p[0] for p in path_vars} | ({route.body} if route.body not in ("", "*") else set())
    params = [described({"name": ".".join(p), "in": "path", "required": True,
                         "schema": parameter_schema(field_at(request, p))}, field_comment(request, p))
              for p in path_vars]
    if route.body != "*":
        params += [described({"name": name, "in": "query", "required": False, "schema": parameter_schema(field)},
                             comment(f"{descriptors.containing_type(field).full_name}.{field.name}"))
                   for name, field in leaf_fields(request) if top_level(request, name) not in bound]
    text = comment(f"{method.containing_service.full_name}.{method.name}")
    op: dict[str, Any] = {
        "operationId": f"{method.containing_service.name}_{method.name}",
        "tags": [method.containing_service.full_name],
        "summary": summary(text) or method.name,
        "description": "\n\n".join(filter(None, [
            text, f"gRPC `{route.grpc_path}`. Scopes: {', '.join(sorted(route.rule.scopes)) or 'none'}; "
                  f"rate class {route.rule.rate_class}."])),
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
        op["responses"] = {"200": op["responses"]["200"], "401": UNAUTHENTICATED, "default": op["responses"]["default"]}
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
    types: dict[str, descriptor.Descriptor | descriptor.EnumDescriptor] = {}
    services: dict[str, descriptor.ServiceDescriptor] = {}
    for route in sorted(table.routes, key=lambda r: (openapi_path(r), r.http_method)):
        paths.setdefault(openapi_path(route), {})[route.http_method.lower()] = operation(route)
        referenced(route.method.input_type, types)
        referenced(route.method.output_type, types)
        services.setdefault(route.method.containing_service.full_name, route.method.containing_service)
    schemas = {name: enum_schema(found) if isinstance(found, descriptor.EnumDescriptor) else message_schema(found)
               for name, found in sorted(types.items())}
    schemas["google.rpc.Status"] = STATUS_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": "ERP mesh API", "version": "v1",
                 "description": "REST/JSON edge of the ERP mesh, transcoded to gRPC by the gateway "
                                "(generated from the google.api.http rules and the protos' comments; do not "
                                "edit). Send `Authorization: Bearer <access token>`; errors are a "
                                "google.rpc.Status as JSON. Field and parameter names are the proto3 JSON "
                                "mapping's (lowerCamelCase), 64-bit integers are strings, enums their names."},
        "servers": [{"url": "/", "description": "the gateway serving this document"}],
        "tags": [described({"name": name}, comment(name)) for name in sorted(services)],
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
    }


UNAUTHENTICATED = {
    "description": "No access token, or one refused (RFC 6750: WWW-Authenticate names the Bearer scheme and, "
                   "for a refused token, error=\"invalid_token\").",
    "headers": {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/google.rpc.Status"}}},
}


def top_level(desc: descriptor.Descriptor, dotted: str) -> str:
    """The proto name of the top-level field a dotted (JSON or proto) name starts with."""
    first = dotted.split(".")[0]
    field = desc.fields_by_name.get(first) or next((f for f in desc.fields if f.json_name == first), None)
    return field.name if field is not None else first


def field_comment(desc: descriptor.Descriptor, path: tuple[str, ...]) -> str:
    field = field_at(desc, path)
    return comment(f"{descriptors.containing_type(field).full_name}.{field.name}")


def summary(text: str) -> str:
    """The first sentence of a comment, for an operation's one-line summary."""
    first = re.split(r"(?<=[.:;])\s", text.split("\n\n")[0], maxsplit=1)[0]
    return first.rstrip(".:;")


def comment(full_name: str) -> str:
    return proto_comments().get(full_name, "")


def clean(text: str) -> str:
    """A proto comment as prose: its wrapped lines joined, paragraphs kept."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _googleapis_root() -> Path:
    from google.api import annotations_pb2

    return Path(annotations_pb2.__file__).resolve().parents[2]


@functools.cache
def proto_comments() -> dict[str, str]:
    """Full name -> leading comment of every service, rpc (Service.Method), message, field
    (Message.field), enum and enum value (Enum.VALUE) under protos/erp, read from a descriptor set
    that protoc builds with --include_source_info (the stubs' descriptors carry none)."""
    import importlib.resources

    from grpc_tools import protoc

    sources = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.glob("erp/**/*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "erp.pb"
        args = ["protoc", f"-I{PROTOS}", f"-I{importlib.resources.files('grpc_tools') / '_proto'}",
                f"-I{_googleapis_root()}", "--include_source_info", f"--descriptor_set_out={out}", *sources]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    found: dict[str, str] = {}
    for file in files:
        names = _element_names(file)
        for location in file.source_code_info.location:
            name = names.get(tuple(location.path))
            text = location.leading_comments or location.trailing_comments
            if name and text.strip():
                found[name] = clean(text)
    return found


def _element_names(file: descriptor_pb2.FileDescriptorProto) -> dict[tuple[int, ...], str]:
    """source_code_info path -> full name (descriptor.proto's field numbers: message_type 4,
    enum_type 5, service 6; in a message field 2, nested_type 3, enum_type 4; value 2; method 2)."""
    names: dict[tuple[int, ...], str] = {}

    def enum(e, scope: str, path: tuple[int, ...]) -> None:
        names[path] = full = f"{scope}.{e.name}"
        for i, value in enumerate(e.value):
            names[(*path, 2, i)] = f"{full}.{value.name}"

    def message(m, scope: str, path: tuple[int, ...]) -> None:
        names[path] = full = f"{scope}.{m.name}"
        for i, field in enumerate(m.field):
            names[(*path, 2, i)] = f"{full}.{field.name}"
        for i, nested in enumerate(m.nested_type):
            message(nested, full, (*path, 3, i))
        for i, nested_enum in enumerate(m.enum_type):
            enum(nested_enum, full, (*path, 4, i))

    for i, m in enumerate(file.message_type):
        message(m, file.package, (4, i))
    for i, e in enumerate(file.enum_type):
        enum(e, file.package, (5, i))
    for i, service in enumerate(file.service):
        names[(6, i)] = full = f"{file.package}.{service.name}"
        for j, method in enumerate(service.method):
            names[(6, i, 2, j)] = f"{full}.{method.name}"
    return names


def dumps(document: dict) -> str:
    return json.dumps(document, indent=2) + "\n"


def served(document: dict, server_url: str = "") -> dict:
    """The document as the gateway serves it: its `servers` entry is "/" (this gateway, wherever it
    is reached) unless ERP_GATEWAY_OPENAPI_SERVER_URL names the public URL."""
    if not server_url or not document:
        return document
    return {**document, "servers": [{"url": server_url, "description": "the ERP mesh API"}]}


@functools.cache
def committed() -> dict:
    return json.loads(PATH.read_text()) if PATH.exists() else {}


if __name__ == "__main__":
    sys.exit(generated.main(PATH, lambda: dumps(generate()), (__doc__ or "").splitlines()[0]))
