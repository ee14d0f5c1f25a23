"""Order to cash across all five services, on every engine set, two replicas of each:
confirmation, invoicing, notification, shipment, payments, compensation and cancellation."""
from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from erp.finance.v1 import finance_pb2 as fin
from erp.orders.v1 import orders_pb2 as pb
from erp_client.client import Line
from tests.integration.conftest import running_mesh
from tests.integration.test_order_flow import assert_ledger_agrees, stock_up


@pytest.fixture
def mesh(engines, tmp_path):
    """Two replicas of every service, as the chart deploys them: one active consumer per RabbitMQ
    queue (competing ones on the PostgreSQL bus), one elected relay, both serving calls."""
    with running_mesh(engines, tmp_path, replicas=2) as (client, started):
        yield client, started


def invoice_of(client, order_id: str) -> fin.Invoice:
    [invoice] = client.wait_for(lambda: client.invoices_for_order(order_id), bool, timeout=30)
    return invoice


def order_when(client, order_id: str, condition) -> pb.Order:
    return client.wait_for(lambda: client.get_order(order_id), condition, timeout=30)


def assert_books_balance(client) -> None:
    balance = client.trial_balance("EUR")
    assert balance.total_debit.amount == balance.total_credit.amount
    assert sum(Decimal(row.balance.amount) for row in balance.lines) == 0


def test_an_order_goes_from_placement_to_cash(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10, ("DESK", "MAIN"): 3})
    order = client.place_order("CUST-1", [Line("CHAIR", 3, "33.33"), Line("DESK", 1, "349.00")])
    assert client.wait_for_order(order.order_id).status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED)
    invoice = invoice_of(client, order.order_id)
    assert (invoice.subtotal.amount, invoice.tax.amount, invoice.total.amount) == ("448.99", "89.80", "538.79")
    assert sum(Decimal(line.amount.amount) for line in invoice.lines) == Decimal(invoice.subtotal.amount)
    invoiced = order_when(client, order.order_id, lambda o: o.status == pb.ORDER_STATUS_INVOICED)
    assert invoiced.payment_status == pb.PAYMENT_STATUS_UNPAID and invoiced.invoice_id == invoice.invoice_id
    # crm learns of the invoice from the same InvoiceIssued event as orders, maybe a little later.
    exposure = client.wait_for(lambda: client.get_customer("CUST-1").exposure,
                               lambda e: Decimal(e.unpaid_invoices.amount) == Decimal("538.79"))
    assert Decimal(exposure.open_orders.amount) == 0
    deliveries = client.wait_for(lambda: client.deliveries(customer_id="CUST-1"), lambda d: len(d) >= 2)
    assert {d.event_type for d in deliveries} >= {"erp.events.v1.OrderConfirmed", "erp.events.v1.InvoiceIssued"}

    client.mark_shipped(order.order_id)
    client.wait_for(lambda: client.get_stock("CHAIR", "MAIN"), lambda s: (s.on_hand, s.reserved) == (7, 0))
    first = client.record_payment(invoice.invoice_id, "500.00")
    assert first.invoice.status == fin.INVOICE_STATUS_PARTLY_PAID and first.invoice.amount_due.amount == "38.79"
    with pytest.raises(Exception) as too_much:
        client.record_payment(invoice.invoice_id, "38.80")
    assert "FAILED_PRECONDITION" in str(too_much.value)
    client.record_payment(invoice.invoice_id, "38.79")
    done = order_when(client, order.order_id, lambda o: o.status == pb.ORDER_STATUS_COMPLETED)
    assert done.payment_status == pb.PAYMENT_STATUS_PAID and done.amount_paid.amount == "538.79"
    assert_books_balance(client)
    assert_ledger_agrees(started)
    client.wait_for(lambda: client.get_customer("CUST-1").exposure, lambda e: Decimal(e.total.amount) == 0)


def test_a_credit_rejection_releases_the_reservation(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10}, customers=("SMALL",), limit="100.00")
    order = client.place_order("SMALL", [Line("CHAIR", 2, "89.90")])  # 179.80 > 100.00
    rejected = client.wait_for_order(order.order_id)
    assert rejected.status == pb.ORDER_STATUS_REJECTED and "credit" in rejected.rejection_reason
    client.wait_for(lambda: client.get_stock("CHAIR", "MAIN"), lambda s: s.reserved == 0)
    assert client.invoices_for_order(order.order_id) == []
    assert Decimal(client.get_customer("SMALL").exposure.total.amount) == 0
    fits = client.wait_for_order(client.place_order("SMALL", [Line("CHAIR", 1, "89.90")]).order_id)
    assert fits.status in (pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_INVOICED)
    assert_ledger_agrees(started)


def test_cancelling_an_invoiced_order_releases_stock_and_issues_a_credit_note(mesh):
    client, started = mesh
    stock_up(client, {("CHAIR", "MAIN"): 10})
    order = client.place_order("CUST-1", [Line("CHAIR", 5, "10.00")])
    client.wait_for_order(order.order_id)
    invoice = invoice_of(client, order.order_id)
    order_when(client, order.order_id, lambda o: o.status == pb.ORDER_STATUS_INVOICED)
    cancelled = client.cancel_order(order.order_id, "customer changed their mind")
    assert cancelled.status == pb.ORDER_STATUS_CANCELLED
    client.wait_for(lambda: client.get_stock("CHAIR", "MAIN"), lambda s: s.reserved == 0)
    credited = client.wait_for(lambda: client.invoices_for_order(order.order_id)[0],
                               lambda i: i.status == fin.INVOICE_STATUS_CREDITED)
    assert credited.invoice_id == invoice.invoice_id and Decimal(credited.amount_due.amount) == 0
    with pytest.raises(Exception) as shipped:
        client.mark_shipped(order.order_id)
    assert "FAILED_PRECONDITION" in str(shipped.value)
    assert_books_balance(client)
    client.wait_for(lambda: client.get_customer("CUST-1").exposure, lambda e: Decimal(e.total.amount) == 0)
    with started["inventory"].runtime.engine.connect() as conn:
        kinds = conn.execute(sa.text("SELECT kind FROM stock_ledger WHERE reference = :o ORDER BY id"),
                             {"o": order.order_id}).scalars().all()
    assert kinds == ["reservation", "release"]
