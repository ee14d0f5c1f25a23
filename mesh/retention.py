"""Rows a service keeps for a while and then deletes, so that no table grows with every order for
ever: its outbox's published events, its inbox's records of the events it handled, and its
idempotency keys (mesh/idempotency.py).

One thread per service process ("pruner") deletes, every `ERP_PRUNE_SECONDS` (600), what each
table holds beyond its retention, oldest first, in batches of 500 rows: each batch its own short
transaction whose rows are taken FOR UPDATE SKIP LOCKED, so the pruners of two replicas take
different rows and neither waits on the other or on a consumer. Each table is read through an
index in the order it is pruned (the outbox by id, the inbox and the keys by age), so a batch
reads about what it deletes, however large the table (the outbox's also reads past the parked
rows older than its batch, which only a missing queue leaves).

Retentions (hours):
- outbox, `ERP_OUTBOX_RETENTION_HOURS` (168): published rows, for inspection. Unpublished and
  parked rows are never pruned (mesh.events.relay, mesh.events.dead_letters).
- inbox, `ERP_INBOX_RETENTION_HOURS` (168, at least 1): the inbox only has to outlive every
  copy of an event that can still arrive. Copies come from a relay republishing what it did not
  mark sent, RabbitMQ redelivering what a consumer did not ack, and the retry queues' delays:
  all within minutes. A dead letter or a parked event replayed later is no copy: the consumer
  never applied it, so its inbox has no row for it either way. The week is for margin and
  for reading which events a service handled; past it, the business keys the handlers keep where
  an event can be published again (an order's reservation and credit decision, its invoice, a
  receipt id) still apply.
- idempotency keys, `ERP_IDEMPOTENCY_RETENTION_HOURS` (168): see mesh/idempotency.py.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

import sqlalchemy as sa

from mesh import faults, metrics
from mesh.settings import Variables

log = logging.getLogger("mesh.retention")

PRUNE_SECONDS = 600.0
BATCH = 500
DEFAULT_HOURS = 168.0


@dataclasses.dataclass(frozen=True)
class Retention:
    """Rows of `table` whose `age` column is older than `hours` (and that meet `only`) go."""

    table: str
    age: str
    hours: float
    order: str  # an indexed column the oldest rows come first in
    only: str = ""  # a further condition, SQL

    def statement(self) -> sa.TextClause:
        # By the rows' physical addresses, which the batch's lock keeps from moving: a TID scan.
        # By key, `IN (SELECT ...)` hashed the whole table against the batch while it was small.
        only = f" AND {self.only}" if self.only else ""
        return sa.text(
            f"DELETE FROM {self.table} WHERE ctid = ANY(ARRAY("
            f" SELECT ctid FROM {self.table}"
            f" WHERE {self.age} < now() - make_interval(secs => :seconds){only}"
            f" ORDER BY {self.order} LIMIT :batch FOR UPDATE SKIP LOCKED))")


def outbox(hours: float = DEFAULT_HOURS) -> Retention:
    # By id: the outbox is published in id order, and its primary key is the index that has it.
    return Retention("outbox", "published_at", hours, order="id", only="parked_at IS NULL")


def inbox(hours: float = DEFAULT_HOURS) -> Retention:
    return Retention("inbox", "processed_at", hours, order="processed_at")


def idempotency_keys(hours: float = DEFAULT_HOURS) -> Retention:
    return Retention("idempotency_keys", "created_at", hours, order="created_at")


def from_settings(variables: Variables, *, with_keys: bool) -> list[Retention]:
    """Every service has an outbox and an inbox; `with_keys` when it has mutating RPCs."""
    kept = [outbox(variables.number("ERP_OUTBOX_RETENTION_HOURS", DEFAULT_HOURS, least=0)),
            inbox(variables.number("ERP_INBOX_RETENTION_HOURS", DEFAULT_HOURS, least=1))]
    if with_keys:
        kept.append(idempotency_keys(variables.number("ERP_IDEMPOTENCY_RETENTION_HOURS", DEFAULT_HOURS, least=0)))
    return kept


def prune(engine: sa.Engine, kept: Retention, batch: int = BATCH) -> int:
    """Deletes at most `batch` rows older than the retention; returns how many."""
    with engine.connect() as conn:
        deleted = conn.execute(kept.statement(), {"seconds": kept.hours * 3600, "batch": batch}).rowcount
        conn.commit()
    return deleted


def prune_all(engine: sa.Engine, kept: Retention, stop: threading.Event, batch: int = BATCH) -> int:
    """Batch after batch (a short pause between them) until what is left is young, or stop."""
    total = 0
    while not stop.is_set():
        deleted = prune(engine, kept, batch)
        total += deleted
        if deleted < batch:
            break
        stop.wait(0.05)
    return total


def run_pruner(service: str, engine: sa.Engine, kept: list[Retention], stop: threading.Event,
               every_seconds: float = PRUNE_SECONDS, batch: int = BATCH) -> None:
    """Prunes every table every `every_seconds` until stop; a failure waits for the next round."""
    while not stop.wait(every_seconds):
        for each in kept:
            try:
                total = prune_all(engine, each, stop, batch)
                metrics.ROWS_PRUNED.labels(service, each.table).inc(total)
                if total:
                    log.info("pruned %d rows of %s older than %g hours", total, each.table, each.hours)
            except Exception as exc:  # noqa: BLE001 - a lost database: try again next round
                outage = faults.is_infrastructure(exc)  # one line for an outage, the traceback for a bug
                log.warning("pruning %s failed: %s", each.table, exc.__class__.__name__, exc_info=not outage)
