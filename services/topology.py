"""Who consumes what, for the whole mesh: the map mesh.events.topology declares (every consuming
service's queue and bindings) at every service's start and in `python -m services.tools.migrate`.

The composition root of the event topology: the one module that reads every service's
events.py (import-linter lets each service's wiring import it, and nothing else of another service).
"""
from __future__ import annotations

import functools
import importlib
import inspect

from services import RUNNABLE


@functools.cache
def consumers() -> dict[str, tuple[str, ...]]:
    """{service: the event types it consumes} for every runnable service that consumes any."""
    found = {}
    for name in RUNNABLE:
        types = consumed_event_types(name)
        if types:
            found[name] = types
    return found


def consumed_event_types(service: str) -> tuple[str, ...]:
    """The event types services/<service>/events.py registers handlers for. Its build() only
    registers closures over its arguments (a cache, a config, a wake-up callable), so it is
    called with None for each argument it requires: nothing is started or connected."""
    module = importlib.import_module(f"services.{service}.events")
    required = [p for p in inspect.signature(module.build).parameters.values()
                if p.default is inspect.Parameter.empty]
    return tuple(module.build(*[None] * len(required)).event_types)
