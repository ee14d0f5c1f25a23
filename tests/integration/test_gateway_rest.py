"""REST/JSON at the edge: routes, body modes, query parameters, the JSON mapping, and
gRPC codes as HTTP statuses, against a recording gRPC backend."""
from __future__ import annotations

import grpc
import pytest
import requests
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from erp.common.v1 import money_pb2
from erp.inventory.v1 import inventory_pb2
from erp.orders.v1 import orders_pb2
from services.gateway.transcode import HTTP_STATUS
from tests.integration.gateway_harness import Harness, RecordingBackend

PLACE = "/erp.orders.v1.OrderService/PlaceOrder"
GET_ORDER = "/erp.orders.v1.OrderService/GetOrder"
SCOPES = ["orders.read", "orders.write", "inventory.read", "inventory.write"]
ENVOY_STATUS = {  # gRPC code -> HTTP status (Envoy's grpc_json_transcoder, grpc-gateway)
    "CANCELLED": 499, "UNKNOWN": 500, "INVALID_ARGUMENT": 400, "DEADLINE_EXCEEDED": 504, "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409, "PERMISSION_DENIED": 403, "RESOURCE_EXHAUSTED": 429, "FAILED_PRECONDITION": 400,
    "ABORTED": 409, "OUT_OF_RANGE": 400, "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNAVAILABLE": 503,
    "DATA_LOSS": 500, "UNAUTHENTICATED": 401,
}


@pytest.fixture(scope="module")
def backend():
    backend = RecordingBackend()
    yield backend
    backend.stop()


@pytest.fixture(scope="module")
def gateway(redis_server, tmp_path_factory, backend):
    harness = Harness(redis_server, tmp_path_factory.mktemp("gw"), {
        "orders": f"127.0.0.1:{backend.port}", "inventory": f"127.0.0.1:{backend.port}"},
        env={"ERP_GATEWAY_MAX_BODY_BYTES": "4096"})
    yield harness
    harness.close()


@pytest.fixture(autouse=True)
def fresh(backend):
    backend.seen.clear()
    backend.replies.clear()


def rest(gateway, verb, path, **kwargs):
    headers = {"Authorization": f"Bearer {gateway.issuer.token(SCOPES)}", **kwargs.pop("headers", {})}
    return requests.request(verb, gateway.base_url + path, headers=headers, timeout=10, **kwargs)


def received(backend, cls):
    return cls.FromString(backend.seen[-1].request)


def test_body_star_maps_the_whole_request_and_int64_enum_round_trip(gateway, backend):
    big = 2**53 + 1  # not representable as a JSON number: int64 travels as a string
    backend.replies[PLACE] = orders_pb2.PlaceOrderResponse(order=orders_pb2.Order(
        order_id="o-1", status=orders_pb2.ORDER_STATUS_CONFIRMED, version=big,
        lines=[orders_pb2.OrderLine(sku="A", quantity=big)])).SerializeToString()
    response = rest(gateway, "POST", "/v1/orders", json={
        "requestId": "r-1", "customer_id": "c-1", "currencyCode": "EUR",
        "lines": [{"sku": "A", "quantity": str(big), "unitPrice": {"currencyCode": "EUR", "amount": "1.50"}}]})
    assert response.status_code == 200, response.text
    request = received(backend, orders_pb2.PlaceOrderRequest)
    assert request.customer_id == "c-1" and request.lines[0].quantity == big
    assert request.lines[0].unit_price == money_pb2.Money(currency_code="EUR", amount="1.50")
    order = response.json()["order"]
    assert order["status"] == "ORDER_STATUS_CONFIRMED" and order["version"] == str(big)
    assert order["lines"][0]["quantity"] == str(big)


def test_body_field_maps_into_that_field(gateway, backend):
    response = rest(gateway, "POST", "/v1/products", json={"sku": "LAMP", "name": "Lamp", "unitOfMeasure": "EA"})
    assert response.status_code == 200, response.text
    assert received(backend, inventory_pb2.CreateProductRequest).product == inventory_pb2.Product(
        sku="LAMP", name="Lamp", unit_of_measure="EA")


