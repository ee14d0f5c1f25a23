"""Exact decimal money: parsing and formatting of erp.common.v1.Money amounts."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

AMOUNT_RE = re.compile(r"-?[0-9]{1,14}(\.[0-9]{1,4})?")
CURRENCY_RE = re.compile(r"[A-Z]{3}")


def parse_amount(text: str) -> Decimal | None:
    """The Decimal an amount string denotes, or None when it is not a valid amount."""
    if not AMOUNT_RE.fullmatch(text or ""):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def valid_currency(code: str) -> bool:
    return bool(CURRENCY_RE.fullmatch(code or ""))


def format_amount(value: Decimal) -> str:
    """Plain notation with at least two decimals, for example '12.50' or '0.0125'."""
    quantized = value.quantize(Decimal("0.01")) if value == value.quantize(Decimal("0.01")) else value
    return format(quantized, "f")
