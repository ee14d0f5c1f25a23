"""An optimistic-lock conflict is ABORTED (retry), never INTERNAL: every repository whose
version check can fail raises mesh.errors.Aborted, and the one mapping in mesh.interceptors
turns it into StatusCode.ABORTED with a message saying what changed. Real PostgreSQL."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import empty_pb2

from mesh.errors import Aborted
from services.crm.adapters import CrmUnitOfWork
from services.crm.domain import CreateCustomer, CustomerStatus, new_customer, with_status
from services.finance.adapters import FinanceUnitOfWork
from services.finance.payables.domain import SupplierBill
from services.finance.receivables.domain import Invoice
from services.notification.adapters import NotificationUnitOfWork
from services.notification.domain import Attempt, Channel, Delivery
from services.orders.adapters import OrdersUnitOfWork
from services.orders.domain import Order
from services.procurement.adapters import ProcurementUnitOfWork
from services.procurement.domain import Origin, POStatus, PurchaseOrder
from tests import support

NOW = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)


def customer(customer_id: str = "CUST-1"):
    return new_customer(CreateCustomer(customer_id=customer_id, name="Acme", status="", credit_limit_amount="100.00",
                                       credit_limit_currency="EUR", payment_terms_days=30, email="", contacts=(),
                                       webhook_url=""))


def test_a_lost_customer_update_is_aborted(engine_for):
    engine = engine_for("crm")
    with CrmUnitOfWork(engine, "crm") as uow:
        uow.customers.add(customer())
        uow.commit()
    with CrmUnitOfWork(engine, "crm") as first, CrmUnitOfWork(engine, "crm") as second:
        mine, theirs = first.customers.get("CUST-1"), second.customers.get("CUST-1")
        second.customers.save(with_status(theirs, CustomerStatus.ON_HOLD, "late payments"))
        second.commit()
        with pytest.raises(Aborted, match="CUST-1 was changed by another request.*retry"):
            first.customers.save(with_status(mine, CustomerStatus.BLOCKED, "fraud"))


def test_a_lost_order_update_is_aborted(engine_for):
    order = Order(order_id="00000000-0000-0000-0000-000000000001", request_id="r-1", customer_id="CUST-1",
                  currency_code="EUR", lines=[], version=2, loaded_version=1)
    with OrdersUnitOfWork(engine_for("orders"), "orders") as uow, pytest.raises(Aborted, match="retry"):
        uow.orders.save(order)
        uow.commit()  # written at the commit: no row at version 1, another writer moved it on


def test_lost_invoice_and_supplier_bill_updates_are_aborted(engine_for):
    engine = engine_for("finance")
    invoice = Invoice(invoice_id="00000000-0000-0000-0000-000000000002", year=2026, seq=1,
                      order_id="00000000-0000-0000-0000-000000000001", customer_id="CUST-1", currency_code="EUR",
                      lines=[], subtotal=Decimal(0), tax=Decimal(0), total=Decimal(0), tax_rate=Decimal(0),
                      order_amount=Decimal(0), issued_at=NOW, due_at=NOW, version=2)
    bill = SupplierBill(bill_id="00000000-0000-0000-0000-000000000003", request_id="r-2",
                        supplier_bill_number="B-1", purchase_order_id="00000000-0000-0000-0000-000000000004",
                        supplier_id="SUP-1", currency_code="EUR", lines=[], recorded_at=NOW, due_at=NOW, version=2)
    with FinanceUnitOfWork(engine, "finance") as uow, pytest.raises(Aborted, match="invoice .* retry"):
        uow.invoices.save(invoice)
    with FinanceUnitOfWork(engine, "finance") as uow, pytest.raises(Aborted, match="supplier bill .* retry"):
        uow.supplier_bills.save(bill)


def test_a_lost_purchase_order_update_is_aborted(engine_for):
    order = PurchaseOrder(purchase_order_id="00000000-0000-0000-0000-000000000005", request_id="r-3",
                          number="PO-2026-000001", supplier_id="SUP-1", currency_code="EUR", warehouse_code="MAIN",
                          lines=[], status=POStatus.SUBMITTED, origin=Origin.MANUAL, created_at=NOW, updated_at=NOW,
                          version=2, loaded_version=1)
    with ProcurementUnitOfWork(engine_for("procurement"), "procurement") as uow, \
            pytest.raises(Aborted, match="purchase order .* retry"):
        uow.orders.save(order)


def test_a_lost_delivery_update_is_aborted(engine_for):
    delivery = Delivery(delivery_id="00000000-0000-0000-0000-000000000006", event_id="e-1",
                        event_type="erp.orders.v1.OrderConfirmed", customer_id="CUST-1", channel=Channel.EMAIL,
                        recipient="a@example.com", subject="s", body="b", data={}, created_at=NOW,
                        next_attempt_at=NOW, attempts=1)
    with NotificationUnitOfWork(engine_for("notification"), "notification") as uow, \
            pytest.raises(Aborted, match="deliveries .* retry"):
        uow.deliveries.record([(delivery, Attempt(delivery.delivery_id, 1, NOW, ""))])


def test_a_conflict_reaches_the_caller_as_aborted_not_internal(engine_for):
    """Through the real per-call wrap: a handler that loses the version race answers ABORTED."""
    engine = engine_for("crm")
    with CrmUnitOfWork(engine, "crm") as uow:
        uow.customers.add(customer())
        uow.commit()

    def lose_the_race(request, ctx):
        with CrmUnitOfWork(engine, "crm") as first, CrmUnitOfWork(engine, "crm") as second:
            mine, theirs = first.customers.get("CUST-1"), second.customers.get("CUST-1")
            second.customers.save(with_status(theirs, CustomerStatus.ON_HOLD, "late payments"))
            second.commit()
            first.customers.save(with_status(mine, CustomerStatus.BLOCKED, "fraud"))
            first.commit()
        return empty_pb2.Empty()

    with support.wrapped_method(lose_the_race, empty_pb2.Empty, empty_pb2.Empty) as call, \
            pytest.raises(grpc.RpcError) as info:
        call(empty_pb2.Empty(), timeout=10)
    assert info.value.code() == grpc.StatusCode.ABORTED, info.value.details()
    assert "CUST-1 was changed by another request" in info.value.details()
    assert "retry" in info.value.details()


def test_a_placement_repeated_past_its_idempotency_key_answers_the_first_order(engine_for):
    """The handler itself (no mesh idempotency key, as after the key's retention): the insert
    conflicts on the request id and the first placement's order answers; another customer's
    request with that id is refused."""
    from mesh.errors import AlreadyExists
    from services.orders import handlers
    from services.orders.domain import LineInput, PlaceOrder

    engine = engine_for("orders")
    line = LineInput("SKU-1", "MAIN", 2, "5.00", "EUR")
    first = handlers.place_order(OrdersUnitOfWork(engine, "orders"),
                                 PlaceOrder("r-place", "CUST-1", "EUR", (line,)), "MAIN")
    again = handlers.place_order(OrdersUnitOfWork(engine, "orders"),
                                 PlaceOrder("r-place", "CUST-1", "EUR", (line,)), "MAIN")
    assert again.order_id == first.order_id and [x.quantity for x in again.lines] == [2]
    with pytest.raises(AlreadyExists, match="another customer"):
        handlers.place_order(OrdersUnitOfWork(engine, "orders"), PlaceOrder("r-place", "CUST-2", "EUR", (line,)),
                             "MAIN")
    with OrdersUnitOfWork(engine, "orders") as uow:
        assert uow.connection.execute(sa.text("SELECT count(*) FROM orders")).scalar() == 1
        assert uow.connection.execute(sa.text("SELECT count(*) FROM order_timeline")).scalar() == 1
