"""Segregation of duties in procurement, through the real service on real PostgreSQL:
whoever submitted a purchase order cannot approve it (ERP_PROCUREMENT_SEGREGATE_DUTIES, on
by default), whether the person comes from the request or, with ERP_INTERNAL_AUTH, from the
verified caller; someone else can; the setting off allows it."""
from __future__ import annotations

import collections
import uuid

import grpc
import pytest

from erp.procurement.v1 import procurement_pb2 as pb
from erp_client import ErpClient
from mesh import access, identity
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.gateway_harness import SECRET
from tests.integration.test_order_flow import stock_up


class _Details(collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials",
                                                   "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class ActingAs(grpc.UnaryUnaryClientInterceptor):
    """Sends each call with the internal token the gateway would mint for `who`."""

    def __init__(self) -> None:
        self.who = "setup"

    def intercept_unary_unary(self, continuation, details, request):
        rule = access.table()[details.method]
        token = identity.mint(SECRET, identity.Identity(self.who, rule.scopes), details.method)
        metadata = [*(details.metadata or ()), (identity.HEADER, token)]
        return continuation(_Details(details.method, details.timeout, metadata, details.credentials,
                                     details.wait_for_ready, details.compression), request)


@pytest.fixture
def engines(postgres_server, redis_server):
    with support.fresh_database(postgres_server) as url:
        yield support.Engines(url, redis_server, "postgres", namespace="erptest-" + uuid.uuid4().hex[:8])


def refusal(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def draft(client) -> pb.PurchaseOrder:
    stock_up(client, {("BOLT", "MAIN"): 0}, customers=())
    client.create_supplier("ACME", "Acme Supply", email="orders@acme.test")
    client.set_supplier_price("ACME", "BOLT", "2.50", preferred=True)
    return client.create_purchase_order("ACME", [("BOLT", 10, "")])


def test_the_submitter_named_in_the_request_cannot_approve(engines, tmp_path):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement")) as (client, _):
        order = draft(client)
        client.submit_purchase_order(order.purchase_order_id, "sam")
        err = refusal(lambda: client.approve_purchase_order(order.purchase_order_id, "sam"))
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "sam submitted purchase order" in err.details() and "someone else must approve" in err.details()
        assert client.get_purchase_order(order.purchase_order_id).status == pb.PURCHASE_ORDER_STATUS_SUBMITTED
        approved = client.approve_purchase_order(order.purchase_order_id, "ada")
        assert approved.status == pb.PURCHASE_ORDER_STATUS_APPROVED and approved.submitted_by == "sam"


def test_the_verified_caller_who_submitted_cannot_approve(engines, tmp_path):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement"), internal_auth=True,
                      internal_token_secret=SECRET) as (_client, started):
        acting = ActingAs()
        targets = {f"{name}_target": f"127.0.0.1:{r.port}" for name, r in started.items()}
        with ErpClient(**targets, interceptors=[acting]) as client:
            order = draft(client)
            acting.who = "alice"
            assert client.submit_purchase_order(order.purchase_order_id, "").submitted_by == "alice"
            err = refusal(lambda: client.approve_purchase_order(order.purchase_order_id, ""))
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "alice submitted purchase order" in err.details()
            acting.who = "bob"
            assert client.approve_purchase_order(order.purchase_order_id, "").status == \
                pb.PURCHASE_ORDER_STATUS_APPROVED


def test_with_the_setting_off_the_submitter_may_approve(engines, tmp_path):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement"),
                      env={"ERP_PROCUREMENT_SEGREGATE_DUTIES": "false"}) as (client, _):
        order = draft(client)
        client.submit_purchase_order(order.purchase_order_id, "sam")
        assert client.approve_purchase_order(order.purchase_order_id, "sam").status == \
            pb.PURCHASE_ORDER_STATUS_APPROVED