def test_no_body_takes_path_variables_and_query_parameters(gateway, backend):
    assert rest(gateway, "GET", "/v1/warehouses/MAIN/stock/CHAIR-OAK").status_code == 200
    assert received(backend, inventory_pb2.GetStockRequest) == inventory_pb2.GetStockRequest(
        sku="CHAIR-OAK", warehouse_code="MAIN")
    response = rest(gateway, "GET", "/v1/orders?customerId=c-1&status=ORDER_STATUS_PENDING&page.pageSize=5"
                                    "&page.page_token=t&createdAfter=2026-01-02T03:04:05Z")
    assert response.status_code == 200, response.text
    request = received(backend, orders_pb2.ListOrdersRequest)
    assert (request.customer_id, request.status, request.page.page_size, request.page.page_token) == \
        ("c-1", orders_pb2.ORDER_STATUS_PENDING, 5, "t")
    assert request.created_after.seconds == 1767323045
    assert rest(gateway, "GET", "/v1/stock?belowReorderPoint=true").status_code == 200
    assert received(backend, inventory_pb2.ListStockRequest).below_reorder_point is True


def test_a_custom_verb_with_a_path_variable_and_body(gateway, backend):
    assert rest(gateway, "POST", "/v1/orders/o-9:cancel", json={"reason": "changed my mind"}).status_code == 200
    assert received(backend, orders_pb2.CancelOrderRequest) == orders_pb2.CancelOrderRequest(
        order_id="o-9", reason="changed my mind")


def test_percent_encoded_path_segments_are_decoded(gateway, backend):
    assert rest(gateway, "GET", "/v1/products/A%2FB%20C%3Ad").status_code == 200
    assert received(backend, inventory_pb2.GetProductRequest).sku == "A/B C:d"
    assert rest(gateway, "GET", "/v1/orders/%C3%A9t%C3%A9").status_code == 200
    assert received(backend, orders_pb2.GetOrderRequest).order_id == "été"


def test_unknown_fields_are_400(gateway, backend):
    for response in (rest(gateway, "POST", "/v1/orders", json={"customerId": "c", "bogus": 1}),
                     rest(gateway, "POST", "/v1/orders", json={"lines": [{"sku": "A", "colour": "red"}]}),
                     rest(gateway, "GET", "/v1/orders?bogus=1"),
                     rest(gateway, "GET", "/v1/orders?page.bogus=1"),
                     rest(gateway, "POST", "/v1/orders", data=b"{not json", headers={"Content-Type": "application/json"}),
                     rest(gateway, "POST", "/v1/orders", json=[1, 2]),
                     rest(gateway, "GET", "/v1/stock?belowReorderPoint=yes"),
                     rest(gateway, "GET", "/v1/orders/o-1?orderId=o-2"),  # bound by the path, JSON name or not
                     rest(gateway, "GET", "/v1/orders/o-1?order_id=o-2"),
                     rest(gateway, "POST", "/v1/orders?customerId=c", json={})):
        assert response.status_code == 400, response.text
        assert response.json()["code"] == 3
    assert backend.seen == []


@pytest.mark.parametrize(("query", "message"), [
    ("page.pageSize=abc", "page.pageSize must be a whole number"),
    ("page.page_size=12.5", "page.page_size must be a whole number"),
    ("page.pageSize=1e2", "page.pageSize must be a whole number"),
    ("page.pageSize=99999999999", "page.pageSize must be a whole number from -2147483648 to 2147483647"),
    ("page.pageSize=" + "9" * 5000, "page.pageSize must be a whole number from -2147483648 to 2147483647"),
    ("status=SHIPPED_YESTERDAY", "status must be one of ORDER_STATUS_UNSPECIFIED, "),
    ("createdAfter=yesterday", "createdAfter must be an RFC 3339 time"),
    ("status=1", "status must be one of ORDER_STATUS_UNSPECIFIED, "),  # enums are their names at this edge
])
def test_a_wrong_query_value_is_refused_in_the_apis_words(gateway, backend, query, message):
    response = rest(gateway, "GET", f"/v1/orders?{query}")
    assert response.status_code == 400 and response.json()["code"] == 3
    assert response.json()["message"].startswith(message), response.json()["message"]
    assert "int()" not in response.text and "base 10" not in response.text and "Failed to parse" not in response.text
    assert backend.seen == []


def test_a_wrong_number_in_the_body_is_refused_in_the_apis_words(gateway, backend):
    response = rest(gateway, "POST", "/v1/orders", json={"customerId": "c", "lines": [{"sku": "A", "quantity": "x"}]})
    assert response.status_code == 400
    assert response.json()["message"] == "lines.quantity must be a whole number", response.text
    assert backend.seen == []


def test_an_enum_in_the_body_is_its_name_never_its_number(gateway, backend):
    auth = {"Authorization": f"Bearer {gateway.issuer.token(['crm.credit'])}"}
    numbered = rest(gateway, "POST", "/v1/customers/CUST-1:updateStatus", headers=auth,
                    json={"status": 2, "reason": "numbers"})
    assert numbered.status_code == 400, numbered.text
    assert numbered.json()["message"].startswith("status must be one of CUSTOMER_STATUS_UNSPECIFIED, ")
    assert backend.seen == []


