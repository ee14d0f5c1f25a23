"""The shapes of identifiers that cross service boundaries (SKUs, warehouse codes,
idempotency keys), checked the same way by every service that accepts them."""
from __future__ import annotations

import re

from mesh.errors import Violations

# Used with fullmatch (a trailing newline never passes).
SKU_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
WAREHOUSE_RE = re.compile(r"[A-Z0-9_-]{1,32}")


def check_sku(v: Violations, field: str, sku: str) -> None:
    v.check(bool(SKU_RE.fullmatch(sku)), field, "must be 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-'")


def check_warehouse(v: Violations, field: str, code: str) -> None:
    v.check(bool(WAREHOUSE_RE.fullmatch(code)), field, "must be 1-32 characters of A-Z, 0-9, '_' or '-'")


def check_request_id(v: Violations, field: str, request_id: str) -> None:
    v.check(0 < len(request_id) <= 64, field, "must be 1-64 characters (a UUID is a good choice)")
