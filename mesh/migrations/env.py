"""Shared Alembic environment: every service's migrations/env.py runs this.

The connection and schema come from mesh.db.migrate; the version table lives in the
service's own schema, so each service has its own migration history.
"""
from __future__ import annotations

from alembic import context


def run() -> None:
    cfg = context.config
    connection = cfg.attributes["connection"]
    schema = cfg.attributes["schema"]
    context.configure(connection=connection, version_table_schema=schema, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
