"""PostgreSQL through SQLAlchemy 2 and psycopg 3: engines, schemas, migrations.

Each service owns one schema named after it (and may be given a database of its own
with ERP_<SERVICE>_DATABASE_URL); its tables, outbox, inbox and Alembic version table
all live there, so no service can read another's tables by accident.
"""
from __future__ import annotations

import dataclasses
import logging
import zlib
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mesh.settings import Variables

log = logging.getLogger("mesh.db")


def sqlalchemy_url(url: str) -> str:
    """Accepts postgres://, postgresql:// or postgresql+psycopg:// and returns the psycopg 3 form."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    else:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}: use postgresql://")
    return parsed.render_as_string(hide_password=False)


@dataclasses.dataclass(frozen=True)
class Timeouts:
    """Every network wait on PostgreSQL is bounded (DESIGN decision 12). A black-holed server
    (packets dropped, not refused) otherwise holds a connection until the kernel gives up,
    about 15 minutes: connect_timeout bounds the connection's start, tcp_user_timeout bounds
    unacknowledged data, keepalives find a dead peer on an idle connection, and the statement
    and lock timeouts bound what the server itself may take."""

    connect_seconds: int = 5
    statement_ms: int = 30_000
    lock_ms: int = 10_000
    tcp_user_timeout_ms: int = 10_000
    keepalive_idle_seconds: int = 10
    keepalive_interval_seconds: int = 5
    keepalive_count: int = 3

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Timeouts:
        """ERP_DB_CONNECT_TIMEOUT_SECONDS, ERP_DB_STATEMENT_TIMEOUT_MS, ERP_DB_LOCK_TIMEOUT_MS,
        ERP_DB_TCP_USER_TIMEOUT_MS (README's configuration table); 0 turns one off."""
        v = Variables(env)

        def read(name: str, default: int) -> int:
            return v.integer(name, default, least=0)

        return cls(connect_seconds=read("ERP_DB_CONNECT_TIMEOUT_SECONDS", cls.connect_seconds),
                   statement_ms=read("ERP_DB_STATEMENT_TIMEOUT_MS", cls.statement_ms),
                   lock_ms=read("ERP_DB_LOCK_TIMEOUT_MS", cls.lock_ms),
                   tcp_user_timeout_ms=read("ERP_DB_TCP_USER_TIMEOUT_MS", cls.tcp_user_timeout_ms))

    def connect_args(self, schema: str | None) -> dict[str, object]:
        options = f"-cstatement_timeout={self.statement_ms} -clock_timeout={self.lock_ms}"
        if schema:
            options += f" -csearch_path={schema},public"
        # application_name: pg_stat_activity and the server's log name the service a session serves.
        return {"connect_timeout": self.connect_seconds, "options": options, "keepalives": 1,
                "application_name": f"erp-{schema}" if schema else "erp",
                "keepalives_idle": self.keepalive_idle_seconds, "keepalives_interval": self.keepalive_interval_seconds,
                "keepalives_count": self.keepalive_count, "tcp_user_timeout": self.tcp_user_timeout_ms}


# The health check's own connection: a new one per check, never from the pool (a pool wedged
# on a black-holed server would block the check with it), answered within seconds or failed.
HEALTH_TIMEOUTS = Timeouts(connect_seconds=2, statement_ms=2_000, lock_ms=2_000, tcp_user_timeout_ms=2_000,
                           keepalive_idle_seconds=1, keepalive_interval_seconds=1, keepalive_count=2)


def create_engine(url: str, schema: str | None = None, pool_size: int = 10,
                  timeouts: Timeouts = Timeouts()) -> sa.Engine:
    """An engine whose connections see `schema` first on the search path, every wait bounded."""
    engine = sa.create_engine(
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
        connect_args=timeouts.connect_args(schema),
    )
    # A multi-row INSERT without RETURNING (an order's lines, a batch's ledger rows) goes out as one
    # INSERT ... VALUES (...), (...) statement, as SQLAlchemy's psycopg2 dialect does by default:
    # psycopg 3's executemany pipelines one statement per row, each parsed, planned and dumped.
    engine.dialect.use_insertmanyvalues_wo_returning = True
    return engine


def health_engine(url: str, schema: str | None = None) -> sa.Engine:
    """For the health check: no pool (a new connection each time), HEALTH_TIMEOUTS."""
    return sa.create_engine(sqlalchemy_url(url), poolclass=sa.pool.NullPool,
                            connect_args=HEALTH_TIMEOUTS.connect_args(schema))


def ensure_database(url: str) -> None:
    """Creates the URL's database when it does not exist (needs CREATEDB on the server)."""
    parsed = make_url(sqlalchemy_url(url))
    name = parsed.database or "postgres"
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")

    def exists(conn: sa.Connection) -> bool:
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
        # A migration may rewrite a large table, and replicas wait here for the one migrating.
        conn.execute(sa.text("SET statement_timeout = 0"))
        conn.execute(sa.text("SET lock_timeout = 0"))
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
            conn.execute(sa.text("RESET statement_timeout"))  # back to the engine's (the connection is pooled)
            conn.execute(sa.text("RESET lock_timeout"))
            conn.commit()


def ping(engine: sa.Engine) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False
