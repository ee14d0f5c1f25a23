"""JSON to protobuf and back for the REST edge, with the proto3 JSON mapping (what
Envoy's transcoder and grpc-gateway do): lowerCamelCase or proto field names in,
lowerCamelCase out, int64 as strings, enums by name, unknown fields refused."""
from __future__ import annotations

import json
import re

from google.protobuf import descriptor, json_format, message, message_factory, timestamp_pb2
from google.rpc import status_pb2

from services.gateway import descriptors
from services.gateway.routes import Match

F = descriptor.FieldDescriptor

# gRPC code -> HTTP status, as grpc-gateway and Envoy map them.
HTTP_STATUS = {
    0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429,
    9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401,
}
QUERY_SKIPPED = {"access_token"}
WHOLE_NUMBER = re.compile(r"-?[0-9]+")
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|-?\.[0-9]+([eE][-+]?[0-9]+)?")
PARSE_PREFIX = re.compile(r"Failed to parse (\S+) field: ")
PARSER_WORDS = (
    (re.compile(r"invalid literal for int\(\)|Couldn't parse integer|for integer field"), "must be a whole number"),
    (re.compile(r"^Value out of range"), "is out of range"),
    (re.compile(r"could not convert string to float|Couldn't parse float"), "must be a number"),
    (re.compile(r"^expected string or bytes-like object"), "must be a string"),
)
INTEGER_RANGES = {
    **dict.fromkeys((F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32), (-(2**31), 2**31 - 1)),
    **dict.fromkeys((F.TYPE_UINT32, F.TYPE_FIXED32), (0, 2**32 - 1)),
    **dict.fromkeys((F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64), (-(2**63), 2**63 - 1)),
    **dict.fromkeys((F.TYPE_UINT64, F.TYPE_FIXED64), (0, 2**64 - 1)),
}


class BadRequest(Exception):
    """The request does not map onto the method's request message; safe to show."""


def message_class(desc: descriptor.Descriptor) -> type[message.Message]:
    return message_factory.GetMessageClass(desc)


def build_request(match: Match, body: bytes, query: list[tuple[str, str]]) -> message.Message:
    route = match.route
    request = message_class(route.method.input_type)()
    try:
        if route.body:
            data = json.loads(body) if body.strip() else {}
            if route.body == "*":
                if not isinstance(data, dict):
                    raise BadRequest("the request body must be a JSON object")
            else:
                data = {route.body: data}
            _enums_by_name(data, descriptors.of(request))
            json_format.ParseDict(data, request)
        elif body.strip():
            raise BadRequest(f"{route.http_method} {route.template.text} takes no request body")
        bound = {route.body} if route.body and route.body != "*" else set()
        for path, value in match.variables.items():
            _set_path(request, path, [value])
            bound.add(path[0])
        if query and route.body == "*":
            raise BadRequest("query parameters are not accepted where the body is the whole request")
        for name, values in _group(query).items():
            path = tuple(name.split("."))
            top = _field(descriptors.of(request), path[0])
            if top is not None and top.name in bound:
                raise BadRequest(f"{name} is already bound by the path or the body")
            _set_path(request, path, values)
    except json_format.ParseError as exc:
        raise BadRequest(parse_error_message(str(exc))) from None
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError for bytes that are not UTF-8
        raise BadRequest("the request body is not valid JSON") from None
    except RecursionError:  # '[[[[...' deeper than the parser's stack: the caller's input, not our bug
        raise BadRequest("the request body is nested too deeply") from None
    return request


def parse_error_message(text: str) -> str:
    """The JSON parser's complaint in the API's words where it speaks Python's: "Failed to parse
    page field: Failed to parse pageSize field: invalid literal for int() with base 10: 'abc'"
    -> "page.pageSize must be a whole number"."""
    path, rest = [], text
    while match := PARSE_PREFIX.match(rest):
        path.append(match.group(1))
        rest = rest[match.end():]
    name = ".".join(path)
    for pattern, says in PARSER_WORDS:
        if name and pattern.search(rest):
            return f"{name} {says}"
    return f"invalid request: {text}"


