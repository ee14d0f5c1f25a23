"""The hot statements of a request or an event, sent on the driver's cursor under SQLAlchemy's
connection and transaction.

Connection.execute costs ~60 µs of Python per statement before psycopg sends anything (an
execution context, the parameters copied through the compiled statement, a result and its
metadata); the statement itself ~50 µs. At ~20 statements per order that was an eighth of the
services' CPU (py-spy over the orders benchmark). `run` sends a statement, converted to psycopg's
form once (mesh.sql.Form), on the cursor of the connection's own psycopg connection, so it is the
same transaction, pool and timeouts. What it keeps of SQLAlchemy's side: the transaction begins as
execute's would (autobegin); parameters and results go through the types' processors as execute's
do; `before_cursor_execute` listeners see the statement (tests count statements that way); and a
driver error goes through the connection's own handler, which wraps it as execute's would
(sa.exc.IntegrityError, OperationalError ...) and, when the server is gone, invalidates the
connection and the pool's older ones (mesh.faults reads those).

What it refuses (TypeError, at the first run): expanding IN lists, Python-side column defaults,
binds computed per call and bind names SQLAlchemy would escape, which need execute's per-call work.
A text() statement's rows are named tuples named as psycopg's namedtuple_row names them (a column name
that is no Python identifier is renamed); a Core statement's are named by SQLAlchemy's keys. Either
way the cursor hands over plain tuples and the statement's Form makes the rows: psycopg's row factory
would otherwise name a text() statement's columns again on every execution, and switching the
cursor between two factories rebuilds its row maker (together ~2% of the services' Python)."""
from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from psycopg import pq
from psycopg.rows import namedtuple_row, tuple_row
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.sql import dml
from sqlalchemy.sql.compiler import SQLCompiler


