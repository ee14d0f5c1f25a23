"""Keyset pagination for List calls: opaque page tokens that carry the last key seen
and a fingerprint of the filters, so a token used with other filters is refused.

A token is the caller's input: base64 JSON anyone can forge. decode() checks the key
against the listing's shape (one kind per element: str, int or TIMESTAMP) before it goes
anywhere near SQL, so a forged or stale token is INVALID_ARGUMENT, never INTERNAL."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from mesh.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# A key element that is a time: an ISO 8601 string with its offset (what datetime.isoformat()
# writes); decode() hands it back in UTC, in the form PostgreSQL reads.
TIMESTAMP = "timestamp"
# The kind of one key element: str, int or TIMESTAMP.
KeyKind = type[str] | type[int] | str
T = TypeVar("T")
MAX_KEY_TEXT = 1024  # characters in a text key element; ids and codes are far shorter
NOT_ISSUED = "is not a token this service issued"


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page.page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(last_key: Sequence[object], filters: Mapping[str, object]) -> str:
    """A token that resumes after last_key (the sort key of the page's last item)."""
    raw = json.dumps({"k": last_key, "f": _fingerprint(filters)}, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: Mapping[str, object], shape: tuple[KeyKind, ...]) -> list[str | int] | None:
    """The last key a token carries, or None for the first page. `shape` is the key's kinds,
    one per element, as the listing's next_token writes them: (TIMESTAMP, str) for
    [created_at.isoformat(), id]; a key of another length or kind is refused."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, fingerprint = data["k"], data["f"]
    except (ValueError, KeyError, TypeError) as exc:
        raise _not_issued() from exc
    if fingerprint != _fingerprint(filters):
        raise InvalidArgument([FieldViolation("page.page_token", "was issued for other filters")])
    if not isinstance(key, list) or len(key) != len(shape):
        raise _not_issued()
    return [_element(value, kind) for value, kind in zip(key, shape, strict=True)]


def _element(value: object, kind: KeyKind) -> str | int:
    if kind is str:
        if isinstance(value, str) and len(value) <= MAX_KEY_TEXT and "\x00" not in value:
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63:
            return value
    elif kind == TIMESTAMP:
        try:
            moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
            if moment is not None and moment.tzinfo is not None:
                return moment.astimezone(dt.UTC).isoformat()
        except (ValueError, OverflowError):
            pass
    else:
        raise ValueError(f"unknown page key kind {kind!r}")
    raise _not_issued()


def _not_issued() -> InvalidArgument:
    return InvalidArgument([FieldViolation("page.page_token", NOT_ISSUED)])


def next_token(items: Sequence[T], size: int, key_of: Callable[[T], Sequence[object]],
               filters: Mapping[str, object]) -> str:
    """Call with up to size + 1 items fetched: a token when there is more, else ''."""
    if len(items) <= size:
        return ""
    return encode(key_of(items[size - 1]), filters)


def by_creation(page_size_requested: int, page_token: str, filters: Mapping[str, object],
                created: tuple[dt.datetime | None, dt.datetime | None],
                fetch: Callable[[tuple[str, str] | None, int], Sequence[T]],
                key_of: Callable[[T], tuple[dt.datetime, str]]) -> tuple[list[T], str]:
    """One page of a listing in (created_at, id) order with an optional created_after /
    created_before window (orders', purchase orders'): checks the window, reads the token,
    fetch(after_key, limit) the rows, and returns them with the next page's token."""
    after, before = created
    if after and before and not after < before:
        raise InvalidArgument([FieldViolation("created_before", "must be later than created_after")])
    size = page_size(page_size_requested)
    filters = {**filters, "after": str(after or ""), "before": str(before or "")}
    last: tuple[str, str] | None = None
    match decode(page_token, filters, (TIMESTAMP, str)):
        case [str(created_at), str(row_id)]:
            last = (created_at, row_id)
    rows = fetch(last, size + 1)
    token = next_token(rows, size, lambda row: [key_of(row)[0].isoformat(), key_of(row)[1]], filters)
    return list(rows[:size]), token
