"""Set-based writes: many rows changed by one statement instead of one statement per row.

psycopg 3's executemany sends one UPDATE per row (pipelined, but each parsed, planned and
executed on its own); update_many() sends the rows as one array per column and PostgreSQL
joins them to the table with unnest, so a batch of rows costs one statement."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def update_many(table: sa.Table, match: Mapping[str, str], columns: Sequence[str]) -> sa.TextClause:
    """UPDATE table SET each of `columns` FROM the rows bound, where every column of `match`
    equals the row's parameter named by it (the key, and a version the row must still have).
    Bind with by_column(rows), each row holding the match parameters and the columns. The
    result's rowcount is the rows that matched: fewer than given is a lost update."""
    params = [*match.values(), *columns]
    types = {**{param: table.c[column].type for column, param in match.items()},
             **{column: table.c[column].type for column in columns}}
    arrays = ", ".join(f"CAST(:{param} AS {types[param].compile(dialect=postgresql.dialect())}[])"
                       for param in params)
    return sa.text(
        f"UPDATE {table.name} SET " + ", ".join(f"{column} = v.{column}" for column in columns)
        + f" FROM unnest({arrays}) AS v({', '.join(params)})"
        + " WHERE " + " AND ".join(f"{table.name}.{column} = v.{param}" for column, param in match.items()))


def by_column(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """update_many's parameters: rows of name -> value as name -> one value per row."""
    return {name: [row[name] for row in rows] for name in rows[0]}
