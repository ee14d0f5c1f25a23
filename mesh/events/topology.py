"""The event topology, declared up front: every consuming service's queue(s) and bindings.

Before, a service's queue and bindings existed only once its consumer had subscribed, so
an event published earlier (an OrderPlaced before crm's first start) reached fewer consumers.
Now `python -m services.tools.migrate` (the chart's migrations Job) and every service, before its
relay publishes anything, declare the topology of all of them, idempotently: on RabbitMQ the
queues, bindings, retry and dead-letter queues; on the PostgreSQL bus the erp_bus.bindings rows.

What each service consumes is handed in as a map {service: event types} (Consumers): mesh knows
no service; services/topology.py builds the map from every services/<name>/events.py.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from mesh.events.transport import Publisher, TopologyMismatch, Transport

log = logging.getLogger("mesh.events.topology")

Consumers = Mapping[str, Sequence[str]]  # {consuming service: the event types it consumes}


def consumed(consumers: Consumers) -> frozenset[str]:
    """Every event type some service consumes."""
    return frozenset(t for types in consumers.values() for t in types)


def declare_all(transport: Transport, consumers: Consumers) -> None:
    """Declares the queues and bindings of every consuming service on `transport`; idempotent.
    TopologyMismatch (RabbitMQ) when a queue has an older version's arguments."""
    transport.declare_consumers({service: list(types) for service, types in consumers.items()})


def upgrade_all(transport: Transport, consumers: Consumers) -> list[str]:
    """declare_all for `python -m services.tools.migrate`: a RabbitMQ queue with an older version's
    arguments is declared again with this version's, its messages kept (QueueInUse while
    consumers are attached to it). What it changed, one line per queue."""
    upgrade: Callable[[dict[str, list[str]]], list[str]] | None = getattr(transport, "upgrade_consumers", None)
    if upgrade is None:  # the PostgreSQL bus: bindings only, nothing to move
        declare_all(transport, consumers)
        return []
    return upgrade({service: list(types) for service, types in consumers.items()})


def declare_at_start(transport: Transport, consumers: Consumers) -> None:
    """At a service's start: a queue with an older version's arguments fails the start (saying
    which command fixes it); an unreachable broker does not, since the relay declares the
    topology again before its first publish (declaring())."""
    try:
        declare_all(transport, consumers)
    except TopologyMismatch:
        raise
    except Exception as exc:  # noqa: BLE001 - the broker is down: the relay declares when it is back
        log.warning("event topology not declared yet (%s: %s); the relay declares it before publishing",
                    exc.__class__.__name__, exc)


def declaring(transport: Transport, consumers: Consumers) -> Callable[[], Publisher]:
    """The relay's publisher factory: each new publisher (a first start, a reconnection after
    the broker was down or lost its definitions) comes after the topology is declared."""
    def publisher() -> Publisher:
        declare_all(transport, consumers)
        return transport.publisher()
    return publisher
