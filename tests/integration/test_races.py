"""Every handler runs beside a copy of itself: the races between writers of one aggregate,
each forced (tests/interleaving.py) on real PostgreSQL with the real consumers, handlers and
migrations. Each test stops the first handler inside its transaction, right after the read its
decision depends on, runs the competing handler, and checks the invariant at the end. Each
fails without the aggregate locks the consumer takes (mesh.locks)."""
from __future__ import annotations

import dataclasses
import uuid
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from erp.finance.v1 import finance_pb2_grpc
from erp.procurement.v1 import procurement_pb2 as proc_pb
from erp_client import ErpClient
from mesh import service
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery
from services.finance import adapters as finance_adapters
from services.finance.service import spec as finance_spec
from services.inventory import adapters as inventory_adapters
from services.procurement import adapters as procurement_adapters
from tests import support
from tests.integration import test_supplier_bills as bills
from tests.integration.conftest import running_mesh
from tests.interleaving import PausePoint, interleave

# The interleavings are about PostgreSQL, not the transport: both PostgreSQL servers, one bus.
ON_EACH_POSTGRES = pytest.mark.parametrize("engines", [f"pgbus-{kind}" for kind in support.POSTGRES_KINDS],
                                           indirect=True)


@dataclasses.dataclass
class Handling:
    """One service's consumer, fed events by hand as its transport would."""

    consumer: Consumer
    engine: sa.Engine
    target: str  # the service's gRPC address

    def deliver(self, payload, aggregate_id: str = "agg"):
        env = envelope.build(source="test", aggregate_type="test", aggregate_id=aggregate_id, aggregate_version=1,
                             payload=payload)
        return self.consumer.handle(Delivery(body=env.SerializeToString(), attempts=0, tag=None))

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()


def handling(running: service.RunningService) -> Handling:
    runtime = running.runtime
    return Handling(Consumer(running.spec.build_handlers(runtime), runtime.uow, 3, 20), runtime.engine,
                    f"127.0.0.1:{running.port}")


def eur(amount: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount=amount)


def order_line(sku: str, quantity: int, price: str = "10.00", line_no: int = 1) -> orders_ev.OrderLineItem:
    return orders_ev.OrderLineItem(line_no=line_no, sku=sku, warehouse_code="MAIN", quantity=quantity,
                                   unit_price=eur(price))


# ---------------------------------------------------------------- inventory: a reservation and its release


@pytest.fixture
def inventory(engines, tmp_path):
    with running_mesh(engines, tmp_path, services=("inventory",)) as (client, started):
        client.create_warehouse("MAIN", "Main")
        client.create_product("CHAIR", "Chair")
        client.adjust_stock("CHAIR", "MAIN", 10, reason="opening stock")
        yield handling(started["inventory"])


def placed(order_id: str, quantity: int = 4) -> orders_ev.OrderPlaced:
    return orders_ev.OrderPlaced(order_id=order_id, customer_id="CUST-1", total=eur("40.00"),
                                 lines=[order_line("CHAIR", quantity)])


def assert_no_stock_held_by_closed_orders(inv: Handling) -> None:
    [(on_hand, reserved)] = inv.rows("SELECT on_hand, reserved FROM stock_balances WHERE sku = 'CHAIR'")
    held = inv.rows("SELECT r.order_id FROM reservations r JOIN closed_orders c USING (order_id) "
                    "WHERE r.status = 'reserved'")
    assert held == [], f"stock reserved by closed orders: {held}"
    assert (on_hand, reserved) == (10, 0)


@ON_EACH_POSTGRES
@pytest.mark.parametrize("closing", [orders_ev.OrderCancelled, orders_ev.OrderRejected])
def test_a_release_racing_its_reservation_leaves_nothing_reserved(inventory, monkeypatch, closing):
    """reserve() has read "not closed, not reserved" when the release runs on another replica."""
    order_id = str(uuid.uuid4())
    pause = PausePoint(monkeypatch, inventory_adapters.StockRepository, "before_reserving")
    run = interleave(inventory.engine, pause,
                     lambda: inventory.deliver(placed(order_id)),
                     lambda: inventory.deliver(closing(order_id=order_id, customer_id="CUST-1")))
    assert (run.first, run.second) == (Ack(), Ack())
    assert run.second_waited, "the release committed inside the reservation's transaction"
    assert_no_stock_held_by_closed_orders(inventory)
    [(status,)] = inventory.rows("SELECT status FROM reservations WHERE order_id = :o", o=order_id)
    assert status == "released"


