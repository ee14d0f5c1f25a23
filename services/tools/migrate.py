"""`make migrate` / the chart's migration Job: bring services' schemas to their newest
migration, then declare the event topology of every consuming service (mesh.events.topology).
`python -m services.tools.migrate [SERVICE ...]` migrates the named services (each with its own
ERP_<SERVICE>_DATABASE_URL or ERP_DATABASE_URL), or all of them.

A RabbitMQ queue declared by an older version with other arguments (RabbitMQ cannot change
them in place) is declared again with this version's, its messages kept; that needs its
consumers stopped first, and the command says so (exit 1) while they run."""
from __future__ import annotations

import importlib
import sys

from mesh import db, logs
from mesh.events import topology
from mesh.events.amqp import AmqpTransport, QueueInUse
from mesh.events.pgbus import PgTransport
from mesh.service import database_url, libpq_dsn
from mesh.settings import Settings, load
from services import RUNNABLE as SERVICES
from services.topology import consumers


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        print(f"unknown services: {', '.join(unknown)} (known: {', '.join(SERVICES)})", file=sys.stderr)
        return 2
    logs.configure("migrate", fmt="text")
    declared: set[tuple] = set()
    for name in names:
        spec = importlib.import_module(f"services.{name}.service").spec()
        settings = load(name)
        url = database_url(settings)
        db.ensure_database(url)
        engine = db.create_engine(url, schema=settings.schema, pool_size=1)
        try:
            db.migrate(engine, settings.schema, spec.migrations_dir)
            print(f"{name}: schema {settings.schema} is at the newest revision")
            where = _topology_home(settings, url)
            if where not in declared:  # once per broker namespace, or per database for the PostgreSQL bus
                declared.add(where)
                if not _declare_topology(settings, engine, url):
                    return 1
        finally:
            engine.dispose()
    return 0


def _topology_home(settings: Settings, url: str) -> tuple:
    if settings.event_transport == "amqp":
        return ("amqp", settings.amqp_url, settings.amqp_namespace)
    return ("postgres", url)


def _declare_topology(settings: Settings, engine, url: str) -> bool:
    if settings.event_transport == "amqp":
        transport: AmqpTransport | PgTransport = AmqpTransport.from_settings(settings)
        where = f"RabbitMQ namespace {settings.amqp_namespace}"
    else:
        transport, where = PgTransport(engine, libpq_dsn(url)), "the PostgreSQL event bus"
    try:
        changed = topology.upgrade_all(transport, consumers())
    except QueueInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    for line in changed:
        print(line)
    print(f"event topology declared on {where}: {', '.join(consumers())}")
    return True


if __name__ == "__main__":
    sys.exit(main())
