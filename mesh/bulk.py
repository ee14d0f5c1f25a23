"""Set-based writes: many rows written by one statement whose text does not grow with them.

psycopg 3's executemany sends one UPDATE per row (pipelined, but each parsed, planned and
executed on its own), and a multi-row INSERT ... VALUES grows its text and its parameters with
the rows (psycopg converts a query of more than 50 parameters afresh on every execution: a fifth
of the orders service's CPU once went to parsing its batches' inserts). Here the rows travel as
one JSON document, which the statement turns back into typed rows with json_to_recordset: the
same short statement whatever the batch, converted once.

Why JSON and not one array per column: psycopg dumps a list element by element in Python (quoting
each one), and with every outbox, inbox and timeline batch bound that way it was 11-19% of each
service's Python time under the orders benchmark; a JSON encoder does the whole batch in C, at a
sixth of the cost for an outbox batch of four. orjson, not the standard library's json: with the
bytes and decimals every batch carries, json.dumps calls back into Python for each of them and spent
6-9% of orders', finance's and notification's Python time (py-spy, row 3); orjson encodes the same
batches 4.8-5x faster (an outbox batch of 8: 28 -> 6 us), UUIDs, datetimes and enums itself, in the
same text forms. Values JSON has no type for (bytes, decimals) go as strings in the forms
PostgreSQL's input functions read (bytea's hex).

A batch is small, and the statements say so: PostgreSQL plans json_to_recordset for 100 rows,
whatever the document holds, and for 100 keys a hash over the whole table it joins (an UPDATE's
target, an EXISTS probe) costs less than 100 index lookups until that table has 10,000-20,000
rows. Each batch then read every row of the tables it touched, and the bill grew with the
history: 0.6 ms for an UPDATE of 6 rows against 3,000, 1.8 ms against 10,000, and an EXISTS
probe 0.9 and 2.9 ms, where index lookups cost 0.05-0.1 ms at any size (server CPU per statement,
measured with the statements' plans on PostgreSQL 15). So recordset() keeps only the rows numbered
1 to MAX_ROWS, a condition always true (rows() refuses more) that PostgreSQL, with no statistics
on a function's output, estimates at 1/200 of the rows: about one row, for which it looks each
key up by index."""
from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]  # the dialect's constructor is untyped
ROWS = "rows"  # the bound parameter that carries the rows: bind with rows(...)
MAX_ROWS = 1_000_000  # rows in one statement: recordset()'s bound, which rows() enforces


def update_many(table: sa.Table, match: Mapping[str, str], columns: Sequence[str],
                also: Mapping[str, str] | None = None) -> sa.TextClause:
    """UPDATE table SET each of `columns` FROM the rows bound, where every column of `match`
    equals the row's value named by it (the key, and a version the row must still have).
    Bind with rows(...), each row holding the match names and the columns; at most one row per
    key (a row is updated once per statement). also: more columns set to SQL expressions, the
    same for every row (updated_at: now()). The result's rowcount is the rows that matched:
    fewer than given is a lost update."""
    names = [*match.values(), *columns]
    assignments = [f"{column} = v.{column}" for column in columns] + [f"{c} = {e}" for c, e in (also or {}).items()]
    return sa.text(
        f"UPDATE {table.name} SET " + ", ".join(assignments)
        + f" FROM {recordset(table, names, [*match, *columns])} AS v"
        + " WHERE " + " AND ".join(f"{table.name}.{column} = v.{name}" for column, name in match.items()))


def recordset(table: sa.Table, names: Sequence[str], columns: Sequence[str], numbered: bool = False,
              param: str = ROWS) -> str:
    """The bound rows as a FROM item to alias: each name a field of its column's type (names[i]
    typed as columns[i]). numbered: one more field numbers the rows from 1 in the order given
    (WITH ORDINALITY; alias every field then, AS v(a, b, row_no)). param: the parameter that
    carries them (rows(..., param)), for a statement that binds two sets."""
    listed = ", ".join(names)
    return (f"(SELECT {listed}{', row_no' if numbered else ''}"
            f" FROM ROWS FROM (json_to_recordset(CAST(:{param} AS json)) AS ({fields(table, names, columns)}))"
            f" WITH ORDINALITY AS r({listed}, row_no) WHERE {planned_as_few('row_no')})")