@ON_EACH_POSTGRES
def test_a_reservation_racing_a_release_that_came_first_reserves_nothing(inventory, monkeypatch):
    """The release (no reservation yet) has written its tombstone when a late OrderPlaced runs."""
    order_id = str(uuid.uuid4())
    pause = PausePoint(monkeypatch, inventory_adapters.StockRepository, "reservations_for")
    run = interleave(inventory.engine, pause,
                     lambda: inventory.deliver(orders_ev.OrderCancelled(order_id=order_id, customer_id="CUST-1")),
                     lambda: inventory.deliver(placed(order_id)))
    assert (run.first, run.second) == (Ack(), Ack())
    assert run.second_waited
    assert_no_stock_held_by_closed_orders(inventory)
    assert inventory.rows("SELECT 1 FROM reservations WHERE order_id = :o", o=order_id) == []


@ON_EACH_POSTGRES
def test_a_release_waiting_on_a_busy_sku_still_sees_the_reservation(inventory, monkeypatch):
    """The window of the credit rejection: reserve() is about to read the order's state and lock
    its stock rows (a statement that waits while another order holds them) when the release runs."""
    order_id = str(uuid.uuid4())
    pause = PausePoint(monkeypatch, inventory_adapters.StockRepository, "before_reserving")
    run = interleave(inventory.engine, pause,
                     lambda: inventory.deliver(placed(order_id, 3)),
                     lambda: inventory.deliver(orders_ev.OrderRejected(order_id=order_id, customer_id="CUST-1",
                                                                       reason="credit rejected")))
    assert (run.first, run.second) == (Ack(), Ack())
    assert run.second_waited
    assert_no_stock_held_by_closed_orders(inventory)


# ---------------------------------------------------------------- finance: an invoice and its cancellation


@pytest.fixture
def finance(engines, tmp_path):
    running = service.start(finance_spec(), support.settings_for("finance", engines, tmp_path))
    try:
        yield handling(running)
    finally:
        running.stop(grace=1)


def confirmed(order_id: str) -> orders_ev.OrderConfirmed:
    return orders_ev.OrderConfirmed(order_id=order_id, customer_id="CUST-1", lines=[order_line("CHAIR", 2)],
                                    total=eur("20.00"))


def cancelled(order_id: str) -> orders_ev.OrderCancelled:
    return orders_ev.OrderCancelled(order_id=order_id, customer_id="CUST-1", reason="changed their mind",
                                    was_invoiced=False, total=eur("20.00"))


def assert_no_uncredited_invoice_for_a_cancelled_order(fin: Handling, order_id: str) -> None:
    invoices = fin.rows("SELECT invoice_id FROM invoices WHERE order_id = :o", o=order_id)
    notes = fin.rows("SELECT credit_note_id FROM credit_notes WHERE order_id = :o", o=order_id)
    assert len(notes) == len(invoices), f"{len(invoices)} invoice(s), {len(notes)} credit note(s)"
    [(balance,)] = fin.rows("SELECT coalesce(sum(debit) - sum(credit), 0) FROM journal_lines")
    assert balance == Decimal(0)


@ON_EACH_POSTGRES
def test_a_cancellation_racing_the_invoice_credits_it(finance, monkeypatch):
    """issue_invoice() has read "not cancelled" when the cancellation runs on another replica."""
    order_id = str(uuid.uuid4())
    pause = PausePoint(monkeypatch, finance_adapters.InvoiceRepository, "before_issuing")
    run = interleave(finance.engine, pause, lambda: finance.deliver(confirmed(order_id)),
                     lambda: finance.deliver(cancelled(order_id)))
    assert (run.first, run.second) == (Ack(), Ack())
    assert run.second_waited, "the cancellation committed inside the invoice's transaction"
    assert_no_uncredited_invoice_for_a_cancelled_order(finance, order_id)
    assert len(finance.rows("SELECT 1 FROM invoices WHERE order_id = :o", o=order_id)) == 1


@ON_EACH_POSTGRES
def test_an_invoice_racing_a_cancellation_that_came_first_is_never_issued(finance, monkeypatch):
    order_id = str(uuid.uuid4())
    pause = PausePoint(monkeypatch, finance_adapters.InvoiceRepository, "by_order")
    run = interleave(finance.engine, pause, lambda: finance.deliver(cancelled(order_id)),
                     lambda: finance.deliver(confirmed(order_id)))
    assert (run.first, run.second) == (Ack(), Ack())
    assert run.second_waited
    assert finance.rows("SELECT 1 FROM invoices WHERE order_id = :o", o=order_id) == []
    assert_no_uncredited_invoice_for_a_cancelled_order(finance, order_id)


