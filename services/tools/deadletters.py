"""Inspect, replay and discard a service's dead letters and parked events, on whichever
transport is configured (`erp deadletters ...` runs this too).

    python -m services.tools.deadletters list inventory [--limit 20]
    python -m services.tools.deadletters show inventory EVENT_ID
    python -m services.tools.deadletters replay inventory EVENT_ID | --all [--kind dead|parked]
    python -m services.tools.deadletters discard inventory EVENT_ID | --all [--kind dead|parked]

Dead letters are events the service's consumer gave up on; parked events are the service's
own outbox rows no queue was bound to (mesh.events.dead_letters). Both live in the service's
schema: listing reads rows and consumes nothing. Every command first moves what RabbitMQ
dead-lettered (the service queue's delivery limit) from `<ns>.<service>.dlq` into that table.
A replayed dead letter goes back into the service's queue with its attempts reset; a replayed
parked event goes back to the relay. Exit status: 0 done, 1 an error (no such event id, broker
or database unreachable), 2 a usage error (a mistyped service name among them).
Uses the same ERP_* settings as the service (ERP_DATABASE_URL, ERP_AMQP_URL, ...).
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys

import sqlalchemy as sa
from google.protobuf import json_format

from mesh import db
from mesh.events import dead_letters
from mesh.events.amqp import AmqpTransport
from mesh.events.envelope import UndecodableEvent, decode
from mesh.events.pgbus import PgTransport
from mesh.service import database_url, libpq_dsn
from mesh.settings import load
from services import RUNNABLE

# The services that consume events and publish them (the gateway does neither): a mistyped
# name is an error, not an empty listing that exits 0.
SERVICES = sorted(RUNNABLE)


@dataclasses.dataclass
class Store:
    """A service's dead-letter store and its transport."""

    service: str
    engine: sa.Engine
    transport: AmqpTransport | PgTransport

    @classmethod
    def open(cls, service: str) -> Store:
        settings = load(service)
        url = database_url(settings)
        engine = db.create_engine(url, schema=settings.schema, pool_size=1)
        if settings.event_transport == "amqp":
            return cls(service, engine, AmqpTransport.from_settings(settings))
        return cls(service, engine, PgTransport(engine, libpq_dsn(url)))

    def drain(self) -> int:
        """Moves what the transport dead-lettered into the table, so that it is listed too."""
        return self.transport.drain_dead_letters(self.service, dead_letters.recorder(self.engine))


def describe(row: dict, with_body: bool = False) -> dict:
    """A row as JSON-friendly values, with what its envelope says (and, on demand, its payload)."""
    found = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if k != "body"}
    body = bytes(row.get("body") or b"")
    try:
        event = decode(body)
        env = event.envelope
        found.update(aggregate_id=env.aggregate_id, source_service=env.source, correlation_id=env.correlation_id,
                     occurred_at=env.occurred_at.ToJsonString())
        if with_body:
            found["payload"] = json_format.MessageToDict(event.payload, preserving_proto_field_name=True)
    except UndecodableEvent as exc:
        found.update(undecodable=str(exc), size=len(body))
        if with_body:
            found["body_base64"] = base64.b64encode(body).decode()
    return found


def _list(store: Store, args) -> int:
    for row in dead_letters.listing(store.engine, args.limit):
        print(json.dumps(describe(row), default=str))
    return 0


def _show(store: Store, args) -> int:
    print(json.dumps(describe(dead_letters.show(store.engine, args.event_id), with_body=True), indent=2,
                     default=str))
    return 0


def _replay(store: Store, args) -> int:
    event_id = None if args.all else args.event_id
    dead = parked = 0
    if args.kind in (None, "dead"):
        dead = dead_letters.replay(store.engine, store.transport, store.service, event_id)
    if args.kind in (None, "parked") and not (event_id and dead):
        parked = dead_letters.replay_parked(store.engine, event_id)
    return _report(store, args, "replayed", dead, parked)


def _discard(store: Store, args) -> int:
    event_id = None if args.all else args.event_id
    dead = parked = 0
    if args.kind in (None, "dead"):
        dead = dead_letters.discard(store.engine, event_id)
    if args.kind in (None, "parked") and not (event_id and dead):
        parked = dead_letters.discard_parked(store.engine, event_id)
    return _report(store, args, "discarded", dead, parked)


def _report(store: Store, args, verb: str, dead: int, parked: int) -> int:
    if not args.all and not dead + parked:
        raise dead_letters.NotFound(args.event_id)
    print(f"{store.service}: {verb} {dead} dead letters and {parked} parked events")
    return 0


ACTIONS = {"list": _list, "show": _show, "replay": _replay, "discard": _discard}


def parser(prog: str = "python -m services.tools.deadletters") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="action", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_text)
        c.add_argument("service", choices=SERVICES, help="the service, for example inventory")
        return c

    command("list", "dead letters, then parked events, oldest first").add_argument("--limit", type=int, default=20)
    command("show", "one dead letter or parked event, with its payload").add_argument("event_id")
    for name, verb in (("replay", "send back (dead letters: into the service's queue; parked: to the relay)"),
                       ("discard", "delete for good")):
        c = command(name, f"{verb}: one event or --all")
        which = c.add_mutually_exclusive_group(required=True)
        which.add_argument("event_id", nargs="?")
        which.add_argument("--all", action="store_true")
        c.add_argument("--kind", choices=("dead", "parked"), help="only dead letters, or only parked events")
    return p


def main(argv: list[str] | None = None, prog: str = "python -m services.tools.deadletters") -> int:
    args = parser(prog).parse_args(argv)
    try:
        store = Store.open(args.service)
        try:
            store.drain()
            return ACTIONS[args.action](store, args)
        finally:
            store.engine.dispose()
    except dead_letters.NotFound as exc:
        print(f"error: {args.service} has no dead letter or parked event {exc}", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - broker or database down, and the like: say so, exit 1
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
