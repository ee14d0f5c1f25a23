"""The OpenAPI document: current, valid, and true of the running gateway (schemathesis
generates requests from it and checks every response against it)."""
from __future__ import annotations

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
