"""PostgreSQL through SQLAlchemy 2 and psycopg 3: engines, schemas, migrations.

Each service owns one schema named after it (and may be given a database of its own
with ERP_<SERVICE>_DATABASE_URL); its tables, outbox, inbox and Alembic version table
all live there, so no service can read another's tables by accident.
"""
from __future__ import annotations

import logging
import zlib
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

log = logging.getLogger("mesh.db")


def sqlalchemy_url(url: str) -> str:
    """Accepts postgres://, postgresql:// or postgresql+psycopg:// and returns the psycopg 3 form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, schema: str | None = None, pool_size: int = 10) -> sa.Engine:
    """An engine whose connections see `schema` first on the search path."""
    connect_args: dict = {"connect_timeout": 5}
    if schema:
        connect_args["options"] = f"-csearch_path={schema},public"
    return sa.create_engine(
        sqlalchemy_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it was a round trip on every checkout (12% of the orders service's time).
        # A connection the server dropped fails its first statement instead; SQLAlchemy then
        # invalidates the pool, the RPC answers UNAVAILABLE (mesh.interceptors) and clients
        # retry it (every RPC is safe to repeat); events are retried by the consumer. Recycling
        # keeps connections younger than the idle limits of proxies and firewalls.
        pool_pre_ping=False,
        pool_recycle=1800,
        pool_timeout=10,
        connect_args=connect_args,
    )


def ensure_database(url: str) -> None:
    """Creates the URL's database when it does not exist (needs CREATEDB on the server)."""
    parsed = make_url(sqlalchemy_url(url))
    name = parsed.database or "postgres"
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def exists(conn) -> bool:
        return bool(conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar())

    try:
        with admin.connect() as conn:
            if not exists(conn):
                log.info("creating database %s", name)
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
                except (sa.exc.ProgrammingError, sa.exc.IntegrityError):
                    # Services starting together race to create it: the loser sees "already
                    # exists" or a unique violation on pg_database. Either way it is there now.
                    if not exists(conn):
                        raise
    finally:
        admin.dispose()


def advisory_key(name: str) -> int:
    """A stable 32-bit key for pg_advisory_lock from a name."""
    return zlib.crc32(name.encode())


def migrate(engine: sa.Engine, schema: str, migrations_dir: Path) -> None:
    """Brings `schema` to the newest revision of the service's own Alembic history.

    Serialized by an advisory lock so replicas starting together migrate once.
    """
    from alembic import command
    from alembic.config import Config

    with engine.connect() as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": advisory_key("migrate:" + schema)})
        try:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.commit()
            cfg = Config()
            cfg.set_main_option("script_location", str(migrations_dir))
            cfg.attributes["connection"] = conn
            cfg.attributes["schema"] = schema
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": advisory_key("migrate:" + schema)})
            conn.commit()


def ping(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
