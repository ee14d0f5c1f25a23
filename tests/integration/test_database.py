"""Database set-up on a real PostgreSQL server (embedded and external)."""
from __future__ import annotations

import concurrent.futures
import uuid

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mesh import db


def test_services_starting_together_create_their_database_once(pg_server):
    name = "erp_race_" + uuid.uuid4().hex[:8]
    url = make_url(db.sqlalchemy_url(pg_server)).set(database=name).render_as_string(hide_password=False)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda _: db.ensure_database(url), range(6)))  # any failure re-raises here
        engine = sa.create_engine(db.sqlalchemy_url(url))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar() == name
        engine.dispose()
    finally:
        admin = sa.create_engine(make_url(db.sqlalchemy_url(pg_server)).set(database="postgres"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
