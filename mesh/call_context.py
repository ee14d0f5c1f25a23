"""Per-call context: request, correlation and causation ids, the deadline and the
verified caller (subject and scopes, from the gateway's internal token).

Set by the server interceptor for gRPC calls and by the event consumer for events;
read by logging, the outbox (to stamp envelopes) and outgoing client calls.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import random
import time
from collections.abc import Iterator
from typing import Any

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
causation_id: contextvars.ContextVar[str] = contextvars.ContextVar("causation_id", default="")
# Absolute time.monotonic() by which the current call must finish; None: no deadline.
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
# Who called, as the gateway verified it ("" when the call carried no internal token,
# e.g. local runs without ERP_INTERNAL_AUTH). Handlers read it for approver identities.
subject: contextvars.ContextVar[str] = contextvars.ContextVar("subject", default="")
scopes: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("scopes", default=frozenset())


# A generator of the ids' own, seeded from os.urandom, and again in a forked child: not the random
# module's shared one, which anything may reseed (Hypothesis does, per example: ids repeated).
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_UUID_FIXED_BITS = ~(0xF << 76) & ~(0x3 << 62)  # the version nibble and the variant's two bits, cleared
_UUID_V4_BITS = (0x4 << 76) | (0x2 << 62)  # then set: version 4, RFC 4122 variant


def new_id() -> str:
    """A random (version 4) UUID as text: a request's or an event's id, unique, not secret.
    From that Mersenne Twister, not uuid4()'s os.urandom: on this project's VMs that system call
    took ~13 of the ~65 us of CPU that the server wrapper and handler spent per cached GetStock
    under load."""
    h = (_ids.getrandbits(128) & _UUID_FIXED_BITS | _UUID_V4_BITS).to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _values(request: str, correlation: str, causation: str, timeout: float | None, caller: str,
            caller_scopes: frozenset[str]) -> tuple[tuple[contextvars.ContextVar[Any], Any], ...]:
    req = request or new_id()
    return ((request_id, req), (correlation_id, correlation or req), (causation_id, causation or req),
            (deadline, None if timeout is None else time.monotonic() + timeout), (subject, caller),
            (scopes, caller_scopes))


@contextlib.contextmanager
def scope(
    *, request: str = "", correlation: str = "", causation: str = "", timeout: float | None = None,
    caller: str = "", caller_scopes: frozenset[str] = frozenset(),
) -> Iterator[None]:
    """Runs a block with the given ids (fresh ones where empty), deadline and caller."""
    tokens = [(var, var.set(value))
              for var, value in _values(request, correlation, causation, timeout, caller, caller_scopes)]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def begin_call(*, request: str, correlation: str, timeout: float | None, caller: str,
               caller_scopes: frozenset[str]) -> None:
    """scope() for a gRPC handler, without the undo: grpc runs each call in a
    contextvars.Context of its own, which ends with the call."""
    for var, value in _values(request, correlation, "", timeout, caller, caller_scopes):
        var.set(value)


def time_remaining() -> float | None:
    """Seconds left before the current deadline, or None when there is none."""
    end = deadline.get()
    return None if end is None else max(0.0, end - time.monotonic())


def acting_person(claimed: str, field: str) -> str:
    """Who is acting (an approver, a receiver): the verified caller when the call carried
    one (ERP_INTERNAL_AUTH), so nobody approves in someone else's name; else what the
    request claims (local runs without the gateway). A claim naming someone other than
    the verified caller is refused."""
    verified = subject.get()
    if not verified:
        return claimed
    if claimed and claimed != verified:
        from mesh.errors import FieldViolation, InvalidArgument

        raise InvalidArgument([FieldViolation(field, f"must be empty or the caller's own identity ({verified})")])
    return verified
