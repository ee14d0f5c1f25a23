"""`make migrate`: bring every service's schema to its newest migration."""
from __future__ import annotations

import dataclasses
import importlib
import sys

from mesh import db, logs
from mesh.service import database_url
from mesh.settings import load

SERVICES = ("inventory", "orders")


def main() -> int:
    logs.configure("migrate", fmt="text")
    for name in SERVICES:
        spec = importlib.import_module(f"services.{name}.service").spec()
        settings = dataclasses.replace(load(name))
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
