"""mesh.protoconv: the one conversion of Money and Timestamp every service uses."""
import datetime as dt
from decimal import Decimal

import pytest

from erp.common.v1 import money_pb2
from erp.orders.v1 import orders_pb2
from mesh import protoconv
from mesh.errors import InvalidArgument


def test_money_is_written_by_the_one_amount_rule():
    assert protoconv.money("EUR", Decimal("349.0050")) == money_pb2.Money(currency_code="EUR", amount="349.005")
    assert protoconv.money("EUR", Decimal(5)).amount == "5.00"


def test_an_amount_read_back_is_the_same_decimal_and_a_malformed_one_is_refused():
    assert protoconv.amount_of(protoconv.money("EUR", Decimal("0.0125"))) == Decimal("0.0125")
    with pytest.raises(ValueError, match="malformed amount '12,50'"):
        protoconv.amount_of(money_pb2.Money(currency_code="EUR", amount="12,50"))
    assert protoconv.money_text(money_pb2.Money(currency_code="EUR", amount="2.5000")) == "2.50 EUR"


def test_a_timestamp_round_trips_as_an_aware_utc_datetime():
    moment = dt.datetime(2026, 12, 3, 9, 30, 1, 250000, tzinfo=dt.UTC)
    back = protoconv.moment_of(protoconv.timestamp(moment))
    assert back == moment and back.tzinfo is dt.UTC


def test_an_optional_moment_is_none_when_unset_and_invalid_argument_when_out_of_range():
    request = orders_pb2.ListOrdersRequest()
    assert protoconv.optional_moment(request, "created_after") is None
    request.created_after.seconds = 10**12  # beyond year 9999
    with pytest.raises(InvalidArgument) as refused:
        protoconv.optional_moment(request, "created_after")
    assert [(v.field, v.description) for v in refused.value.violations] == [
        ("created_after", "is not a valid timestamp")]
