"""The OpenAPI document: current, valid, and true of the running gateway (schemathesis
generates requests from it and checks every response against it)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate
from schemathesis.specs.openapi.checks import positive_data_acceptance

from mesh import access
from services.gateway import openapi
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET, Harness

ALL_SCOPES = sorted({s for rule in access.table().values() for s in rule.scopes})
schema = schemathesis.openapi.from_path(openapi.PATH)


def test_the_committed_document_is_what_the_route_table_generates():
    assert openapi.PATH.read_text() == openapi.dumps(openapi.generate()), \
        "services/gateway/openapi.json is stale: run `make gateway-generate` and commit it"


def test_the_document_is_valid_openapi_3_1():
    validate(openapi.committed())
    assert openapi.committed()["openapi"] == "3.1.0"


def test_the_protos_comments_are_the_documents_descriptions():
    document = openapi.committed()
    get_order = document["paths"]["/v1/orders/{order_id}"]["get"]
    assert get_order["summary"] == "Returns one order by id, or NOT_FOUND"
    assert get_order["description"].startswith("Returns one order by id, or NOT_FOUND.")
    assert "/erp.orders.v1.OrderService/GetOrder" in get_order["description"]  # and what it was before
    schemas = document["components"]["schemas"]
    order = schemas["erp.orders.v1.Order"]
    assert order["description"] and order["properties"]["customerId"]["description"]
    assert "wrapped" not in order["description"] and "\n" not in order["properties"]["customerId"]["description"]
    tags = {t["name"]: t.get("description", "") for t in document["tags"]}
    assert tags["erp.orders.v1.OrderService"].startswith("OrderService owns sales orders")
    # every operation, message and field says something: a proto element without a comment shows here
    undocumented = [f"{p} {m}" for p, ops in document["paths"].items() for m, op in ops.items()
                    if op["summary"] == op["operationId"].split("_")[1]]
    undocumented += [name for name, s in schemas.items() if not s.get("description")]
    assert not undocumented, undocumented


def test_enums_are_named_strings_and_say_what_each_value_means():
    schemas = openapi.committed()["components"]["schemas"]
    status = schemas["erp.orders.v1.OrderStatus"]
    assert status["type"] == "string" and "ORDER_STATUS_PENDING" in status["enum"]
    assert all(isinstance(v, str) for v in status["enum"])
    assert "- `ORDER_STATUS_PENDING`: " in status["description"]
    assert schemas["erp.orders.v1.Order"]["properties"]["status"]["$ref"] == "#/components/schemas/erp.orders.v1.OrderStatus"


def test_it_names_a_server_and_the_query_parameters_as_the_readme_uses_them():
    document = openapi.committed()
    assert document["servers"] == [{"url": "/", "description": "the gateway serving this document"}]
    list_orders = {p["name"] for p in document["paths"]["/v1/orders"]["get"]["parameters"]}
    assert {"customerId", "page.pageSize", "page.pageToken", "status", "createdAfter"} <= list_orders
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    urls = re.findall(r"http://127\.0\.0\.1:8080(/v1/[^\s\"']*\?[^\s\"']+)", readme)
    assert "/v1/orders?customerId=CUST-1&page.pageSize=5" in urls
    for url in urls:
        path, query = url.split("?", 1)
        operation = next(ops["get"] for template, ops in document["paths"].items()
                         if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", template), path) and "get" in ops)
        names = {p["name"] for p in operation["parameters"]}
        for name in (pair.split("=")[0] for pair in query.split("&")):
            assert name in names, f"README's {url}: {name} is not a parameter of the document"


def test_the_served_servers_entry_can_name_the_public_url():
    document = openapi.committed()
    assert openapi.served(document, "") is document
    assert openapi.served(document, "https://erp.example.com")["servers"] == [
        {"url": "https://erp.example.com", "description": "the ERP mesh API"}]


def test_secured_operations_document_the_401_and_its_challenge():
    get_order = openapi.committed()["paths"]["/v1/orders/{order_id}"]["get"]
    assert get_order["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True


@pytest.fixture(scope="module")
def live(embedded_pg, embedded_redis, tmp_path_factory):
    """The whole mesh with ERP_INTERNAL_AUTH on, behind the gateway."""
    from tests import support

    with support.fresh_database(embedded_pg) as url:
        engines = support.Engines(url, embedded_redis, "postgres", namespace="erptest-openapi")
        data = tmp_path_factory.mktemp("openapi")
        with running_mesh(engines, data, internal_auth=True, internal_token_secret=SECRET) as (_client, started):
            gateway = Harness(embedded_redis, data, {n: f"127.0.0.1:{s.port}" for n, s in started.items()},
                              env={"ERP_GATEWAY_RATE_LIMITS": "read=100000/100000,write=100000/100000,"
                                                              "report=100000/100000"})
            try:
                yield gateway
            finally:
                gateway.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_gateway_answers_as_its_document_says(case, live):
    # Every check but positive_data_acceptance: the protos carry no validation constraints, so a
    # schema-valid request can still break a domain rule and get 400 INVALID_ARGUMENT (documented
    # under `default`). Schema-invalid requests must still be refused (negative_data_rejection).
    case.call_and_validate(base_url=live.base_url, timeout=30, excluded_checks=[positive_data_acceptance],
                           headers={"Authorization": f"Bearer {live.issuer.token(ALL_SCOPES)}"})
