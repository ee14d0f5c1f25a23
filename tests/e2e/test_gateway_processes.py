"""The newcomer's path through the gateway, as processes: the services with ERP_INTERNAL_AUTH
on, the gateway with the development issuer, a token from `make token`'s command, then REST."""
from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest
import requests

from erp.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from mesh import identity
from services import EDGE, PORTS
from services.devrun import start_mesh, stop_mesh, wait_serving
from tests.e2e.test_mesh_processes import free_ports

pytestmark = pytest.mark.e2e
SECRET = "e2e-internal-token-secret-0123456789abcdef"


@pytest.fixture
def mesh(engines, tmp_path):
    ports = dict(zip(PORTS, free_ports(len(PORTS)), strict=True))
    http_port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERP_")}
    env.update(ERP_DATABASE_URL=engines.database_url, ERP_REDIS_URL=engines.redis_url,
               ERP_AMQP_URL=engines.amqp_url, ERP_EVENT_TRANSPORT=engines.transport,
               ERP_AMQP_NAMESPACE=engines.namespace, ERP_CACHE_PREFIX=engines.namespace,
               ERP_DATA_DIR=str(tmp_path), ERP_LOG_FORMAT="text", ERP_SHUTDOWN_GRACE_SECONDS="3",
               ERP_INTERNAL_AUTH="true", ERP_INTERNAL_TOKEN_SECRET=SECRET,
               ERP_GATEWAY_DEV_ISSUER="true", ERP_GATEWAY_HTTP_PORT=str(http_port))
    started = start_mesh(("inventory", "orders", "crm"), env, ports=ports)
    try:
        for _, _, target in started:
            wait_serving(target, timeout=60)
        started += start_mesh(EDGE, env, ports=ports)
        wait_serving(started[-1][2], timeout=60)
        yield env, ports, f"http://127.0.0.1:{http_port}"
    finally:
        stop_mesh(started)


def dev_token(env, *scopes) -> str:
    out = subprocess.run([sys.executable, "-m", "services.gateway.devtoken", *scopes], env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("engines", ["pgbus-embedded"], indirect=True)
def test_a_newcomer_calls_the_rest_api_with_a_development_token(mesh):
    env, ports, base = mesh
    auth = {"Authorization": f"Bearer {dev_token(env, 'inventory.read inventory.write', 'orders.read', 'orders.write')}"}
    created = requests.post(f"{base}/v1/products", headers=auth, timeout=10,
                            json={"sku": "E2E-1", "name": "E2E product", "unitOfMeasure": "EA"})
    assert created.status_code == 200, created.text
    assert requests.post(f"{base}/v1/warehouses", headers=auth, timeout=10,
                         json={"code": "MAIN", "name": "Main"}).status_code == 200
    adjusted = requests.post(f"{base}/v1/warehouses/MAIN/stock/E2E-1:adjust", headers=auth, timeout=10,
                             json={"requestId": "adj-1", "quantityDelta": "7", "reason": "first count"})
    assert adjusted.status_code == 200, adjusted.text
    stock = requests.get(f"{base}/v1/warehouses/MAIN/stock/E2E-1", headers=auth, timeout=10)
    assert stock.status_code == 200 and stock.json()["stock"]["onHand"] == "7"
    placed = requests.post(f"{base}/v1/orders", headers=auth, timeout=10, json={
        "requestId": "e2e-order-1", "customerId": "CUST-E2E", "currencyCode": "EUR",
        "lines": [{"sku": "E2E-1", "warehouseCode": "MAIN", "quantity": "2",
                   "unitPrice": {"currencyCode": "EUR", "amount": "10.00"}}]})
    assert placed.status_code == 200, placed.text
    order_id = placed.json()["order"]["orderId"]
    assert requests.get(f"{base}/v1/orders/{order_id}", headers=auth, timeout=10).json()["order"]["orderId"] == order_id
    assert requests.get(f"{base}/v1/orders/{order_id}", timeout=10).status_code == 401
    read_only = {"Authorization": f"Bearer {dev_token(env, 'orders.read')}"}
    assert requests.post(f"{base}/v1/orders/{order_id}:cancel", headers=read_only, json={}, timeout=10).status_code == 403
    # around the gateway, inventory refuses
    with grpc.insecure_channel(f"127.0.0.1:{ports['inventory']}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            inventory_pb2_grpc.InventoryServiceStub(channel).GetStock(
                inventory_pb2.GetStockRequest(sku="E2E-1", warehouse_code="MAIN"), timeout=10,
                metadata=[(identity.HEADER, "forged")])
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
