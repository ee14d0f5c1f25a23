"""Set-based writes: many rows written by one statement whose text does not grow with them.

psycopg 3's executemany sends one UPDATE per row (pipelined, but each parsed, planned and
executed on its own); update_many() sends the rows as one array per column and PostgreSQL
joins them to the table with unnest, so a batch of rows costs one statement.

A multi-row INSERT ... VALUES (SQLAlchemy's insertmanyvalues) is one statement too, but its text
and its parameters grow with the rows, and psycopg converts a query with more than 50
parameters afresh on every execution (no cache): measured, a fifth of the orders service's
CPU went to parsing its batches' outbox, inbox and timeline inserts. insert_many() binds one
array per column: the same short statement whatever the batch, converted once."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

_POSTGRESQL = postgresql.dialect()  # type: ignore[no-untyped-call]  # the dialect's constructor is untyped


def update_many(table: sa.Table, match: Mapping[str, str], columns: Sequence[str]) -> sa.TextClause:
    """UPDATE table SET each of `columns` FROM the rows bound, where every column of `match`
    equals the row's parameter named by it (the key, and a version the row must still have).
    Bind with by_column(rows), each row holding the match parameters and the columns. The
    result's rowcount is the rows that matched: fewer than given is a lost update."""
    params = [*match.values(), *columns]
    return sa.text(
        f"UPDATE {table.name} SET " + ", ".join(f"{column} = v.{column}" for column in columns)
        + f" FROM unnest({arrays(table, params, [*match, *columns])}) AS v({', '.join(params)})"
        + " WHERE " + " AND ".join(f"{table.name}.{column} = v.{param}" for column, param in match.items()))


def arrays(table: sa.Table, params: Sequence[str], columns: Sequence[str]) -> str:
    """unnest's arguments, for statements of one's own: each parameter an array of its column's type."""
    return ", ".join(f"CAST(:{param} AS {table.c[column].type.compile(dialect=_POSTGRESQL)}[])"
                     for param, column in zip(params, columns, strict=True))


def insert_many(table: sa.Table, columns: Sequence[str], then: str = "",
                set_locally: Mapping[str, str] | None = None) -> sa.TextClause:
    """INSERT INTO table (columns) the rows bound, in the order given (identity columns count
    up in that order); `then`: what follows the rows (ON CONFLICT ..., RETURNING ...). Bind
    with by_column(rows), each row holding the columns. set_locally: settings (name -> value,
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
        f" FROM unnest({arrays(table, columns, columns)}) WITH ORDINALITY AS v({names}, row_no){joined}"
        f" ORDER BY row_no {then}".rstrip())


def insert_with_rows(table: sa.Table, columns: Sequence[str], rows_table: sa.Table, row_columns: Sequence[str],
                     key: str, on_conflict: str = "") -> sa.TextClause:
    """One row and the rows that belong to it (an order and its lines, a journal entry and its
    lines) in one statement: the row's INSERT is a CTE the rows' INSERT selects from, so the rows
    go in only when the row did (on_conflict: its ON CONFLICT clause; when it inserts nothing,
    neither goes in) and carry its `key` (a column of both, which the row may generate). Bind the
    row's columns by name and the rows with by_column() under row_<column>. The result: the key,
    in one row when the row went in, no row otherwise."""
    names, params = ", ".join(row_columns), [f"row_{c}" for c in row_columns]
    return sa.text(
        f"WITH new_row AS (INSERT INTO {table.name} ({', '.join(columns)})"
        f" VALUES ({', '.join(f':{c}' for c in columns)}) {on_conflict} RETURNING {key}),"
        f" new_rows AS (INSERT INTO {rows_table.name} ({key}, {names})"
        f" SELECT new_row.{key}, {', '.join(f'v.{c}' for c in row_columns)} FROM new_row,"
        f" unnest({arrays(rows_table, params, row_columns)}) WITH ORDINALITY AS v({names}, row_no) ORDER BY row_no)"
        f" SELECT {key} FROM new_row")


def by_column(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """update_many's and insert_many's parameters: rows of name -> value as name -> one value per row."""
    return {name: [row[name] for row in rows] for name in rows[0]}
