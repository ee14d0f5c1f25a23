"""The fingerprint of a mutating request (mesh/idempotency.py): what makes two requests one."""
from __future__ import annotations

import grpc

from erp.common.v1.money_pb2 import Money
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ordpb
from mesh import idempotency
from mesh.errors import to_status

PLACE = "/erp.orders.v1.OrderService/PlaceOrder"


def order(quantity: int = 1, amount: str = "10.00") -> ordpb.PlaceOrderRequest:
    return ordpb.PlaceOrderRequest(request_id="R-1", customer_id="C-1", currency_code="EUR", lines=[
        ordpb.OrderLine(sku="S", warehouse_code="MAIN", quantity=quantity,
                        unit_price=Money(currency_code="EUR", amount=amount))])


def test_the_same_request_has_one_fingerprint_and_any_other_field_another():
    fp = idempotency.fingerprint(PLACE, order(), "")
    assert idempotency.fingerprint(PLACE, order(), "") == fp
    assert idempotency.fingerprint(PLACE, order(quantity=2), "") != fp
    assert idempotency.fingerprint(PLACE, order(amount="10.01"), "") != fp
    assert idempotency.fingerprint(PLACE, order(), "user:ada") != fp  # another caller
    assert idempotency.fingerprint("/erp.orders.v1.OrderService/Other", order(), "") != fp  # another method


def test_amounts_the_handlers_read_as_one_are_one_and_unknown_fields_count_for_nothing():
    fp = idempotency.fingerprint(PLACE, order(amount="10.00"), "")
    assert idempotency.fingerprint(PLACE, order(amount="10"), "") == fp
    assert idempotency.fingerprint(PLACE, order(amount="10.0"), "") == fp
    with_unknown = ordpb.PlaceOrderRequest.FromString(order().SerializeToString() + b"\xf8\x06\x01")  # field 111
    assert idempotency.fingerprint(PLACE, with_unknown, "") == fp
    pay = "/erp.finance.v1.FinanceService/RecordPayment"
    payment = fin.RecordPaymentRequest(request_id="P", invoice_id="I", amount=Money(currency_code="EUR", amount="50"))
    same = fin.RecordPaymentRequest(request_id="P", invoice_id="I", amount=Money(currency_code="EUR", amount="50.00"))
    assert idempotency.fingerprint(pay, payment, "") == idempotency.fingerprint(pay, same, "")
    assert payment.amount.amount == "50"  # the request itself is left as it came


def test_mutating_methods_come_from_the_descriptors():
    assert idempotency.mutating_methods([inv.DESCRIPTOR.services_by_name["InventoryService"].full_name]) == [
        "/erp.inventory.v1.InventoryService/AdjustStock"]
    assert idempotency.is_mutating(idempotency.method_descriptor(PLACE))
    assert not idempotency.is_mutating(idempotency.method_descriptor("/erp.orders.v1.OrderService/GetOrder"))
    assert idempotency.method_descriptor("/grpc.health.v1.Health/Nope") is None


def test_a_reused_key_is_already_exists_naming_the_key():
    err = idempotency.KeyReused("R-1")
    assert err.code == grpc.StatusCode.ALREADY_EXISTS
    assert err.message.startswith("request_id R-1 was already used for a different request")
    assert to_status(err.code, err.message, err.details()).details[0].type_url.endswith("google.rpc.ErrorInfo")
