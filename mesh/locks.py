"""One writer per aggregate: transaction-scoped PostgreSQL advisory locks keyed by aggregate.

Every handler (event consumer or RPC) that reads an aggregate's state and then writes
depending on it takes the aggregate's lock first, before any row lock, and holds it to the
end of its transaction. Replicas of a service share its database, so the handler beside a
copy of itself waits instead of acting on what it read before the other committed.

Why an advisory lock and not the aggregate's row: the row may not exist yet. A release that
overtakes its reservation, or a cancellation that overtakes its invoice, writes a tombstone
precisely because there is no row to lock; an advisory lock keyed by the aggregate id
serializes it with the writer that is about to create that row.

Order: a transaction takes all its aggregate locks in one statement, sorted by key, before
anything else (the event consumer does this for a whole batch), so two transactions never
wait for each other's aggregates in opposite orders. Keys are scoped by service, so services
that share one database (the embedded setup) never contend on each other's keys.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

import sqlalchemy as sa

from mesh import sql

AggregateRef = tuple[str, str]  # (kind, id): ("order", "8d3f..."), ("customer", "CUST-1")

# unnest() yields the array in order, so the locks are taken in the order of the sorted keys.
_LOCK_MANY = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
# The same, then lock_timeout set for the rest of the transaction, in the one round trip: the
# outer SELECT runs once the aggregate has taken every lock (count() consumes them all first).
_LOCK_MANY_THEN = sa.text("SELECT set_config('lock_timeout', :then, true) FROM "
                          "(SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k) AS locked")
_TRY_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(CAST(:key AS bigint))")


def aggregate_key(service: str, kind: str, ident: str) -> int:
    """A stable signed 64-bit key for (service, aggregate kind, aggregate id)."""
    digest = hashlib.blake2b(f"{service}\x1f{kind}\x1f{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_aggregates(conn: sa.Connection, service: str, refs: Iterable[AggregateRef],
                    held: set[int] | None = None, then_lock_timeout: str | None = None) -> list[int]:
    """Takes the advisory locks of the aggregates (until the transaction ends), in key order,
    in one round trip; skips keys in `held` (already taken in this transaction) and adds the
    new ones to it. Returns the keys it locked. then_lock_timeout ('100ms'): how long the
    rest of the transaction waits for a lock, set in the same round trip once these are held."""
    keys = sorted({aggregate_key(service, kind, ident) for kind, ident in refs} - (held or set()))
    if then_lock_timeout is not None:
        sql.run(conn, _LOCK_MANY_THEN, {"keys": keys, "then": then_lock_timeout})
    elif keys:
        sql.run(conn, _LOCK_MANY, {"keys": keys})
    if held is not None:
        held.update(keys)
    return keys


def try_lock_aggregate(conn: sa.Connection, service: str, ref: AggregateRef, held: set[int] | None = None) -> bool:
    """lock_aggregates() for one aggregate, without waiting: False when another transaction
    holds it. For background work that can leave a busy aggregate to its next round rather
    than queue behind it (or behind a copy of itself on another replica)."""
    key = aggregate_key(service, *ref)
    if held is not None and key in held:
        return True
    if not conn.execute(_TRY_LOCK, {"key": key}).scalar_one():
        return False
    if held is not None:
        held.add(key)
    return True


def by(kind: str, field: str) -> Callable[[object], list[AggregateRef]]:
    """The `lock=` of an event handler whose aggregate is named by one field of the payload:
    `on(OrderPlaced, lock=by("order", "order_id"))`."""
    def refs(payload: object) -> list[AggregateRef]:
        return [(kind, getattr(payload, field))]

    refs.__qualname__ = f"by({kind!r}, {field!r})"
    return refs
