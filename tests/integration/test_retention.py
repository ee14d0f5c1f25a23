"""The pruner (mesh/retention.py) on real PostgreSQL: what each table keeps, two replicas' pruners
at once, and that a batch reads the table through its index rather than whole."""
from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from mesh import metrics, retention
from mesh.settings import Variables

ROWS = 5000


def _fill_inbox(conn: sa.Connection, old: int, young: int) -> None:
    """`old` rows handled eight days ago, `young` handled now, by two consumers."""
    conn.execute(sa.text(
        "INSERT INTO inbox (consumer, event_id, event_type, processed_at)"
        " SELECT CASE WHEN g % 2 = 0 THEN 'orders' ELSE 'orders-other' END, gen_random_uuid(), 'T',"
        "        CASE WHEN g <= :old THEN now() - interval '8 days' ELSE now() END"
        " FROM generate_series(1, :n) AS g"), {"old": old, "n": old + young})


def _count(conn: sa.Connection, table: str, where: str = "true") -> int:
    return conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {where}")).scalar_one()


def test_the_inbox_forgets_what_is_older_than_its_retention_and_keeps_the_rest(engine_for):
    engine = engine_for("orders")
    with engine.begin() as conn:
        _fill_inbox(conn, old=1203, young=40)
    deleted = retention.prune_all(engine, retention.inbox(), threading.Event(), batch=500)
    assert deleted == 1203
    with engine.connect() as conn:
        assert _count(conn, "inbox") == 40
        assert _count(conn, "inbox", "processed_at < now() - interval '1 hour'") == 0


def test_the_outbox_keeps_unpublished_parked_and_young_rows(engine_for):
    engine = engine_for("orders")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO outbox (event_id, event_type, aggregate_id, envelope, created_at, published_at, parked_at)"
            " SELECT gen_random_uuid(), 'T', 'A', '\\x00', now() - interval '9 days', p, k FROM (VALUES"
            "  (now() - interval '8 days', NULL::timestamptz),"  # published long ago: goes
            "  (now() - interval '8 days', now() - interval '8 days'),"  # parked: stays until replayed
            "  (NULL, NULL),"  # never published: stays
            "  (now() - interval '1 day', NULL)) AS v(p, k), generate_series(1, 3)"))  # young: stays
    assert retention.prune_all(engine, retention.outbox(), threading.Event(), batch=2) == 3
    with engine.connect() as conn:
        assert _count(conn, "outbox") == 9
        assert _count(conn, "outbox", "published_at < now() - interval '7 days' AND parked_at IS NULL") == 0


def test_two_replicas_pruners_take_different_rows_and_neither_waits(engine_for):
    """Forced: replica A's batch is deleted but not committed when replica B prunes. B skips A's
    rows (SKIP LOCKED) instead of waiting on them, and between them each old row goes once."""
    engine = engine_for("orders")
    with engine.begin() as conn:
        _fill_inbox(conn, old=30, young=5)
    statement, params = retention.inbox().statement(), {"seconds": 168 * 3600, "batch": 10}
    with engine.connect() as a:
        assert a.execute(statement, params).rowcount == 10  # A's batch, locked until A commits
        finished: list[int] = []
        b = threading.Thread(target=lambda: finished.append(
            retention.prune_all(engine, retention.inbox(), threading.Event(), batch=10)))
        b.start()
        b.join(timeout=30)
        assert finished == [20], "B waited on A's locked rows or took them"
        a.commit()
    with engine.connect() as conn:
        assert _count(conn, "inbox") == 5


def test_a_batch_reads_the_inbox_through_its_index(engine_for):
    """Without the migration's inbox_by_age, each batch would read the whole inbox, which grows by
    about nine rows an order."""
    engine = engine_for("orders")
    with engine.begin() as conn:
        _fill_inbox(conn, old=200, young=ROWS)
        conn.execute(sa.text("ANALYZE inbox"))
        found = "\n".join(conn.execute(sa.text("EXPLAIN " + str(retention.inbox().statement())),
                                       {"seconds": 3600.0, "batch": 500}).scalars())
    assert "inbox_by_age" in found, found
    assert "Seq Scan on inbox" not in found, found


def test_the_pruner_thread_prunes_every_table_each_round_and_counts_what_it_deleted(engine_for):
    engine = engine_for("orders")
    with engine.begin() as conn:
        _fill_inbox(conn, old=7, young=2)
    counted = metrics.ROWS_PRUNED.labels("orders-test", "inbox")
    before, stop = counted._value.get(), threading.Event()
    pruner = threading.Thread(target=retention.run_pruner, args=(
        "orders-test", engine, retention.from_settings(Variables({}), with_keys=True), stop, 0.05))
    pruner.start()
    try:
        for _ in range(200):
            if counted._value.get() - before == 7:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        pruner.join(timeout=10)
    assert counted._value.get() - before == 7
    with engine.connect() as conn:
        assert _count(conn, "inbox") == 2


@pytest.mark.parametrize(("name", "value"), [("ERP_INBOX_RETENTION_HOURS", "0"),
                                             ("ERP_OUTBOX_RETENTION_HOURS", "-1"),
                                             ("ERP_INBOX_RETENTION_HOURS", "a week")])
def test_a_retention_that_would_lose_duplicates_protection_is_refused_at_start(name, value):
    with pytest.raises(ValueError, match=name):
        retention.from_settings(Variables({name: value}), with_keys=True)


def test_what_each_service_keeps(engine_for):
    kept = retention.from_settings(Variables({"ERP_INBOX_RETENTION_HOURS": "24"}), with_keys=False)
    assert [(k.table, k.hours) for k in kept] == [("outbox", 168.0), ("inbox", 24.0)]
    kept = retention.from_settings(Variables({}), with_keys=True)
    assert [k.table for k in kept] == ["outbox", "inbox", "idempotency_keys"]
    # every statement runs on a service's schema as written
    engine = engine_for("orders")
    for each in kept:
        with engine.connect() as conn:
            conn.execute(each.statement(), {"seconds": 3600.0, "batch": 1})
