"""Building and reading event envelopes."""
from __future__ import annotations

import dataclasses

from google.protobuf import any_pb2, message, symbol_database, timestamp_pb2

from erp.events.v1 import envelope_pb2
from mesh import call_context, tracing

_symbols = symbol_database.Default()


def _register_event_modules() -> list[str]:
    """Imports every erp.events.v1 module so that any payload type can be unpacked; returns the
    full names of the messages of its *_events.proto files (every event type there is)."""
    import importlib
    import pkgutil

    import erp.events.v1 as events_package

    messages = []
    for module in pkgutil.iter_modules(events_package.__path__):
        if module.name.endswith("_pb2"):
            imported = importlib.import_module(f"{events_package.__name__}.{module.name}")
            if module.name.endswith("_events_pb2"):
                messages += list(imported.DESCRIPTOR.message_types_by_name.values())
    # A message another one holds as a field (a line item) is a part of events, not an event.
    parts = {f.message_type.full_name for m in messages for f in m.fields if f.message_type is not None}
    return sorted(m.full_name for m in messages if m.full_name not in parts)


_EVENT_TYPE_NAMES = _register_event_modules()


def event_type_names() -> list[str]:
    """Every event type the protos define (erp.events.v1.*_events.proto), by full name."""
    return list(_EVENT_TYPE_NAMES)


def event_type(payload: message.Message | type[message.Message]) -> str:
    return payload.DESCRIPTOR.full_name


def build(
    *, source: str, aggregate_type: str, aggregate_id: str, aggregate_version: int, payload: message.Message
) -> envelope_pb2.EventEnvelope:
    """An envelope stamped with the current call's correlation and causation ids."""
    packed = any_pb2.Any()
    packed.Pack(payload)
    occurred = timestamp_pb2.Timestamp()
    occurred.GetCurrentTime()
    event_id = call_context.new_id()
    return envelope_pb2.EventEnvelope(
        event_id=event_id,
        event_type=event_type(payload),
        source=source,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=aggregate_version,
        occurred_at=occurred,
        correlation_id=call_context.correlation_id.get() or event_id,
        causation_id=call_context.causation_id.get() or event_id,
        payload=packed,
        trace_context=tracing.carrier_of() if tracing.enabled() else None,
    )


class UndecodableEvent(Exception):
    """The bytes are not an envelope, or its payload type is unknown."""


@dataclasses.dataclass(frozen=True)
class Event:
    envelope: envelope_pb2.EventEnvelope
    payload: message.Message


def decode(body: bytes) -> Event:
    try:
        env = envelope_pb2.EventEnvelope.FromString(body)
    except Exception as exc:  # noqa: BLE001
        raise UndecodableEvent(f"not an EventEnvelope: {exc.__class__.__name__}") from exc
    if not env.event_id or not env.event_type:
        raise UndecodableEvent("envelope without event_id or event_type")
    type_name = env.payload.TypeName()
    if type_name != env.event_type:
        raise UndecodableEvent(f"payload type {type_name!r} does not match event_type {env.event_type!r}")
    try:
        cls = _symbols.GetSymbol(type_name)
    except KeyError as exc:
        raise UndecodableEvent(f"unknown event type {type_name!r}") from exc
    payload = cls()
    try:
        unpacked = env.payload.Unpack(payload)
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise UndecodableEvent(f"payload does not decode as {type_name}") from exc
    if not unpacked:
        raise UndecodableEvent(f"payload does not decode as {type_name}")
    return Event(env, payload)
