"""Database set-up on a real PostgreSQL server (embedded and external)."""
from __future__ import annotations

import concurrent.futures
import uuid

import psycopg.rows
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


def _partial_index_cases():
    """Hot statements whose WHERE must prove a partial index's predicate, with their parameters."""
    import datetime as dt

    from services.crm import adapters as crm
    from services.notification import adapters as notification

    now = dt.datetime.now(dt.UTC)
    return [
        ("notification", notification._CLAIM_DUE, {"now": now, "limit": 16, "channels": ["email", "webhook"]},
         "deliveries_due"),
        ("notification", notification._NEXT_DUE, {"channels": ["webhook"]}, "deliveries_due"),
        ("crm", crm._UNPAID_TOTAL.element, {"customer": "C-1", "currency": "EUR"}, "unpaid_invoices_by_customer"),
    ]


def test_hot_statements_use_their_partial_index_in_a_generic_plan(database):
    """psycopg prepares a statement after 5 runs and PostgreSQL may then plan it generically,
    where "status = $1" cannot prove an index's "status = 'pending'": a full scan per call."""
    from pathlib import Path

    from psycopg import sql
    from sqlalchemy.dialects import postgresql

    import services

    root = Path(services.__file__).parent
    dialect = postgresql.dialect(paramstyle="numeric_dollar")  # $1, $2: what a prepared statement has
    for schema, statement, params, index in _partial_index_cases():
        engine = db.create_engine(database, schema=schema, pool_size=1)
        db.migrate(engine, schema, root / schema / "migrations")
        compiled = statement.compile(dialect=dialect)
        values = compiled.construct_params(params)
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            arguments = ", ".join(sql.Literal(values[name]).as_string(raw) for name in compiled.positiontup or ())
            conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql("SET enable_seqscan = off")  # the index wins whenever it can be used at all
            conn.exec_driver_sql(f"PREPARE hot AS {compiled}")
            plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN EXECUTE hot({arguments})" if arguments
                                                            else "EXPLAIN EXECUTE hot")]
        engine.dispose()
        assert any(index in line for line in plan), f"{schema}: {index} not used:\n" + "\n".join(plan)


def test_a_multi_row_insert_is_one_statement(database):
    """psycopg 3's executemany would send one INSERT per row; mesh.db's engines send one."""
    engine = db.create_engine(database, pool_size=1)
    table = sa.Table("many_rows", sa.MetaData(), sa.Column("n", sa.Integer, primary_key=True))
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with engine.begin() as conn:
        table.create(conn)
        sent.clear()
        conn.execute(table.insert(), [{"n": n} for n in range(5)])
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 5
    engine.dispose()
    assert len(sent) == 2 and sent[0].count("VALUES") == 1 and sent[0].count("(%(n__") == 5


def test_aggregate_locks_and_the_following_lock_timeout_take_one_round_trip(database):
    from mesh import locks

    engine = db.create_engine(database, pool_size=2)
    refs = [("order", "O-2"), ("order", "O-1"), ("customer", "C-1")]
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    with engine.connect() as conn, engine.connect() as other:
        keys = locks.lock_aggregates(conn, "orders", refs, then_lock_timeout="100ms")
        assert len(sent) == 1 and keys == sorted(keys) and len(keys) == 3
        assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "100ms"
        held = other.execute(sa.text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = :pid"),
                             {"pid": conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()}).scalar()
        assert held == 3
        assert not other.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": keys[0]}).scalar()
        conn.rollback()
        locks.lock_aggregates(conn, "orders", [], then_lock_timeout="5s")  # nothing to lock: the timeout still
        assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "5s"
    engine.dispose()


