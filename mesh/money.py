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


CENT = Decimal("0.01")


def format_amount(value: Decimal) -> str:
    """The one way an amount is written: plain notation, at least two decimals and no
    insignificant zeros beyond them ('12.50', '0.0125', and 349.0050 as '349.005')."""
    trimmed = value.normalize()
    exponent = trimmed.as_tuple().exponent  # a str only for NaN and infinities, which no amount is
    shown = trimmed if isinstance(exponent, int) and exponent < -2 else value.quantize(CENT)
    return format(shown, "f")
