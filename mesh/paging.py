"""Keyset pagination for List calls: opaque page tokens that carry the last key seen
and a fingerprint of the filters, so a token used with other filters is refused."""
from __future__ import annotations

import base64
import hashlib
import json

from mesh.errors import FieldViolation, InvalidArgument

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument([FieldViolation("page.page_size", "must not be negative")])
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def _fingerprint(filters: dict) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def encode(last_key: list, filters: dict) -> str:
    """A token that resumes after last_key (the sort key of the page's last item)."""
    raw = json.dumps({"k": last_key, "f": _fingerprint(filters)}, default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, filters: dict) -> list | None:
    """The last key a token carries, or None for the first page."""
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        key, fingerprint = data["k"], data["f"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument([FieldViolation("page.page_token", "is not a token this service issued")]) from exc
    if fingerprint != _fingerprint(filters):
        raise InvalidArgument([FieldViolation("page.page_token", "was issued for other filters")])
    return key


def next_token(items: list, size: int, key_of, filters: dict) -> str:
    """Call with up to size + 1 items fetched: a token when there is more, else ''."""
    if len(items) <= size:
        return ""
    return encode(key_of(items[size - 1]), filters)
