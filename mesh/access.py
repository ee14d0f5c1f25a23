"""Who may call which RPC: the (erp.options.v1.access) option of every RPC, read from
the generated descriptors. The gateway, every service's interceptor and the generated
Istio AuthorizationPolicy all decide from this one table."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from typing import TYPE_CHECKING, cast

from google.protobuf import descriptor

import erp
from erp.options.v1 import access_pb2

if TYPE_CHECKING:
    from google.protobuf.descriptor_pb2 import MethodOptions
    from google.protobuf.internal.extension_dict import _ExtensionFieldDescriptor

# protoc's .pyi types the extension as a plain FieldDescriptor: it is MethodOptions' extension holding an Access
_ACCESS = cast("_ExtensionFieldDescriptor[MethodOptions, access_pb2.Access]", access_pb2.access)

DEFAULT_RATE_CLASS = "read"


@dataclasses.dataclass(frozen=True)
class Rule:
    """The access rule of one RPC."""

    method: str  # the gRPC path, /erp.orders.v1.OrderService/GetOrder
    scopes: frozenset[str]
    public: bool = False
    internal_only: bool = False
    rate_class: str = DEFAULT_RATE_CLASS

    def grants(self, scopes: frozenset[str] | set[str]) -> bool:
        """Every required scope is held, compared whole (a prefix is not the scope)."""
        return self.public or self.scopes <= set(scopes)


def grpc_path(method: descriptor.MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


@functools.cache
def services() -> tuple[descriptor.ServiceDescriptor, ...]:
    """Every gRPC service the erp protos define (imports each generated module once)."""
    found: dict[str, descriptor.ServiceDescriptor] = {}
    for module in pkgutil.walk_packages(erp.__path__, "erp."):
        if module.name.endswith("_pb2"):
            for service in importlib.import_module(module.name).DESCRIPTOR.services_by_name.values():
                found[service.full_name] = service
    return tuple(found[name] for name in sorted(found))


def methods() -> list[descriptor.MethodDescriptor]:
    return [m for s in services() for m in s.methods]


def rule_of(method: descriptor.MethodDescriptor) -> Rule | None:
    options = method.GetOptions()
    if not options.HasExtension(_ACCESS):
        return None
    option = options.Extensions[_ACCESS]
    return Rule(grpc_path(method), frozenset(option.scopes), option.public, option.internal_only,
                option.rate_class or DEFAULT_RATE_CLASS)


@functools.cache
def table() -> dict[str, Rule]:
    """gRPC path -> rule, for every RPC that has one."""
    return {rule.method: rule for rule in map(rule_of, methods()) if rule is not None}


def without_rule() -> list[str]:
    """gRPC paths of the RPCs that carry no access option (each one a mistake)."""
    return [grpc_path(m) for m in methods() if rule_of(m) is None]
