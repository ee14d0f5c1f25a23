"""A property-based test of the whole saga: random sequences of place, cancel, ship
and pay across customers, then every invariant checked at the end. It runs on the
embedded engines with a few examples (each is a real multi-service run)."""
from __future__ import annotations

import uuid
from decimal import ROUND_HALF_UP, Decimal

import grpc
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erp.events.v1 import envelope_pb2
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as pb
from erp_client.client import Line
from mesh.events.transport import Ack, Delivery
from services.inventory.adapters import ledger_mismatches
from tests import support
from tests.integration import valuation_checks
from tests.integration.conftest import running_mesh

SKUS = ("P-A", "P-B", "P-C")
# Opening stock's unit costs: thirds and odd cents, so shipments' costs round.
OPENING_COST = {"P-A": "2.5000", "P-B": "7.1234", "P-C": "0.3333"}
WAREHOUSES = ("MAIN", "EAST")
TAX_RATE = Decimal("0.20")
CENT = Decimal("0.01")
SETTLED = {pb.ORDER_STATUS_CONFIRMED, pb.ORDER_STATUS_REJECTED, pb.ORDER_STATUS_CANCELLED,
           pb.ORDER_STATUS_INVOICED, pb.ORDER_STATUS_SHIPPED, pb.ORDER_STATUS_COMPLETED}


@pytest.fixture(scope="module")
def saga_mesh(embedded_pg, embedded_redis, tmp_path_factory):
    with support.fresh_database(embedded_pg) as url:
        engines = support.Engines(url, embedded_redis, "postgres", namespace="erptest-saga")
        with running_mesh(engines, tmp_path_factory.mktemp("saga")) as (client, started):
            for code in WAREHOUSES:
                client.create_warehouse(code, code)
            for sku in SKUS:
                client.create_product(sku, sku)
                for code in WAREHOUSES:
                    client.inventory.AdjustStock(inv.AdjustStockRequest(
                        request_id=f"open-{sku}-{code}", sku=sku, warehouse_code=code, quantity_delta=40,
                        reason="opening stock", unit_cost=OPENING_COST[sku]))
            yield client, started


lines = st.lists(st.tuples(st.sampled_from(SKUS), st.sampled_from(WAREHOUSES), st.integers(1, 9),
                           st.decimals(Decimal("0.01"), Decimal("99.99"), places=2)),
                 min_size=1, max_size=3, unique_by=lambda x: (x[0], x[1]))
operations = st.lists(st.one_of(
    st.tuples(st.just("place"), st.integers(0, 2), lines),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
    st.tuples(st.just("ship"), st.integers(0, 50)),
    st.tuples(st.just("pay"), st.integers(0, 50), st.sampled_from(["half", "all"])),
), min_size=3, max_size=15)


def settle(client, order_id: str) -> pb.Order:
    return client.wait_for(lambda: client.get_order(order_id), lambda o: o.status in SETTLED, timeout=30)


def run(client, ops, customers: list[str]) -> list[str]:
    placed: list[str] = []
    for op in ops:
        if op[0] == "place":
            order = client.place_order(customers[op[1]], [Line(s, q, str(p), w) for s, w, q, p in op[2]])
            settle(client, order.order_id)
            placed.append(order.order_id)
            continue
        if not placed:
            continue
        order_id = placed[op[1] % len(placed)]
        try:
            if op[0] == "cancel":
                client.cancel_order(order_id, "property test")
            elif op[0] == "ship":
                client.mark_shipped(order_id)
            else:
                invoices = client.invoices_for_order(order_id)
                if invoices and Decimal(invoices[0].amount_due.amount) > 0:
                    due = Decimal(invoices[0].amount_due.amount)
                    amount = due if op[2] == "all" else max(CENT, (due / 2).quantize(CENT))
                    client.record_payment(invoices[0].invoice_id, str(amount))
        except grpc.RpcError as err:  # refusals are part of the game, and must be the right ones
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err.details()
    return placed


def quiesce(client, placed: list[str]) -> dict[str, pb.Order]:
    """Waits until every order's consequences have happened, then returns the orders."""
    orders = {}
    for order_id in placed:
        order = settle(client, order_id)
        if order.status in (pb.ORDER_STATUS_CONFIRMED,):
            order = client.wait_for(lambda oid=order_id: client.get_order(oid), lambda o: o.invoice_id, timeout=30)
        orders[order_id] = order
    return orders


def expected_invoice_total(order: pb.Order) -> Decimal:
    subtotal = sum(((Decimal(line.unit_price.amount) * line.quantity).quantize(CENT, ROUND_HALF_UP)
                    for line in order.lines), Decimal(0))
    return subtotal + (subtotal * TAX_RATE).quantize(CENT, ROUND_HALF_UP)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=operations)
