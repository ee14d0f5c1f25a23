"""Inspect and replay a service's dead letters, on whichever transport is configured.

    python -m mesh.tools.deadletters list inventory [--limit 20]
    python -m mesh.tools.deadletters replay inventory

Uses the same ERP_* settings as the service (ERP_DATABASE_URL, ERP_AMQP_URL, ...).
"""
from __future__ import annotations

import argparse
import json
import sys

from mesh import db
from mesh.events.amqp import AmqpTransport
from mesh.events.envelope import UndecodableEvent, decode
from mesh.events.pgbus import PgTransport
from mesh.service import database_url, libpq_dsn
from mesh.settings import DEFAULT_PORTS, load

# The services that consume events (the gateway has no queue): a mistyped name is an error,
# not an empty listing that exits 0.
CONSUMERS = sorted(name for name in DEFAULT_PORTS if name != "gateway")


def transport_for(service: str):
    settings = load(service)
    if settings.event_transport == "amqp":
        return AmqpTransport(settings.amqp_url, settings.event_retry_base_ms, settings.event_max_attempts,
                             settings.amqp_namespace)
    url = database_url(settings)
    return PgTransport(db.create_engine(url, pool_size=1), libpq_dsn(url))


def describe(letter: dict) -> dict:
    body = letter.pop("body")
    try:
        env = decode(body).envelope
        letter.update(aggregate_id=env.aggregate_id, correlation_id=env.correlation_id,
                      occurred_at=env.occurred_at.ToJsonString())
    except UndecodableEvent as exc:
        letter.update(undecodable=str(exc), size=len(body))
    return letter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "replay"))
    parser.add_argument("service", choices=CONSUMERS, help="the consuming service, for example inventory")
    parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)
    transport = transport_for(args.service)
    if args.action == "list":
        for letter in transport.dead_letters(args.service, args.limit):
            print(json.dumps(describe(letter), default=str))
    else:
        print(f"replayed {transport.replay_dead_letters(args.service)} dead letters into {args.service}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
