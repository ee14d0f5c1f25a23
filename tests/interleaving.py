"""Forced interleavings of two handlers on real PostgreSQL.

A race is proved closed only when the bad schedule is forced, not when a lucky run misses it:
the first handler is stopped at a chosen point inside its transaction (right after a
repository call returns), the second is run until it commits or until PostgreSQL makes it wait
for a lock the first one holds, and then the first is resumed. On code with the race the
second commits inside the first's window; on correct code it waits for the first to commit.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

_BLOCKED_BY = sa.text("SELECT count(*) FROM pg_stat_activity WHERE CAST(:pid AS integer) = ANY(pg_blocking_pids(pid))")


class PausePoint:
    """Stops the first call of owner.name made once armed (by interleave, as it starts the
    first handler), right after it returns, until resumed. owner is a repository class: its
    instances keep their connection in .conn. Any thread: an RPC runs in a server thread."""

    def __init__(self, monkeypatch, owner: type, name: str) -> None:
        self.reached = threading.Event()
        self.resumed = threading.Event()
        self.backend_pid: int | None = None
        self.armed = threading.Event()
        self._claim = threading.Lock()
        original = getattr(owner, name)

        def paused(this, *args, **kwargs):
            result = original(this, *args, **kwargs)
            if self.armed.is_set() and self._claim.acquire(blocking=False):
                self.backend_pid = this.conn.connection.driver_connection.info.backend_pid
                self.reached.set()
                self.resumed.wait(30)
            return result

        monkeypatch.setattr(owner, name, paused)


@dataclasses.dataclass
class Interleaving:
    first: Any  # what each returned (or the exception it raised)
    second: Any
    second_waited: bool  # PostgreSQL made the second wait for the paused first: they serialized


def interleave(engine: sa.Engine, pause: PausePoint, first: Callable[[], Any], second: Callable[[], Any],
               timeout: float = 20.0) -> Interleaving:
    """first() up to the pause point; then second() until it returns or waits on first's locks;
    then first() to its end, and second() to its end."""
    results: dict[str, Any] = {}

    def run(name: str, fn: Callable[[], Any]) -> None:
        try:
            results[name] = fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[name] = exc

    pause.armed.set()
    a = threading.Thread(target=run, args=("first", first), daemon=True)
    a.start()
    if not pause.reached.wait(timeout):
        pause.resumed.set()
        a.join(timeout)
        raise AssertionError(f"the first handler never reached the pause point (it returned {results.get('first')!r})")
    b = threading.Thread(target=run, args=("second", second), daemon=True)
    b.start()
    waited = False
    deadline = time.monotonic() + timeout
    with engine.connect() as probe:
        while b.is_alive() and time.monotonic() < deadline:
            b.join(0.02)
            if b.is_alive() and probe.execute(_BLOCKED_BY, {"pid": pause.backend_pid}).scalar():
                waited = True
                break
            probe.rollback()
    pause.resumed.set()
    a.join(timeout)
    b.join(timeout)
    assert not a.is_alive() and not b.is_alive(), "a handler did not finish"
    return Interleaving(results.get("first"), results.get("second"), waited)
