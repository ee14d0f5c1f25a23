"""The gateway's path templates, route table and settings, without I/O."""
from __future__ import annotations

import asyncio

import pytest

from services.gateway import config, routes
from services.gateway.jwks import KeySet
from services.gateway.routes import NoRoute, parse_template


def test_templates_parse_variables_sub_patterns_and_verbs():
    t = parse_template("/v1/{name=shelves/*}/books/{book.id}:publish")
    assert t.verb == "publish"
    assert t.segments == ("v1", routes.Variable(("name",), ("shelves", "*")), "books", routes.Variable(("book", "id"), ("*",)))
    assert t.match("/v1/shelves/s1/books/b%2F2:publish") == {("name",): "shelves/s1", ("book", "id"): "b/2"}
    assert t.match("/v1/shelves/s1/books/b2") is None, "the verb is part of the template"
    assert t.match("/v1/racks/s1/books/b2:publish") is None


def test_a_multi_segment_variable_keeps_encoded_slashes():
    t = parse_template("/v1/{path=files/**}")
    assert t.match("/v1/files/a/b%2Fc%20d") == {("path",): "files/a/b%2Fc d"}
    assert t.match("/v1/other/a") is None


def test_empty_segments_do_not_match_a_variable():
    assert parse_template("/v1/orders/{order_id}").match("/v1/orders/") is None


def test_the_route_table_of_the_protos():
    table = routes.default_table()
    match = table.match("GET", "/v1/warehouses/MAIN/stock/CHAIR-OAK")
    assert match.route.grpc_path == "/erp.inventory.v1.InventoryService/GetStock"
    assert match.variables == {("warehouse_code",): "MAIN", ("sku",): "CHAIR-OAK"}
    assert table.match("POST", "/v1/orders/o-1:cancel").route.grpc_path == "/erp.orders.v1.OrderService/CancelOrder"
    assert table.match("POST", "/v1/stock:batchGet").route.body == "*"
    with pytest.raises(NoRoute) as caught:
        table.match("GET", "/v1/orders/o-1:cancel")
    assert (caught.value.status, caught.value.allowed) == (405, ("POST",)), "a :verb path belongs to its verb"
    with pytest.raises(NoRoute) as caught:
        table.match("GET", "/v2/orders")
    assert caught.value.status == 404


def test_rate_limits_parse_and_refuse_nonsense():
    assert config.parse_rate_limits("read=50/100, write=0.5/2") == {
        "read": config.RateLimit(50, 100), "write": config.RateLimit(0.5, 2)}
    for bad in ("read=0/1", "read=5/0", "read=x/1"):
        with pytest.raises(ValueError):
            config.parse_rate_limits(bad)


def test_unknown_key_ids_share_one_refetch_per_interval():
    fetches = []

    async def fetch(_url):
        fetches.append(1)
        await asyncio.sleep(0)
        return {"keys": []}

    async def flood():
        keys = KeySet("https://issuer.test/jwks", min_refetch_seconds=3600, fetch=fetch)
        await keys.refresh()
        found = await asyncio.gather(*(keys.get(f"kid-{i}") for i in range(200)))
        return found

    assert asyncio.run(flood()) == [None] * 200
    assert len(fetches) == 1, "the start-up fetch only: the last fetch was less than an interval ago"


def test_the_jwks_url_must_be_https_off_this_machine():
    assert config.check_jwks_url("https://auth.example.com/jwks") == "https://auth.example.com/jwks"
    assert config.check_jwks_url("http://127.0.0.1:8080/dev/jwks.json")
    for bad in ("http://auth.example.com/jwks", "", "file:///etc/keys.json"):
        with pytest.raises(ValueError):
            config.check_jwks_url(bad)