def test_unmatched_requests_are_404_or_405_never_passed_through(gateway, backend):
    assert rest(gateway, "GET", "/v1/nothing").status_code == 404
    assert rest(gateway, "GET", "/v1/orders/o-1/extra").status_code == 404
    assert rest(gateway, "GET", "/erp.orders.v1.OrderService/GetOrder").status_code == 404
    wrong = rest(gateway, "DELETE", "/v1/orders/o-1")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert rest(gateway, "GET", "/v1/orders/o-1:explode").status_code in (404, 200)  # the id may hold a colon
    assert backend.seen == [] or all(s.method == GET_ORDER for s in backend.seen)


def test_oversize_bodies_are_413(gateway, backend):
    response = rest(gateway, "POST", "/v1/orders", json={"customerId": "c" * 5000})
    assert response.status_code == 413 and response.json()["code"] == 8
    assert backend.seen == []


@pytest.mark.parametrize("code", [c for c in grpc.StatusCode if c != grpc.StatusCode.OK], ids=lambda c: c.name)
def test_every_grpc_code_has_its_http_status(gateway, backend, code):
    backend.replies[GET_ORDER] = lambda _r, ctx: ctx.abort(code, f"secret detail of {code.name}")
    response = rest(gateway, "GET", "/v1/orders/o-1")
    assert response.status_code == ENVOY_STATUS[code.name] == HTTP_STATUS[code.value[0]]
    body = response.json()
    assert body["code"] == code.value[0] and response.headers["Content-Type"].startswith("application/json")
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS):
        assert "secret" not in body["message"], "INTERNAL text never reaches the caller"
    elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        # a bare status (no google.rpc.Status from the mesh) may be the transport's: a generic message
        assert body["message"] in ("orders is unavailable, retry later", "deadline exceeded calling orders")
    else:
        assert body["message"] == f"secret detail of {code.name}"


def test_error_details_come_as_google_rpc_status_json(gateway, backend):
    bad = error_details_pb2.BadRequest(field_violations=[
        error_details_pb2.BadRequest.FieldViolation(field="order_id", description="is required")])
    packed = any_pb2.Any()
    packed.Pack(bad)
    backend.replies[GET_ORDER] = lambda _r, ctx: ctx.abort_with_status(rpc_status.to_status(
        status_pb2.Status(code=3, message="invalid", details=[packed])))
    body = rest(gateway, "GET", "/v1/orders/o-1").json()
    assert body == {"code": 3, "message": "invalid", "details": [{
        "@type": "type.googleapis.com/google.rpc.BadRequest",
        "fieldViolations": [{"field": "order_id", "description": "is required"}]}]}


def test_the_openapi_document_is_served(gateway):
    response = requests.get(gateway.base_url + "/openapi.json", timeout=10)
    assert response.status_code == 200 and response.json()["openapi"] == "3.1.0"


def test_every_response_names_its_request_id_and_the_services_get_the_same(gateway, backend, caplog):
    caplog.set_level("INFO", logger="gateway.access")
    given = rest(gateway, "GET", "/v1/warehouses/MAIN/stock/CHAIR-OAK", headers={"X-Request-Id": "support-case-42"})
    assert given.status_code == 200 and given.headers["X-Request-Id"] == "support-case-42"
    assert backend.seen[-1].metadata["x-request-id"] == "support-case-42"
    fresh = rest(gateway, "GET", "/v1/warehouses/MAIN/stock/CHAIR-OAK")
    assert len(fresh.headers["X-Request-Id"]) == 36 and backend.seen[-1].metadata["x-request-id"] == \
        fresh.headers["X-Request-Id"], "a call without one gets a fresh id, the same one upstream"
    malformed = rest(gateway, "GET", "/v1/warehouses/MAIN/stock/CHAIR-OAK", headers={"X-Request-Id": "x" * 65})
    assert malformed.headers["X-Request-Id"] != "x" * 65, "an id that is not one is replaced"
    refused = rest(gateway, "GET", "/v1/no/such/route", headers={"X-Request-Id": "support-case-43"})
    assert refused.status_code == 404 and refused.headers["X-Request-Id"] == "support-case-43"
    # One access log line per call: route, status, the gRPC method, duration, and the request id.
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert [r.fields["status"] for r in lines] == [200, 200, 200, 404]
    assert lines[0].fields["grpc_method"] == "/erp.inventory.v1.InventoryService/GetStock"
    assert lines[3].fields["path"] == "/v1/no/such/route" and lines[3].fields["grpc_method"] == "unrouted"
    assert all(r.fields["duration_ms"] >= 0 and r.fields["client"] for r in lines)
