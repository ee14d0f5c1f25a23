"""mesh.validation: a NUL character in any string field of a request, at any depth, is
INVALID_ARGUMENT naming the field's path; the walk is planned once per message type."""
from __future__ import annotations

import grpc
import pytest
from google.protobuf import duration_pb2, empty_pb2, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from erp.inventory.v1 import inventory_pb2 as inv
from erp.options.v1 import access_pb2
from erp.orders.v1 import orders_pb2 as ordpb
from mesh import validation
from mesh.errors import InvalidArgument
from tests import support


def paths(message) -> list[str]:
    return [v.field for v in validation.nul_violations(message)]


def test_a_clean_request_passes():
    assert paths(inv.GetStockRequest(sku="CHAIR-OAK", warehouse_code="MAIN")) == []
    validation.refuse_nul(inv.GetStockRequest(sku="CHAIR-OAK", warehouse_code="MAIN"))


def test_a_nul_in_a_top_level_string_names_the_field():
    assert paths(inv.GetStockRequest(sku="CHAIR\x00OAK", warehouse_code="MAIN")) == ["sku"]
    with pytest.raises(InvalidArgument) as info:
        validation.refuse_nul(inv.GetStockRequest(sku="\x00", warehouse_code="\x00"))
    assert [v.field for v in info.value.violations] == ["sku", "warehouse_code"]
    assert "NUL" in info.value.message


def test_nested_and_repeated_messages_are_walked():
    request = ordpb.PlaceOrderRequest(request_id="r-1", customer_id="CUST-1", currency_code="EUR", lines=[
        ordpb.OrderLine(sku="A", quantity=1),
        ordpb.OrderLine(sku="B\x00", quantity=1),
    ])
    request.lines[0].unit_price.amount = "1.0\x00"
    assert paths(request) == ["lines[0].unit_price.amount", "lines[1].sku"]


def test_repeated_strings_and_maps_are_walked():
    assert paths(access_pb2.Access(scopes=["orders.read", "orders\x00.write"])) == ["scopes[1]"]
    struct = struct_pb2.Struct()
    struct.update({"ok": "fine", "bad": "x\x00", "nested": {"deep": ["y", "z\x00"]}, "\x00key": 1})
    assert sorted(paths(struct)) == sorted(['fields["bad"].string_value',
                                            'fields["nested"].struct_value.fields["deep"].list_value.values[1].string_value',
                                            "fields (a key)"])


def test_types_without_strings_are_skipped():
    assert paths(empty_pb2.Empty()) == []
    assert paths(duration_pb2.Duration(seconds=3)) == []
    assert validation._plans[duration_pb2.Duration.DESCRIPTOR] == ()
    assert validation._plans[inv.GetStockRequest.DESCRIPTOR] != ()


def test_bytes_and_non_messages_are_left_alone():
    validation.refuse_nul(b"\x00\x00")  # raw bytes (a generic handler) are not this check's to judge


def test_the_per_call_wrap_refuses_a_nul_with_invalid_argument_before_the_handler():
    reached = []

    def get_stock(request, ctx):
        reached.append(request)
        return inv.GetStockResponse()

    with support.wrapped_method(get_stock, inv.GetStockRequest, inv.GetStockResponse) as call:
        call(inv.GetStockRequest(sku="CHAIR", warehouse_code="MAIN"), timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            call(inv.GetStockRequest(sku="CHA\x00IR", warehouse_code="MAIN"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(info.value)
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["sku"]
    assert len(reached) == 1  # the handler never saw the bad one


def test_a_zero_byte_that_is_no_nul_reaches_the_handler():
    """Only a request whose bytes hold a zero byte has its strings walked; a zero byte can also be
    a length (an empty message set) or a number, and such a request is served."""
    reached = []

    def list_stock(request, ctx):
        reached.append(request)
        return inv.ListStockResponse()

    request = inv.ListStockRequest(warehouse_code="MAIN")
    request.page.SetInParent()  # an empty page: its length, 0, is on the wire
    assert b"\x00" in request.SerializeToString()
    with support.wrapped_method(list_stock, inv.ListStockRequest, inv.ListStockResponse) as call:
        call(request, timeout=10)
        with pytest.raises(grpc.RpcError) as info:
            call(inv.ListStockRequest(warehouse_code="MA\x00IN"), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reached == [request]