def planned_as_few(ordinal: str) -> str:
    """A condition on a bound set's row number (WITH ORDINALITY) that always holds and that
    PostgreSQL plans as about one row (the module's doc): for sets it would otherwise plan as
    100 rows (json_to_recordset) or 10 (unnest of an array parameter)."""
    return f"{ordinal} BETWEEN 1 AND {MAX_ROWS}"


def fields(table: sa.Table, names: Sequence[str], columns: Sequence[str]) -> str:
    """A record's field list, "name type, ...", names[i] typed as table's columns[i]: what
    json_to_recordset reads a JSON array of rows with (nested arrays too: json_to_recordset(v.lines))."""
    return ", ".join(f"{name} {table.c[column].type.compile(dialect=_POSTGRESQL)}"
                     for name, column in zip(names, columns, strict=True))


def insert_many(table: sa.Table, columns: Sequence[str], then: str = "",
                set_locally: Mapping[str, str] | None = None, param: str = ROWS) -> sa.TextClause:
    """INSERT INTO table (columns) the rows bound, in the order given (identity columns count
    up in that order); `then`: what follows the rows (ON CONFLICT ..., RETURNING ...). Bind
    with rows(..., param), each row holding the columns. set_locally: settings (name -> value,
    constants) made for the rest of the transaction by the same statement, before its rows go in."""
    names = ", ".join(columns)
    settings, joined = "", ""
    if set_locally:
        settings = ("WITH settings AS (SELECT "
                    + ", ".join(f"set_config('{name}', '{value}', true)" for name, value in set_locally.items())
                    + ") ")
        joined = ", settings"
    return sa.text(
        f"{settings}INSERT INTO {table.name} ({names}) SELECT {names}"
        f" FROM {recordset(table, columns, columns, numbered=True, param=param)} AS v({names}, row_no){joined}"
        f" ORDER BY row_no {then}".rstrip())


def insert_with_rows(table: sa.Table, columns: Sequence[str], rows_table: sa.Table, row_columns: Sequence[str],
                     key: str, on_conflict: str = "", also: str = "", after: str = "") -> sa.TextClause:
    """One row and the rows that belong to it (an order and its lines, a journal entry and its
    lines) in one statement: the row's INSERT is a CTE the rows' INSERT selects from, so the rows
    go in only when the row did (on_conflict: its ON CONFLICT clause; when it inserts nothing,
    neither goes in) and carry its `key` (a column of both, which the row may generate). Bind the
    row's columns by name and its rows with rows(...), each holding row_columns. also: more
    writes of the same statement, CTEs ("name AS (INSERT ...)") that may select from new_row (its
    key). after: a CTE of the statement this one is put behind (mesh.idempotency.with_claim's
    `claimed`), whose row the row's INSERT selects from: it goes in only with that row, and
    after it. The result: the key, in one row when the row went in, no row otherwise."""
    names = ", ".join(row_columns)
    values = ", ".join(f":{c}" for c in columns)
    source = f"SELECT {values} FROM {after}" if after else f"VALUES ({values})"
    return sa.text(
        f"WITH new_row AS (INSERT INTO {table.name} ({', '.join(columns)})"
        f" {source} {on_conflict} RETURNING {key}),"
        f" new_rows AS (INSERT INTO {rows_table.name} ({key}, {names})"
        f" SELECT new_row.{key}, {', '.join(f'v.{c}' for c in row_columns)} FROM new_row,"
        f" {recordset(rows_table, row_columns, row_columns, numbered=True)} AS v({names}, row_no) ORDER BY row_no)"
        f"{', ' + also if also else ''} SELECT {key} FROM new_row")


def rows(values: Sequence[Mapping[str, Any]], param: str = ROWS) -> dict[str, str]:
    """The parameter of update_many's, insert_many's and insert_with_rows' statements: the rows
    (name -> value each) as one JSON document, named `param`."""
    if len(values) > MAX_ROWS:
        raise ValueError(f"{len(values)} rows in one bulk statement; at most {MAX_ROWS}: split the batch")
    try:
        return {param: orjson.dumps(values, default=_json_value).decode()}
    except orjson.JSONEncodeError as exc:  # _json_value's own message says which value, when it refused
        raise TypeError(str(exc.__cause__ or exc)) from exc


def _json_value(value: Any) -> Any:
    """A value JSON has no type for, in the text form its column's input function reads."""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, dt.date | dt.time):  # datetimes too
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} {value!r} has no JSON form for a bulk statement")