def test_random_order_to_cash_histories_keep_every_invariant(saga_mesh, ops):
    client, started = saga_mesh
    run_id = uuid.uuid4().hex[:6]
    customers = [f"PT-{run_id}-{i}" for i in range(3)]
    for i, customer in enumerate(customers):
        client.create_customer(customer, customer, ["100000.00", "150.00", "0.00"][i], "EUR")
    placed = run(client, ops, customers)
    orders = quiesce(client, placed)

    # No oversell, and balances are the ledger's sums.
    with started["inventory"].runtime.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM stock_balances "
                                    "WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand")).scalar() == 0
        assert ledger_mismatches(conn) == []
        # One reservation set per order at most: each OrderPlaced had one effect.
        assert conn.execute(sa.text("SELECT count(*) FROM (SELECT order_id, sku, warehouse_code FROM reservations "
                                    "GROUP BY 1, 2, 3 HAVING count(*) > 1) d")).scalar() == 0
    # A blocked customer (limit 0) never gets an order confirmed.
    assert not any(o.customer_id == customers[2] and o.status != pb.ORDER_STATUS_REJECTED for o in orders.values())
    for order in orders.values():
        invoices = client.invoices_for_order(order.order_id)
        if order.status == pb.ORDER_STATUS_REJECTED:
            assert invoices == []
            continue
        assert len(invoices) == 1  # one OrderConfirmed, one invoice, however often delivered
        invoice = invoices[0]
        assert Decimal(invoice.total.amount) == expected_invoice_total(order)
        assert Decimal(invoice.subtotal.amount) + Decimal(invoice.tax.amount) == Decimal(invoice.total.amount)
        if order.status == pb.ORDER_STATUS_CANCELLED:
            client.wait_for(lambda i=invoice: client.invoices_for_order(i.order_id)[0],
                            lambda i: i.status == fin.INVOICE_STATUS_CREDITED, timeout=30)
    balance = client.trial_balance("EUR")
    assert balance.total_debit.amount == balance.total_credit.amount
    assert sum(Decimal(row.balance.amount) for row in balance.lines) == 0
    assert_reservations_follow_orders(started, orders)
    assert_exposure_is_what_is_owed(client, customers)
    assert_stock_is_valued_in_the_books(client, started, placed)


def assert_stock_is_valued_in_the_books(client, started, placed: list[str]) -> None:
    """Account 1200 is the stock valuation; every shipment cost the cost in force; revenue
    minus cost per order is the sales report's margin; and every stock movement delivered
    to finance again, as is and under a new event id, posts nothing more."""
    valuation_checks.assert_account_1200_is_the_valuation(client)
    valuation_checks.assert_shipments_cost_the_cost_in_force(started)
    valuation_checks.assert_margin_per_order(client, placed)
    before = client.trial_balance("EUR")
    consumer = valuation_checks.finance_consumer(started)
    for event_type in ("erp.events.v1.StockIssued", "erp.events.v1.StockAdjusted"):
        for body in valuation_checks.outbox_events(started, event_type)[-5:]:
            replay = envelope_pb2.EventEnvelope.FromString(body)
            replay.event_id = str(uuid.uuid4())
            for again in (body, replay.SerializeToString()):
                assert consumer.handle(Delivery(bytes(again), 0, None)) == Ack()
    assert client.trial_balance("EUR") == before


HOLDS_STOCK = {pb.ORDER_STATUS_CONFIRMED: "reserved", pb.ORDER_STATUS_INVOICED: "reserved",
               pb.ORDER_STATUS_SHIPPED: "issued", pb.ORDER_STATUS_COMPLETED: "issued",
               pb.ORDER_STATUS_CANCELLED: "released", pb.ORDER_STATUS_REJECTED: None}


def assert_reservations_follow_orders(started, orders: dict[str, pb.Order]) -> None:
    """Stock is held exactly by open orders, issued for shipped ones, released otherwise."""
    def statuses(order_id):
        with started["inventory"].runtime.engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT status FROM reservations WHERE order_id = :o"),
                                    {"o": order_id}).scalars())

    for order_id, order in orders.items():
        expected = HOLDS_STOCK[order.status]
        wanted = set() if expected is None else {expected}
        # Releases follow the order's own event, so give them a moment.
        client_wait(lambda oid=order_id: statuses(oid), lambda got, w=wanted: got == w or (not w and got <= {"released"}))


def client_wait(read, done, timeout: float = 30.0):
    import time

    end = time.monotonic() + timeout
    while not done(result := read()):
        assert time.monotonic() < end, f"still {result}"
        time.sleep(0.05)


def assert_exposure_is_what_is_owed(client, customers: list[str]) -> None:
    """crm's exposure projection equals what finance says each customer owes (every
    confirmed order is invoiced by now, so nothing is left as an open order)."""
    for customer in customers:
        owed = sum((Decimal(i.amount_due.amount) for i in client.finance.ListInvoices(
            fin.ListInvoicesRequest(customer_id=customer)).invoices), Decimal(0))
        client_wait(lambda c=customer: client.get_customer(c).exposure,
                    lambda e, o=owed: Decimal(e.total.amount) == o and Decimal(e.open_orders.amount) == 0)
