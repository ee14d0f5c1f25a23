"""Outbox, inbox and dead-letter tables. Every service has them, in its own schema: outbox and
inbox from its first migration (create_tables()), dead letters and the outbox's parked rows from
a later one (add_dead_letters_and_parking()), the inbox's index by age from a later one still
(add_inbox_age_index())."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import BYTEA, UUID


class SchemaOps(Protocol):
    """What a migration hands these functions: alembic's `op`, the module every migration imports (a
    module, not an alembic Operations, which has the same functions as methods); either one fits."""

    def create_table(self, table_name: str, *columns: sa.schema.SchemaItem, **kw: Any) -> sa.Table: ...

    def create_index(self, index_name: str | None, table_name: str, columns: Sequence[str], *,
                     unique: bool = False, **kw: Any) -> None: ...

    def add_column(self, table_name: str, column: sa.Column[Any]) -> None: ...

    def execute(self, sqltext: str) -> None: ...

    def drop_index(self, index_name: str, table_name: str | None = None, **kw: Any) -> None: ...

    def drop_column(self, table_name: str, column_name: str, **kw: Any) -> None: ...

    def drop_table(self, table_name: str, **kw: Any) -> None: ...


def _outbox_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", UUID(as_uuid=False), nullable=False, unique=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("aggregate_id", sa.Text, nullable=False),
        sa.Column("envelope", BYTEA, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
    ]


def _inbox_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", UUID(as_uuid=False), primary_key=True),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def _parked_at() -> sa.Column[Any]:
    # Set when the relay gave up on a row no queue is bound to: the row stays, listable and
    # replayable (services.tools.deadletters), and the relay's pruning leaves it alone.
    return sa.Column("parked_at", sa.DateTime(timezone=True))


def _dead_letter_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        # The event id (the AMQP message id); NULL only for bytes that never named one.
        sa.Column("event_id", sa.Text),
        sa.Column("event_type", sa.Text),
        sa.Column("body", BYTEA, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        # "consumer": its handler gave up; "broker": the queue's delivery limit; "bus": an older
        # version's dead row of the PostgreSQL bus.
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("dead_lettered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


metadata = sa.MetaData()
outbox = sa.Table("outbox", metadata, *_outbox_columns(), _parked_at())
inbox = sa.Table("inbox", metadata, *_inbox_columns())
dead_letters = sa.Table("dead_letters", metadata, *_dead_letter_columns(),
                        sa.Index("dead_letters_event", "event_id", unique=True,
                                 postgresql_where=sa.text("event_id IS NOT NULL")))


def create_tables(op: SchemaOps) -> None:
    """Called from a service's initial Alembic migration."""
    op.create_table("outbox", *_outbox_columns())
    # The relay only ever reads unpublished rows in id order.
    op.create_index("outbox_unpublished", "outbox", ["id"], postgresql_where=sa.text("published_at IS NULL"))
    op.create_table("inbox", *_inbox_columns())


def add_dead_letters_and_parking(op: SchemaOps) -> None:
    """Called from a service's migration: the dead_letters table (one row per event that
    will not be handled without help) and the outbox's parked rows. Rows an older relay marked
    unrouted within the outbox's retention become parked instead of being pruned."""
    op.create_table("dead_letters", *_dead_letter_columns())
    # One row per event: a dead letter delivered again (a crash between its insert and the ack)
    # updates its row instead of adding one.
    op.create_index("dead_letters_event", "dead_letters", ["event_id"], unique=True,
                    postgresql_where=sa.text("event_id IS NOT NULL"))
    op.add_column("outbox", _parked_at())
    op.create_index("outbox_parked", "outbox", ["id"], postgresql_where=sa.text("parked_at IS NOT NULL"))
    op.execute("UPDATE outbox SET parked_at = published_at WHERE last_error LIKE 'unrouted:%' "
               "AND published_at IS NOT NULL")


def add_inbox_age_index(op: SchemaOps) -> None:
    """Called from a service's migration: the index the pruner (mesh/retention.py) reads the
    inbox's oldest rows by. Built in the migration's transaction, so the consumers' inserts wait
    for it: about a second per million rows here. A larger inbox can be indexed beforehand
    without that wait (`CREATE INDEX CONCURRENTLY inbox_by_age ON <service>.inbox (processed_at)`,
    dropped and built again if it ends INVALID); the migration then finds it."""
    op.create_index("inbox_by_age", "inbox", ["processed_at"], if_not_exists=True)


def drop_inbox_age_index(op: SchemaOps) -> None:
    op.drop_index("inbox_by_age", "inbox")


def drop_dead_letters_and_parking(op: SchemaOps) -> None:
    op.drop_index("outbox_parked", "outbox")
    op.drop_column("outbox", "parked_at")
    op.drop_table("dead_letters")
