"""`make migrate` / the chart's migration Job: bring services' schemas to their newest
migration. `python -m mesh.tools.migrate [SERVICE ...]` migrates the named services
(each with its own ERP_<SERVICE>_DATABASE_URL or ERP_DATABASE_URL), or all of them."""
from __future__ import annotations

import importlib
import sys

from mesh import db, logs
from mesh.service import database_url
from mesh.settings import load
from services import RUNNABLE as SERVICES


def main(argv: list[str] | None = None) -> int:
    names = (sys.argv[1:] if argv is None else argv) or list(SERVICES)
    unknown = sorted(set(names) - set(SERVICES))
    if unknown:
        print(f"unknown services: {', '.join(unknown)} (known: {', '.join(SERVICES)})", file=sys.stderr)
        return 2
    logs.configure("migrate", fmt="text")
    for name in names:
        spec = importlib.import_module(f"services.{name}.service").spec()
        settings = load(name)
        url = database_url(settings)
        db.ensure_database(url)
        engine = db.create_engine(url, schema=settings.schema, pool_size=1)
        try:
            db.migrate(engine, settings.schema, spec.migrations_dir)
            print(f"{name}: schema {settings.schema} is at the newest revision")
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
