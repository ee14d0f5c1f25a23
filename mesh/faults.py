"""Infrastructure failing is not a message failing (DESIGN decision 12).

A lost database connection, a failover, a server shutting down, contention that timed out:
none of these says anything about the event being handled, and spending the event's retries
on them dead-letters good work (five attempts at 0.2/0.8/3.2/12.8 s last 17 s; a failover
lasts longer). The consumer asks `is_infrastructure` about every failure; such a failure is
retried without counting an attempt, and the consumer waits for the dependency to answer
before it takes more. Everything else (a handler's bug, an event it cannot apply) counts.
"""
from __future__ import annotations

import os
import signal

import psycopg
import redis
import sqlalchemy as sa

# SQLSTATEs of an OperationalError that are the server's or the network's state, not the
# statement's: connection exceptions (08), shutdown and restart (57P01-57P03), resources (53),
# serialization failure, deadlock and lock timeout (contention: the next try may pass).
_TRANSIENT_STATES = ("57P01", "57P02", "57P03", "40001", "40P01", "55P03")
_TRANSIENT_CLASSES = ("08", "53")


def _transient_pg(err: psycopg.Error) -> bool:
    state = err.sqlstate
    if state is None:  # no answer from a server at all: the connection is gone or never was
        return isinstance(err, psycopg.OperationalError | psycopg.InterfaceError)
    return state in _TRANSIENT_STATES or state[:2] in _TRANSIENT_CLASSES


def is_infrastructure(exc: BaseException) -> bool:
    """Whether a failure is the database's, the cache's or the network's, not the handler's."""
    if isinstance(exc, sa.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig if exc.orig is not None else exc
    if isinstance(exc, psycopg.Error):
        return _transient_pg(exc)
    if isinstance(exc, sa.exc.DisconnectionError | sa.exc.TimeoutError):  # pool checkout timed out
        return True
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | ConnectionError | TimeoutError)


def is_transport_outage(exc: BaseException) -> bool:
    """Whether the broker connection is gone (closed, reset, refused), as opposed to a bug."""
    import pika.exceptions

    return isinstance(exc, pika.exceptions.AMQPConnectionError | pika.exceptions.ChannelClosed
                      | pika.exceptions.StreamLostError | ConnectionError) or is_infrastructure(exc)


# The chaos suite (chaos/) starts each service's replicas with ERP_CRASH_POINTS_DIR, a folder of the
# service's own, and drops a file named after a point there to make one replica die (SIGKILL, no
# cleanup) where it next passes the point: between the relay's publish and its mark-sent, between a
# consumer's commit and its ack. The replica that removes the file is the one that dies, so of
# replicas passing the point together (a consumer taking over from the one just killed) only one
# does. Without the variable a crash point is one comparison.
_CRASH_POINTS_DIR = os.environ.get("ERP_CRASH_POINTS_DIR", "")


def crash_point(name: str) -> None:
    if not _CRASH_POINTS_DIR:
        return
    try:
        os.unlink(os.path.join(_CRASH_POINTS_DIR, name))
    except FileNotFoundError:
        return
    os.kill(os.getpid(), signal.SIGKILL)
