"""Typed access to protobuf descriptors for the REST edge and its OpenAPI document: a field's message or
enum type where its kind says it has one (the stubs make both Optional), and a message's descriptor."""
from __future__ import annotations

from typing import cast

from google.protobuf import descriptor, message


def of(msg: message.Message) -> descriptor.Descriptor:
    """A message's descriptor. The stubs also allow the C implementation's class, which has the same interface."""
    return cast(descriptor.Descriptor, msg.DESCRIPTOR)


def message_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """The message type of a message (or map) field."""
    if field.message_type is None:
        raise TypeError(f"{field.full_name} is not a message field")
    return field.message_type


def enum_type(field: descriptor.FieldDescriptor) -> descriptor.EnumDescriptor:
    """The enum type of an enum field."""
    if field.enum_type is None:
        raise TypeError(f"{field.full_name} is not an enum field")
    return field.enum_type


def containing_type(field: descriptor.FieldDescriptor) -> descriptor.Descriptor:
    """The message a field belongs to (every field of a message has one)."""
    if field.containing_type is None:
        raise TypeError(f"{field.full_name} belongs to no message")
    return field.containing_type