class Form:
    """A statement as psycopg takes it, made once per statement (and, for an INSERT or UPDATE,
    per set of parameter names, which decide its columns): the text (:name -> %(name)s, %
    doubled, as the connection's dialect renders it), the values the statement binds itself,
    SQLAlchemy's bind processors, and for a Core statement its row type and result processors
    (found at its first execution, from the types the server answered); for a text() statement
    its row type, from the columns of its first answer."""

    def __init__(self, clause: sa.ClauseElement, dialect: sa.Dialect, names: frozenset[str]) -> None:
        self.clause, self.dialect = clause, dialect
        compiled = cast(SQLCompiler, clause.compile(
            dialect=dialect, column_keys=sorted(names) if isinstance(clause, dml.UpdateBase) else None))
        refused = [what for what, found in (
            ("an expanding or literal bind", compiled.post_compile_params or compiled.literal_execute_params),
            ("a Python-side default", compiled.insert_prefetch or compiled.update_prefetch),
            ("a bind computed per call", any(bind.callable for bind in compiled.binds.values())),
            ("a tuple bind", any(not callable(process) for process in compiled._bind_processors.values())),
            ("an escaped bind name", compiled.escaped_bind_names)) if found]
        if refused:
            raise TypeError(f"mesh.sql cannot send {clause!r}: it has {', '.join(refused)}")
        self.text = compiled.string
        self.constants = {name: bind.effective_value for bind, name in compiled.bind_names.items()
                          if not bind.required and name not in names}
        self.bind_processors = {name: cast(Callable[[Any], Any], process)
                                for name, process in compiled._bind_processors.items()}
        self.result_columns = [(entry.keyname, entry.type) for entry in compiled._result_columns or ()]
        self.row_type: Any = None
        self.result_processors: list[Callable[[Any], Any] | None] | None = None
        self.learned = False  # a first answer with columns was read (row type, result processors)
        if self.result_columns:
            keys = [key for key, _ in self.result_columns]
            if len(set(keys)) != len(keys) or not all(key.isidentifier() for key in keys):
                raise TypeError(f"mesh.sql cannot name the rows of {clause!r}: {keys}")
            self.row_type = collections.namedtuple("Row", keys)  # type: ignore[misc]  # names known at run time

    def parameters(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        bound = {**self.constants, **params} if params else dict(self.constants)
        for name, process in self.bind_processors.items():
            if name in bound:
                bound[name] = process(bound[name])
        return bound

    def learn(self, cursor: psycopg.Cursor[Any]) -> None:
        """At the first answer with columns: a Core statement's result processors, from the server's
        types; a text() statement's row type, as psycopg's namedtuple_row names its columns.
        `learned` is set last: another thread that sees it reads a complete Form."""
        if not self.result_columns:  # text()
            self.result_processors = []
            self.row_type = cast(Any, namedtuple_row(cursor)).__self__  # the namedtuple whose _make it returns
        else:
            columns = cursor.description or []
            if len(columns) != len(self.result_columns):
                raise TypeError(f"mesh.sql: {self.clause!r} answered other columns than it declares")
            self.result_processors = [kind._cached_result_processor(self.dialect, column.type_code)
                                      for (_, kind), column in zip(self.result_columns, columns, strict=True)]
        self.learned = True

    def rows(self, fetched: list[Any]) -> list[Any]:
        make, processors = self.row_type._make, self.result_processors or []
        if not any(processors):
            return [make(row) for row in fetched]
        return [make(p(value) if p else value for p, value in zip(processors, row, strict=True)) for row in fetched]


_FORMS: dict[tuple[int, frozenset[str]], Form] = {}


def form(clause: sa.ClauseElement, dialect: sa.Dialect, params: Mapping[str, Any] | None) -> Form:
    names = frozenset(params) if params and isinstance(clause, dml.UpdateBase) else frozenset()
    known = _FORMS.get((id(clause), names))
    if known is None or known.clause is not clause or known.dialect is not dialect:
        known = _FORMS[(id(clause), names)] = Form(clause, dialect, names)
    return known


class Rows:
    """What a statement answered, read the way the callers read SQLAlchemy's results; reading the
    rows of a statement that answers none (no RETURNING) raises, as execute's result does."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any] | None, rowcount: int) -> None:
        self._rows, self.rowcount = rows, rowcount

    @property
    def rows(self) -> list[Any]:
        if self._rows is None:
            raise sa.exc.ResourceClosedError("This result object does not return rows.")
        return self._rows

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


_CURSOR = "mesh.sql.cursor"  # the key of a pooled connection's reused cursor in its info


def _cursor(conn: sa.Connection) -> psycopg.Cursor[Any]:
    """The connection's own cursor, made once per driver connection (a new cursor costs ~10 µs),
    answering plain tuples."""
    pooled = conn.connection
    driver = pooled.driver_connection
    cursor = pooled.info.get(_CURSOR)
    if cursor is None or cursor.closed or cursor.connection is not driver:  # new, or closed by an error
        cursor = pooled.info[_CURSOR] = driver.cursor(row_factory=tuple_row)  # type: ignore[union-attr]  # psycopg's
    return cast(psycopg.Cursor[Any], cursor)


def run(conn: sa.Connection, clause: sa.ClauseElement, params: Mapping[str, Any] | None = None) -> Rows:
    """Runs `clause` with `params` in conn's transaction (begun here if none is)."""
    statement = form(clause, conn.dialect, params)
    try:
        bound = statement.parameters(params)
    except Exception as err:  # a bind processor refused a value: execute's StatementError
        conn._handle_dbapi_exception(err, statement.text, params, None, None)
        raise  # not reached: the handler always raises
    if not conn.in_transaction():
        conn.begin()
    cursor = _cursor(conn)
    try:
        if conn._has_events or conn.engine._has_events:  # as execute checks: the listeners' lookup costs more
            conn.dispatch.before_cursor_execute(conn, cursor, statement.text, bound, None, False)
        cursor.execute(statement.text, bound)
        result = cursor.pgresult
        fetched = None  # not description's None check: description is built anew on every read
        if result is not None and result.status == pq.ExecStatus.TUPLES_OK:
            fetched = cursor.fetchall()
            if not statement.learned:
                statement.learn(cursor)
    except BaseException as err:
        # The connection's own handler: wraps and raises as Connection.execute would (closing the
        # cursor), and on a lost server invalidates this connection and the pool's older ones.
        conn._handle_dbapi_exception(err, statement.text, bound, cast(DBAPICursor, cursor), None)
        raise  # not reached: the handler always raises
    return Rows(None if fetched is None else statement.rows(fetched), cursor.rowcount)
