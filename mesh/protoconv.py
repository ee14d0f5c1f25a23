"""Protobuf's shared value types to Python values and back, one rule for every servicer
and event handler: erp.common.v1.Money as exact decimal text (mesh.money's format), and
google.protobuf.Timestamp as aware UTC datetimes."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

from google.protobuf import message, timestamp_pb2

from erp.common.v1 import money_pb2
from mesh import money as amounts
from mesh.errors import FieldViolation, InvalidArgument


def money(currency: str, amount: Decimal) -> money_pb2.Money:
    """`amount` in `currency` as the API writes it (round first where the answer is in cents)."""
    return money_pb2.Money(currency_code=currency, amount=amounts.format_amount(amount))


def amount_of(value: money_pb2.Money) -> Decimal:
    """The Decimal of a Money that a service wrote (an event's; an unset one is zero):
    ValueError when malformed, which the consumer answers by dead-lettering the event."""
    if not value.amount:
        return Decimal(0)
    parsed = amounts.parse_amount(value.amount)
    if parsed is None:
        raise ValueError(f"malformed amount {value.amount[:32]!r}")
    return parsed


def money_text(value: money_pb2.Money) -> str:
    """'12.50 EUR': a Money for people (log lines, timeline details, reports)."""
    return f"{amounts.format_amount(amount_of(value))} {value.currency_code}"


def timestamp(moment: dt.datetime) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def moment_of(stamp: timestamp_pb2.Timestamp) -> dt.datetime:
    """An aware UTC datetime (protobuf's ToDatetime gives a naive one unless told)."""
    return stamp.ToDatetime(tzinfo=dt.UTC)


def optional_moment(request: message.Message, field: str) -> dt.datetime | None:
    """A request's optional timestamp field as an aware datetime, None when unset;
    INVALID_ARGUMENT naming the field when it is out of Timestamp's range."""
    if not request.HasField(field):
        return None
    try:
        return moment_of(getattr(request, field))
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument([FieldViolation(field, "is not a valid timestamp")]) from exc
