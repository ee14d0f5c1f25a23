"""A database that stops answering: every wait is bounded, health says so within seconds, and
the service comes back by itself (DESIGN decision 12). On the external PostgreSQL, through a
TCP proxy the test owns (chaos/blackhole.py), never by touching the shared server."""
from __future__ import annotations

import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from chaos.blackhole import BlackHoleProxy
from mesh import db, service
from services.inventory.service import spec as inventory_spec
from tests import support
from tests.integration.test_grpc_contract import NOT_SERVING, SERVING, health_of, wait_health

INVENTORY = "erp.inventory.v1.InventoryService"
PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"


def test_pooled_connections_carry_the_statement_lock_and_tcp_timeouts(database):
    engine = db.create_engine(database, schema="public", timeouts=db.Timeouts.from_env({
        "ERP_DB_STATEMENT_TIMEOUT_MS": "7000", "ERP_DB_LOCK_TIMEOUT_MS": "3000"}))
    db.migrate(engine, "probe", PROBE_MIGRATIONS)  # migrations lift the timeouts, then put them back
    with engine.connect() as conn:
        shown = [conn.execute(sa.text(f"SHOW {name}")).scalar() for name in ("statement_timeout", "lock_timeout")]
        params = conn.connection.driver_connection.info.get_parameters()
    engine.dispose()
    assert shown == ["7s", "3s"]
    assert (params["keepalives"], params["tcp_user_timeout"], params["connect_timeout"]) == ("1", "10000", "5")


def test_a_black_holed_database_turns_health_not_serving_within_seconds_and_back(postgres_server, redis_server,
                                                                              tmp_path):
    """Before, health pinged through the service's pool and a silent server held it (and the
    health check) until the kernel gave up, about 15 minutes: SERVING all along."""
    with support.fresh_database(postgres_server) as url:
        parsed = make_url(db.sqlalchemy_url(url))
        socket_dir = parsed.query.get("host")  # the embedded PostgreSQL: a Unix socket in that folder
        port = parsed.port or 5432
        proxy = (BlackHoleProxy(unix_path=f"{socket_dir}/.s.PGSQL.{port}") if isinstance(socket_dir, str)
                 else BlackHoleProxy(parsed.host or "127.0.0.1", port))
        proxied = (parsed.difference_update_query(["host"]).set(host="127.0.0.1", port=proxy.port)
                   .render_as_string(hide_password=False))
        engines = support.Engines(proxied, redis_server, "postgres", namespace="erptest-blackhole")
        running = service.start(inventory_spec(), support.settings_for(
            "inventory", engines, tmp_path, env={"ERP_HEALTH_CHECK_SECONDS": "0.2"}))
        target = f"127.0.0.1:{running.port}"
        try:
            assert health_of(target, INVENTORY) == SERVING
            with running.runtime.engine.connect() as conn:  # an idle pooled connection, on top of the pool
                conn.execute(sa.text("SELECT 1"))
            proxy.black_hole()
            answer: list[bool] = []
            asking = threading.Thread(target=lambda: answer.append(running.runtime.database_answers()), daemon=True)
            asking.start()
            asking.join(4)  # its connect timeout is 2 s; through the pool it would wait for the kernel
            assert answer == [False], "the health check hung on the black-holed database"
            wait_health(target, NOT_SERVING, INVENTORY, timeout=10)  # connect timeout 2 s, checks every 0.2 s
            proxy.heal()
            wait_health(target, SERVING, INVENTORY, timeout=10)
        finally:
            proxy.heal()
            running.stop(grace=0)
            proxy.close()
