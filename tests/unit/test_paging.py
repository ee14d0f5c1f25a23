"""mesh.paging: a page token is the caller's input; decode() checks the key's shape (length
and the kind of each element) so a forged or stale token is INVALID_ARGUMENT, never SQL."""
from __future__ import annotations

import base64
import json

import pytest

from mesh import paging
from mesh.errors import InvalidArgument

FILTERS = {"customer": "", "status": ""}
SHAPE = (paging.TIMESTAMP, str)


def refused(token: str, shape=SHAPE, filters=FILTERS) -> str:
    with pytest.raises(InvalidArgument) as info:
        paging.decode(token, filters, shape)
    [violation] = info.value.violations
    assert violation.field == "page.page_token"
    return violation.description


def test_a_token_round_trips_with_its_shape():
    token = paging.encode(["2026-03-01T12:00:00.123456+00:00", "order-9"], FILTERS)
    assert paging.decode(token, FILTERS, SHAPE) == ["2026-03-01T12:00:00.123456+00:00", "order-9"]
    assert paging.decode("", FILTERS, SHAPE) is None
    assert paging.decode(paging.encode([2026, 7], {}), {}, (int, int)) == [2026, 7]
    assert paging.decode(paging.encode(["MAIN", "SKU"], {}), {}, (str, str)) == ["MAIN", "SKU"]


def test_a_time_comes_back_in_utc_in_the_form_postgresql_reads():
    token = paging.encode(["2026-03-01T14:00:00+02:00", "o"], FILTERS)
    assert paging.decode(token, FILTERS, SHAPE) == ["2026-03-01T12:00:00+00:00", "o"]
    # an ISO week date parses in Python but not in PostgreSQL: canonical form instead
    token = paging.encode(["2026-W09-7T12:00:00+00:00", "o"], FILTERS)
    assert paging.decode(token, FILTERS, SHAPE) == ["2026-03-01T12:00:00+00:00", "o"]


@pytest.mark.parametrize("key", [
    "x", {"a": 1}, None, 7, [], ["2026-03-01T12:00:00+00:00"], ["2026-03-01T12:00:00+00:00", "o", "extra"],
    ["not a time", "o"], ["2026-03-01T12:00:00", "o"], [20260301, "o"], ["2026-03-01T12:00:00+00:00", 5],
    ["2026-03-01T12:00:00+00:00", None], ["2026-03-01T12:00:00+00:00", "a\x00b"],
    ["2026-03-01T12:00:00+00:00", "x" * 1025], ["0001-01-01T00:00:00+01:00", "o"],
], ids=repr)
def test_a_key_of_another_shape_is_refused(key):
    assert refused(paging.encode(key, FILTERS)) == paging.NOT_ISSUED


@pytest.mark.parametrize("key", [[True], [1.5], ["1"], [2**63], [-(2**63) - 1], [None]], ids=repr)
def test_integers_are_integers_in_the_bigint_range(key):
    assert refused(paging.encode(key, {}), (int,), {}) == paging.NOT_ISSUED
    assert paging.decode(paging.encode([2**63 - 1], {}), {}, (int,)) == [2**63 - 1]


def forged(data) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize("token", ["garbage!", forged([1, 2]), forged("k"), forged({"k": ["a"]}),
                                   base64.urlsafe_b64encode(b"\xff\xfe").decode()], ids=repr)
def test_undecodable_tokens_are_refused(token):
    assert refused(token) == paging.NOT_ISSUED


def test_a_token_of_other_filters_is_refused():
    token = paging.encode(["2026-03-01T12:00:00+00:00", "o"], {"customer": "c-1", "status": ""})
    assert refused(token) == "was issued for other filters"


def test_an_unknown_kind_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown page key kind"):
        paging.decode(paging.encode(["a"], {}), {}, (bytes,))
