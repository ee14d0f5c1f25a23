"""Checks every request gets before its handler: no NUL character in any string field.

PostgreSQL refuses a NUL ("\\x00") in text, so a request carrying one would fail deep in a
handler as INTERNAL; here it is INVALID_ARGUMENT with a field violation naming the field's
path (`lines[2].sku`, `labels["k"]`). It runs on every call, the hot lookups included, so
the walk is planned once per message type: which fields can hold a string at any depth.
A request type without any (most lookups hold only a few strings) costs one dict lookup.
"""
from __future__ import annotations

from typing import cast

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from mesh.errors import FieldViolation, InvalidArgument

NUL = "\x00"
NUL_DESCRIPTION = "must not contain a NUL character (\\u0000)"

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGES = (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)

# Field kinds in a plan.
_STR, _STR_LIST, _MSG, _MSG_LIST, _MAP = range(5)

# Message type -> ((field name, kind, map key is a string, map value kind), ...) for the
# fields that can hold a string somewhere; () when none can.
Plan = tuple[tuple[str, int, bool, int], ...]
_plans: dict[Descriptor, Plan] = {}
_reaches: dict[Descriptor, bool] = {}


def _message_type(f: FieldDescriptor) -> Descriptor:
    # set on every message (and group) field, the only ones this is asked of
    return cast(Descriptor, f.message_type)


def _reaches_string(desc: Descriptor) -> bool:
    """Whether a message of this type can hold a string at any depth (recursive types too)."""
    known = _reaches.get(desc)
    if known is not None:
        return known
    seen: set[str] = set()
    stack = [desc]
    found = False
    while stack and not found:
        current = stack.pop()
        if current.full_name in seen:
            continue
        seen.add(current.full_name)
        for f in current.fields:
            if f.type == _STRING:
                found = True
                break
            if f.type in _MESSAGES:
                stack.append(_message_type(f))
    _reaches[desc] = found
    return found


def _plan(desc: Descriptor) -> Plan:
    plan = _plans.get(desc)
    if plan is not None:
        return plan
    steps = []
    if _reaches_string(desc):
        for f in desc.fields:
            if f.type == _STRING:
                steps.append((f.name, _STR_LIST if f.is_repeated else _STR, False, 0))
            elif f.type in _MESSAGES and _reaches_string(_message_type(f)):
                entry = _message_type(f)
                if entry.GetOptions().map_entry:
                    key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
                    value_kind = _STR if value.type == _STRING else (
                        _MSG if value.type in _MESSAGES and _reaches_string(_message_type(value)) else -1)
                    steps.append((f.name, _MAP, key.type == _STRING, value_kind))
                else:
                    steps.append((f.name, _MSG_LIST if f.is_repeated else _MSG, False, 0))
    plan = tuple(steps)
    _plans[desc] = plan
    return plan


def nul_violations(message: Message) -> list[FieldViolation]:
    """One violation per string field (by its path) that holds a NUL character."""
    # the stubs also name the upb backend's Descriptor class, which stands for this one
    desc = cast(Descriptor, message.DESCRIPTOR)
    plan = _plans.get(desc)
    if plan is None:
        plan = _plan(desc)
    if not plan:
        return []
    found: list[FieldViolation] = []
    _walk(message, plan, "", found)
    return found


def refuse_nul(message: object) -> None:
    """Raises InvalidArgument naming every string field that holds a NUL character."""
    if not isinstance(message, Message):
        return
    found = nul_violations(message)
    if found:
        raise InvalidArgument(found)


def _walk(message: Message, plan: Plan, prefix: str, found: list[FieldViolation]) -> None:
    for name, kind, string_keys, value_kind in plan:
        value = getattr(message, name)
        path = prefix + name
        if kind == _STR:
            if NUL in value:
                found.append(FieldViolation(path, NUL_DESCRIPTION))
        elif kind == _STR_LIST:
            for i, item in enumerate(value):
                if NUL in item:
                    found.append(FieldViolation(f"{path}[{i}]", NUL_DESCRIPTION))
        elif kind == _MSG:
            if message.HasField(name):
                _walk(value, _plan(value.DESCRIPTOR), path + ".", found)
        elif kind == _MSG_LIST:
            for i, item in enumerate(value):
                _walk(item, _plan(item.DESCRIPTOR), f"{path}[{i}].", found)
        else:  # a map
            for key in value:
                if string_keys and NUL in key:
                    found.append(FieldViolation(f"{path} (a key)", NUL_DESCRIPTION))
                    continue
                entry = f'{path}["{key}"]' if string_keys else f"{path}[{key}]"
                if value_kind == _STR:
                    if NUL in value[key]:
                        found.append(FieldViolation(entry, NUL_DESCRIPTION))
                elif value_kind == _MSG:
                    item = value[key]
                    _walk(item, _plan(item.DESCRIPTOR), entry + ".", found)
