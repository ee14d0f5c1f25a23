"""Email addresses and webhook URLs: one rule for every service that stores or uses them."""
from __future__ import annotations

import re
from urllib.parse import urlsplit

from mesh.errors import Violations

MAX_EMAIL = 254
MAX_URL = 2048
# Used with fullmatch (a trailing newline never passes): a local part of at most 64
# characters, a domain with a dot and a last label without one.
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s.]+")


def valid_email(value: str) -> bool:
    return len(value) <= MAX_EMAIL and bool(EMAIL_RE.fullmatch(value))


def valid_webhook_url(value: str) -> bool:
    """http(s) with a host and a sane port; nothing else (urllib would also open file:// and ftp://)."""
    if len(value) > MAX_URL or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port that is not a number in range
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # a malformed port or IPv6 literal
        return False


def check_email(v: Violations, field: str, email: str) -> None:
    """Empty passes (no email)."""
    if email:
        v.check(valid_email(email), field,
                f"must be an email address such as name@example.com (at most {MAX_EMAIL} characters) or empty")


def check_webhook_url(v: Violations, field: str, url: str) -> None:
    """Empty passes (no webhook)."""
    if url:
        v.check(valid_webhook_url(url), field,
                f"must be an http:// or https:// URL with a host (at most {MAX_URL} characters) or empty")