def test_hot_statements_on_the_driver_cursor_keep_sqlalchemy_s_transaction_errors_and_listeners(database):
    """mesh.sql.run: the statement runs in the connection's SQLAlchemy transaction (a rollback
    undoes it), listeners see it, rows read as execute's do, and a failure is SQLAlchemy's class."""
    from mesh import faults, sql

    engine = db.create_engine(database, pool_size=1)
    table = f"hot_{uuid.uuid4().hex[:8]}"
    insert = sa.text(f"INSERT INTO {table} (n, note) VALUES (:n, :note) RETURNING n, note")
    sent: list[str] = []
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (n int PRIMARY KEY, note text)"))

    def seen(*args) -> None:
        sent.append(args[2])

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        with engine.connect() as conn:
            row = sql.run(conn, insert, {"n": 1, "note": "100% :literal"}).one()  # begins, as execute would
            assert conn.in_transaction() and (row.n, row.note, row[1]) == (1, "100% :literal", "100% :literal")
            assert sent == [f"INSERT INTO {table} (n, note) VALUES (%(n)s, %(note)s) RETURNING n, note"]
            conn.rollback()
            assert sql.run(conn, sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
            sql.run(conn, insert, {"n": 1, "note": None})
            try:
                sql.run(conn, insert, {"n": 1, "note": None})
                raise AssertionError("a duplicate key went in")
            except sa.exc.IntegrityError as err:
                assert err.orig.sqlstate == "23505" and not faults.is_infrastructure(err)
            conn.rollback()
            rows = sql.run(conn, sa.text("SELECT g FROM generate_series(1, :n) g"), {"n": 3})
            assert rows.scalars() == [1, 2, 3] and rows.rowcount == 3 and rows.first() == (1,)
            try:
                sql.run(conn, sa.text("SELECT 1 WHERE false")).one()
                raise AssertionError("one() of no row")
            except sa.exc.NoResultFound:
                pass
            # A text() statement's rows are named as psycopg's namedtuple_row names them, also when
            # its first answer had no rows, and whatever statement the cursor ran before.
            odd = sa.text('SELECT 1 AS "order", 2 AS "two words", 3, :n AS n WHERE :n > 0')
            assert sql.run(conn, odd, {"n": 0}).all() == []
            sql.run(conn, sa.select(sa.literal(1).label("one")))
            raw = conn.connection.driver_connection.cursor(row_factory=psycopg.rows.namedtuple_row)
            expected = raw.execute('SELECT 1 AS "order", 2 AS "two words", 3, 4 AS n').fetchone()
            got = sql.run(conn, odd, {"n": 4}).one()
            assert got == expected and got._fields == expected._fields and got.n == 4
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()


def test_a_hot_statement_on_a_lost_connection_invalidates_it_as_execute_would(database):
    """The server ends the session under a hot statement: SQLAlchemy's OperationalError with the
    connection invalidated (mesh.faults: infrastructure, retried), and the next checkout works."""
    from mesh import faults, sql

    engine = db.create_engine(database, pool_size=1)
    with engine.connect() as conn:
        try:
            sql.run(conn, sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))
            raise AssertionError("the session survived")
        except sa.exc.OperationalError as err:
            assert err.connection_invalidated and faults.is_infrastructure(err)
        assert conn.invalidated
    with engine.connect() as conn:
        assert sql.run(conn, sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


def test_mesh_sql_refuses_what_needs_sqlalchemy_s_per_call_work():
    from mesh import sql

    dialect = db.create_engine("postgresql://localhost/unused").dialect
    with_default = sa.Table("with_default", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True, default=lambda: "x"),
                            sa.Column("n", sa.Integer))
    for clause in (sa.text("SELECT 1 WHERE 1 IN :ids").bindparams(sa.bindparam("ids", expanding=True)),
                   sa.select(with_default).where(with_default.c.n.in_([1, 2])),
                   with_default.insert()):
        try:
            sql.form(clause, dialect, {"n": 1})
            raise AssertionError(f"{clause} was taken")
        except TypeError:
            pass
    assert sql.form(sa.text("SELECT :b").bindparams(sa.bindparam("b", type_=sa.LargeBinary)), dialect, None).text \
        == "SELECT %(b)s"


def test_core_statements_on_the_driver_cursor_answer_as_execute_does(database):
    """A Core SELECT's rows and an UPDATE whose columns come from the parameters' names, through
    mesh.sql.run and through Connection.execute: the same values, types and row names."""
    import enum

    from mesh import sql

    class Colour(enum.Enum):
        RED = "red"
        BLUE = "blue"

    engine = db.create_engine(database, pool_size=1)
    table = sa.Table(f"core_{uuid.uuid4().hex[:8]}", sa.MetaData(), sa.Column("id", sa.Text, primary_key=True),
                     sa.Column("colour", sa.Enum(Colour, native_enum=False, validate_strings=True)),
                     sa.Column("amount", sa.Numeric(18, 4)),
                     sa.Column("done", sa.Boolean), sa.Column("at", sa.DateTime(timezone=True)),
                     sa.Column("blob", sa.LargeBinary))
    read = sa.select(table, (table.c.amount * 2).label("twice")).where(table.c.id == sa.bindparam("id"))
    update = table.update().where(table.c.id == sa.bindparam("key")).values(at=sa.func.now())
    try:
        with engine.begin() as conn:
            table.create(conn)
            conn.execute(table.insert(), {"id": "a", "colour": Colour.RED, "amount": "1.5", "done": False, "blob": b"\x00"})
        with engine.begin() as conn:
            assert sql.run(conn, update, {"key": "a", "colour": Colour.BLUE, "done": True}).rowcount == 1
            fast = sql.run(conn, read, {"id": "a"}).one()
            slow = conn.execute(read, {"id": "a"}).one()
            assert tuple(fast) == tuple(slow) and fast._fields == tuple(slow._fields)
            assert fast.colour is Colour.BLUE and fast.done is True and fast.blob == b"\x00" and str(fast.twice) == "3.0000"
            assert sql.run(conn, update, {"key": "a", "amount": 2}).rowcount == 1  # other columns: another form
            assert conn.execute(sa.select(table.c.amount, table.c.colour)).one() == (2, Colour.BLUE)
            for refused in (lambda: sql.run(conn, update, {"key": "a", "colour": "green"}),  # the enum's processor
                            lambda: sql.run(conn, update, {"key": "a", "done": False}).first()):  # no rows to read
                try:
                    refused()
                    raise AssertionError("taken")
                except (sa.exc.StatementError, sa.exc.ResourceClosedError) as err:
                    assert not isinstance(err, sa.exc.DBAPIError)
    finally:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
        engine.dispose()