# ---------------------------------------------------------------- procurement: two shortages, one draft


@ON_EACH_POSTGRES
def test_two_shortages_racing_raise_one_replenishment_draft(engines, tmp_path, monkeypatch):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement")) as (client, started):
        client.create_warehouse("MAIN", "Main")
        for sku in ("CHAIR", "DESK"):
            client.create_product(sku, sku)
        client.create_supplier("SUP-1", "Supplier", email="sup@example.test")
        for sku in ("CHAIR", "DESK"):
            client.set_supplier_price("SUP-1", sku, "5.00", preferred=True)
        proc = handling(started["procurement"])
        pause = PausePoint(monkeypatch, procurement_adapters.PurchaseOrderRepository, "open_replenishment_draft")

        def shortage(sku: str):
            return proc.deliver(inv_ev.StockBelowReorderPoint(sku=sku, warehouse_code="MAIN", available=1,
                                                              reorder_point=5, reorder_quantity=20),
                                aggregate_id=f"MAIN/{sku}")

        run = interleave(proc.engine, pause, lambda: shortage("CHAIR"), lambda: shortage("DESK"))
        assert (run.first, run.second) == (Ack(), Ack())
        assert run.second_waited
        drafts = proc.rows("SELECT purchase_order_id FROM purchase_orders WHERE origin = 'replenishment'")
        assert len(drafts) == 1, f"{len(drafts)} replenishment drafts for one supplier and warehouse"


@ON_EACH_POSTGRES
def test_two_suppliers_made_preferred_at_once_leave_one_preferred(engines, tmp_path, monkeypatch):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement")) as (client, started):
        client.create_warehouse("MAIN", "Main")
        client.create_product("CHAIR", "Chair")
        for supplier in ("SUP-1", "SUP-2"):
            client.create_supplier(supplier, supplier)
        pause = PausePoint(monkeypatch, procurement_adapters.SupplierRepository, "put_price")
        run = interleave(started["procurement"].runtime.engine, pause,
                         lambda: client.set_supplier_price("SUP-1", "CHAIR", "5.00", preferred=True),
                         lambda: client.set_supplier_price("SUP-2", "CHAIR", "6.00", preferred=True))
        assert not isinstance(run.first, Exception) and not isinstance(run.second, Exception), run
        assert run.second_waited
        preferred = [p.supplier_id for p in client.procurement.ListSupplierPrices(
            proc_pb.ListSupplierPricesRequest(sku="CHAIR")).prices if p.preferred]
        assert preferred == ["SUP-2"]


@ON_EACH_POSTGRES
def test_twin_creates_of_one_product_both_answer_it(inventory, monkeypatch):
    """The second create used to hit the primary key (INTERNAL); now it waits and finds the first."""
    pause = PausePoint(monkeypatch, inventory_adapters.CatalogRepository, "product")
    with ErpClient(inventory_target=inventory.target) as client:
        run = interleave(inventory.engine, pause, lambda: client.create_product("TABLE", "Table"),
                         lambda: client.create_product("TABLE", "Table"))
    assert run.first == run.second and run.first.sku == "TABLE", run
    assert run.second_waited


@ON_EACH_POSTGRES
def test_one_bill_number_on_two_orders_at_once_is_already_exists_not_internal(engines, tmp_path, monkeypatch):
    """The number check ran under each order's own lock, so bills of two orders passed it together."""
    running = service.start(finance_spec(), support.settings_for("finance", engines, tmp_path))
    try:
        fin = handling(running)
        for po in ("PO-1", "PO-2"):
            assert fin.deliver(bills.approved(po), aggregate_id=po) == Ack()
            assert fin.deliver(bills.received(f"R-{po}", po, (1, "CHAIR", 10)), aggregate_id=po) == Ack()
        pause = PausePoint(monkeypatch, finance_adapters.SupplierBillRepository, "by_number")
        channel = grpc.insecure_channel(fin.target)
        stub = finance_pb2_grpc.FinanceServiceStub(channel)
        run = interleave(fin.engine, pause,
                         lambda: stub.RecordSupplierBill(bills.bill_request("PO-1", "B-7", (1, 10, "50.00"))),
                         lambda: stub.RecordSupplierBill(bills.bill_request("PO-2", "B-7", (1, 10, "50.00"))))
        channel.close()
        assert not isinstance(run.first, Exception), run.first
        assert isinstance(run.second, grpc.RpcError) and run.second.code() == grpc.StatusCode.ALREADY_EXISTS, run
        assert run.second_waited
    finally:
        running.stop(grace=1)
