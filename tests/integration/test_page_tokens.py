"""Page tokens through real List RPCs on real PostgreSQL: a token the service issued walks
every item once; a forged or stale one (it decodes, its filter fingerprint matches, but its
key has another shape or kinds) is INVALID_ARGUMENT on page.page_token, never INTERNAL."""
from __future__ import annotations

import uuid

import grpc
import pytest

from erp.common.v1 import paging_pb2
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ordpb
from erp_client.client import Line
from mesh import paging
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.test_grpc_contract import field_violations

ORDER_FILTERS = {"customer": "", "status": "", "after": "", "before": ""}
STOCK_FILTERS = {"warehouse": "", "prefix": "", "below": False}


@pytest.fixture
def client(postgres_server, redis_server, tmp_path):
    with support.fresh_database(postgres_server) as url:
        engines = support.Engines(url, redis_server, "postgres", namespace="erptest-" + uuid.uuid4().hex[:8])
        with running_mesh(engines, tmp_path, services=("inventory", "orders")) as (client, _started):
            yield client


def list_orders(client, token: str, size: int = 2) -> ordpb.ListOrdersResponse:
    return client.orders.ListOrders(ordpb.ListOrdersRequest(
        page=paging_pb2.PageRequest(page_size=size, page_token=token)), timeout=10)


def test_issued_tokens_walk_every_order_once(client):
    placed = {client.place_order("CUST-1", [Line("SKU", 1, "1.00")]).order_id for _ in range(5)}
    seen, token = [], ""
    while True:
        page = list_orders(client, token)
        seen += [o.order_id for o in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(placed)


@pytest.mark.parametrize("key", [
    "x", {"k": 1}, 12, [], ["2026-03-01T12:00:00+00:00"], ["not a time", "o"], ["2026-03-01T12:00:00", "o"],
    [1, 2], ["2026-03-01T12:00:00+00:00", 5], ["2026-03-01T12:00:00+00:00", "a\x00b"],
    ["2026-03-01T12:00:00+00:00", "o", "extra"],
], ids=repr)
def test_a_forged_order_token_is_invalid_argument(client, key):
    with pytest.raises(grpc.RpcError) as info:
        list_orders(client, paging.encode(key, ORDER_FILTERS))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert field_violations(info.value) == {"page.page_token": paging.NOT_ISSUED}


@pytest.mark.parametrize("key", ["MAIN", ["MAIN"], ["MAIN", 7], ["MAIN\x00", "SKU"], [["MAIN"], "SKU"]], ids=repr)
def test_a_forged_stock_token_is_invalid_argument(client, key):
    with pytest.raises(grpc.RpcError) as info:
        client.inventory.ListStock(inv.ListStockRequest(page=paging_pb2.PageRequest(
            page_size=2, page_token=paging.encode(key, STOCK_FILTERS))), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert "page.page_token" in field_violations(info.value)
