"""The hot statements of a request or an event, sent on the driver's cursor under SQLAlchemy's
connection and transaction.

Connection.execute costs ~60 µs of Python per statement before psycopg sends anything (an
execution context, the parameters copied through the compiled statement, a result and its
metadata); the statement itself ~50 µs. At ~20 statements per order that was an eighth of the
services' CPU (py-spy over the orders benchmark). `run` sends a text() statement, converted to
psycopg's form once, on the cursor of the connection's own psycopg connection, so it is the same
transaction, pool and timeouts. What it keeps of SQLAlchemy's side: the transaction begins as
execute's would (autobegin), `before_cursor_execute` listeners see the statement (tests count
statements that way), and a driver error goes through the connection's own handler, which wraps
it as execute's would (sa.exc.IntegrityError, OperationalError ...) and, when the server is gone,
invalidates the connection and the pool's older ones (mesh.faults reads those).

Only text() statements whose parameters SQLAlchemy would pass through as they are (no bind
processor, no expanding IN); a cast a typed bind renders stays in the text."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
from psycopg.rows import namedtuple_row

_DRIVER_SQL: dict[int, tuple[sa.TextClause, str]] = {}  # id(clause) -> (clause, its text in psycopg's form)


def driver_sql(clause: sa.TextClause, dialect: sa.Dialect) -> str:
    """The statement as psycopg takes it (:name -> %(name)s, % doubled), as `dialect` (the
connection's) renders it, converted once per clause."""
    known = _DRIVER_SQL.get(id(clause))
    if known is not None and known[0] is clause:
        return known[1]
    if not isinstance(clause, sa.TextClause):
        raise TypeError(f"mesh.sql runs text() statements, not {type(clause).__name__}")
    # A binary bind's processor only wraps bytes in the DB-API's Binary; psycopg 3 sends bytes as bytea itself.
    processed = [name for name, bind in clause._bindparams.items() if bind.expanding or (
        not isinstance(bind.type, sa.LargeBinary) and bind.type._cached_bind_processor(dialect) is not None)]
    if processed:
        raise TypeError(f"mesh.sql sends parameters as they are; {processed} need SQLAlchemy's processing")
    text = str(clause.compile(dialect=dialect))
    _DRIVER_SQL[id(clause)] = (clause, text)
    return text


class Rows:
    """What a statement answered, read the way the callers read SQLAlchemy's results."""

    __slots__ = ("rows", "rowcount")

    def __init__(self, rows: list[NamedTuple], rowcount: int) -> None:
        self.rows, self.rowcount = rows, rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return self.rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def one(self) -> Any:
        if len(self.rows) != 1:
            raise (sa.exc.NoResultFound if not self.rows else sa.exc.MultipleResultsFound)(
                f"expected one row, got {len(self.rows)}")
        return self.rows[0]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self.rows]


def run(conn: sa.Connection, clause: sa.TextClause, params: Mapping[str, Any] | None = None) -> Rows:
    """Runs `clause` with `params` in conn's transaction (begun here if none is)."""
    statement = driver_sql(clause, conn.dialect)
    if not conn.in_transaction():
        conn.begin()
    driver: psycopg.Connection[Any] = conn.connection.driver_connection  # type: ignore[assignment]
    cursor = driver.cursor(row_factory=namedtuple_row)
    try:
        if conn.dispatch.before_cursor_execute:
            conn.dispatch.before_cursor_execute(conn, cursor, statement, params, None, False)
        cursor.execute(statement, params)
        rows = cursor.fetchall() if cursor.description is not None else []
        return Rows(rows, cursor.rowcount)
    except BaseException as err:
        # The connection's own handler: wraps and raises as Connection.execute would, and on a
        # lost server invalidates this connection and the pool's older ones.
        conn._handle_dbapi_exception(err, statement, params, cursor, None)
        raise  # not reached: the handler always raises
    finally:
        cursor.close()