def _field(desc: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor | None:
    """A field by its proto name or its JSON (lowerCamelCase) name."""
    return desc.fields_by_name.get(name) or next((f for f in desc.fields if f.json_name == name), None)


def _enum_message(name: str, field: descriptor.FieldDescriptor) -> str:
    return f"{name} must be one of {', '.join(v.name for v in descriptors.enum_type(field).values)}"


def _enums_by_name(data, desc: descriptor.Descriptor, prefix: str = "") -> None:
    """Enums are their names at this edge, as the OpenAPI document says: a number where an enum
    goes is refused (the JSON mapping would take it; the names are the contract people read)."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = _field(desc, key) if isinstance(key, str) else None
        if field is None or value is None:
            continue  # unknown fields are the parser's to refuse
        name = prefix + key
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            field, items = field.message_type.fields_by_name["value"], list(value.values()) if isinstance(value, dict) else []
        else:
            items = value if field.is_repeated and isinstance(value, list) else [value]
        for item in items:
            if field.type == F.TYPE_ENUM and isinstance(item, (int, float)):
                raise BadRequest(_enum_message(name, field))
            if field.type == F.TYPE_MESSAGE and not descriptors.message_type(field).full_name.startswith(
                    "google.protobuf."):
                _enums_by_name(item, descriptors.message_type(field), name + ".")


def _group(query: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for key, value in query:
        grouped.setdefault(key, []).append(value)
    return grouped


def _set_path(request: message.Message, path: tuple[str, ...], values: list[str]) -> None:
    """Sets a (nested) scalar field from path-variable or query-parameter strings."""
    target, desc = request, descriptors.of(request)
    for depth, name in enumerate(path):
        field = _field(desc, name)
        if field is None:
            raise BadRequest(f"unknown field {'.'.join(path)}")
        if depth < len(path) - 1:
            if field.type != F.TYPE_MESSAGE or _is_repeated(field):
                raise BadRequest(f"{'.'.join(path[:depth + 1])} has no fields")
            target, desc = getattr(target, field.name), descriptors.message_type(field)
            continue
        if field.type == F.TYPE_MESSAGE and descriptors.message_type(field).full_name != "google.protobuf.Timestamp":
            raise BadRequest(f"{'.'.join(path)} is a message: set its fields (name.field=value)")
        if not _is_repeated(field) and len(values) > 1:
            raise BadRequest(f"{'.'.join(path)} is given more than once")
        converted = [_scalar(field, v, ".".join(path)) for v in values]
        json_format.ParseDict({field.name: converted if _is_repeated(field) else converted[0]}, target)


def _is_repeated(field: descriptor.FieldDescriptor) -> bool:
    return field.is_repeated


def _scalar(field: descriptor.FieldDescriptor, text: str, name: str):
    """A query or path value checked here, so a wrong one is refused in the API's words (with the
    name the caller wrote), not the parser's ("invalid literal for int() with base 10")."""
    if field.type == F.TYPE_BOOL:
        if text not in ("true", "false"):
            raise BadRequest(f"{name} must be true or false")
        return text == "true"
    if field.type in INTEGER_RANGES:
        low, high = INTEGER_RANGES[field.type]
        if not WHOLE_NUMBER.fullmatch(text):
            raise BadRequest(f"{name} must be a whole number")
        if len(text) > 21 or not low <= int(text) <= high:  # 21: a sign and 2**64's 20 digits
            raise BadRequest(f"{name} must be a whole number from {low} to {high}")
    elif field.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        if not NUMBER.fullmatch(text) and text not in ("NaN", "Infinity", "-Infinity"):
            raise BadRequest(f"{name} must be a number")
    elif field.type == F.TYPE_ENUM and text not in descriptors.enum_type(field).values_by_name:
        raise BadRequest(_enum_message(name, field))
    elif field.type == F.TYPE_MESSAGE and descriptors.message_type(field).full_name == "google.protobuf.Timestamp":
        try:
            timestamp_pb2.Timestamp().FromJsonString(text)
        except ValueError:
            raise BadRequest(f"{name} must be an RFC 3339 time such as 2026-03-01T12:00:00Z") from None
    return text  # the JSON mapping accepts numbers, enums and timestamps as strings


def render(response_bytes: bytes, desc: descriptor.Descriptor) -> bytes:
    response = message_class(desc).FromString(response_bytes)
    return json_format.MessageToJson(response, indent=None).encode()


def status_json(code: int, message_text: str, details=()) -> bytes:
    status = status_pb2.Status(code=code, message=message_text, details=list(details))
    # code and message always, even when empty; the details as the JSON mapping writes them
    body = {"code": code, "message": message_text, **json_format.MessageToDict(status)}
    return json.dumps(body).encode()
