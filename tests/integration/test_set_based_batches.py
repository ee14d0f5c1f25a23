"""A consumer's batch reads and writes its aggregates set-wise, on real PostgreSQL: the
statements are counted as the driver sends them, since that count is what the batch saves."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from erp.common.v1.money_pb2 import Money
from erp.events.v1 import crm_events_pb2 as crm_ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery


def delivery(payload, source: str, aggregate_id: str) -> Delivery:
    env = envelope.build(source=source, aggregate_type="x", aggregate_id=aggregate_id, aggregate_version=1,
                         payload=payload)
    return Delivery(env.SerializeToString(), 0, None)


def statements_of(engine, run) -> list[str]:
    """The statements `run()` sends through the engine."""
    sent: list[str] = []

    def seen(_conn, _cursor, statement, *_args) -> None:
        sent.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        run()
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
    return sent


def test_orders_locks_a_batch_s_orders_in_one_statement_and_writes_them_in_one(engine_for):
    """orders' consumer over a batch of saga answers, on real PostgreSQL: the batch's orders are
    locked and read by one statement before any handler runs, two answers about one order change
    one object (its second event sees the first's change), and every changed order is written by
    one UPDATE at the commit, at the version it was read at."""
    from services.orders import events, handlers
    from services.orders.adapters import OrdersUnitOfWork
    from services.orders.domain import LineInput, OrderStatus, PlaceOrder

    engine = engine_for("orders")
    line = LineInput("SKU-1", "MAIN", 1, "5.00", "EUR")
    first, second = (handlers.place_order(OrdersUnitOfWork(engine, "orders"), PlaceOrder(f"r-{n}", "CUST-1", "EUR",
                                                                                          (line,)), "MAIN")
                     for n in (1, 2))

    batch = [delivery(inv_ev.StockReserved(order_id=first.order_id), "inventory", first.order_id),
             delivery(crm_ev.CreditApproved(order_id=first.order_id, customer_id="CUST-1"), "crm", first.order_id),
             delivery(crm_ev.CreditRejected(order_id=second.order_id, customer_id="CUST-1", reason="over"), "crm",
                      second.order_id)]
    consumer = Consumer(events.build(), lambda: OrdersUnitOfWork(engine, "orders"), 5, 20)
    statements = statements_of(engine, lambda: assert_acked(consumer.handle_batch(batch), 3))
    assert sum("JOIN LATERAL" in s and "FOR UPDATE OF orders" in s for s in statements) == 1
    assert sum(s.startswith("UPDATE orders SET") for s in statements) == 1
    with OrdersUnitOfWork(engine, "orders") as uow:
        confirmed, rejected = uow.orders.get(first.order_id), uow.orders.get(second.order_id)
        announced = uow.connection.execute(sa.text("SELECT event_type, envelope FROM outbox ORDER BY id")).all()
    assert (confirmed.status, confirmed.version) == (OrderStatus.CONFIRMED, first.version + 2)
    assert (rejected.status, rejected.version) == (OrderStatus.REJECTED, second.version + 1)
    versions = {row.event_type: envelope.decode(row.envelope).envelope.aggregate_version for row in announced}
    assert versions[envelope.event_type(orders_ev.OrderConfirmed)] == first.version + 2
    assert versions[envelope.event_type(orders_ev.OrderRejected)] == second.version + 1


def assert_acked(outcomes: list, count: int) -> None:
    assert outcomes == [Ack()] * count


def crm_with_customer(engine_for, limit: str):
    from services.crm import handlers
    from services.crm.adapters import CrmUnitOfWork
    from services.crm.domain import CreateCustomer

    engine = engine_for("crm")
    handlers.create_customer(CrmUnitOfWork(engine, "crm"), CreateCustomer(
        customer_id="CUST-1", name="Acme", status="", credit_limit_amount=limit, credit_limit_currency="EUR",
        payment_terms_days=30, email="", contacts=(), webhook_url=""))
    return engine


def crm_consumer(engine):
    from services.crm import events
    from services.crm.adapters import CrmUnitOfWork

    return Consumer(events.build(), lambda: CrmUnitOfWork(engine, "crm"), 5, 20)


def eur(amount: str) -> Money:
    return Money(currency_code="EUR", amount=amount)


def test_crm_decides_a_batch_s_orders_from_one_read_and_writes_them_in_one_statement(engine_for):
    """crm's batch locks its customers up front (lock_first) and reads them in that statement;
    what its credit checks look at (an earlier decision, the order's tombstone, the exposure) is
    read for all of them in one statement (read_first), each check still sees the approvals
    before it in the batch, and the decisions, with the orders the approvals open, are written by
    one statement at the commit. Three orders of one customer and one of a customer crm does not
    know: 40 + 40 fit the limit of 100, the third does not."""
    engine = crm_with_customer(engine_for, "100.00")
    placed = [orders_ev.OrderPlaced(order_id=f"O-{n}", customer_id=customer, total=eur("40.00"))
              for n, customer in enumerate(["CUST-1", "CUST-1", "CUST-1", "CUST-NONE"])]
    batch = [delivery(event, "orders", event.order_id) for event in placed]
    statements = statements_of(engine, lambda: assert_acked(crm_consumer(engine).handle_batch(batch), 4))
    assert sum("FROM customers" in s for s in statements) == 1
    reads = [s for s in statements if s.startswith("SELECT") and "FROM customers" not in s and "advisory" not in s]
    assert len(reads) == 1 and "credit_decisions" in reads[0] and "open_orders" in reads[0], reads
    writes = [s for s in statements if "INTO credit_decisions" in s or "INTO open_orders" in s]
    assert len(writes) == 1 and "INTO open_orders" in writes[0], writes
    with engine.connect() as conn:
        decided = dict(conn.execute(sa.text("SELECT order_id, approved FROM credit_decisions")).all())
        opened = dict(conn.execute(sa.text("SELECT order_id, amount FROM open_orders")).all())
    assert decided == {"O-0": True, "O-1": True, "O-2": False, "O-3": False}  # 120 > 100; no such customer
    assert opened == {"O-0": 40, "O-1": 40}


def test_crm_checks_in_a_batch_see_every_change_the_batch_made_before_them(engine_for):
    """A batch whose events change one customer's exposure before its credit checks: an invoice
    replaces an open order, a payment lowers what is due, an order is cancelled before it is placed,
    and an order is placed twice (published again under a new event id). Each check reads what the
    batch wrote before it, so the approval counts the invoice at what is left due (10), not the
    order it replaced (40), and the second placement gets the first decision again."""
    engine = crm_with_customer(engine_for, "100.00")
    earlier = orders_ev.OrderPlaced(order_id="O-A", customer_id="CUST-1", total=eur("40.00"))
    assert_acked(crm_consumer(engine).handle_batch([delivery(earlier, "orders", "O-A")]), 1)
    placed = orders_ev.OrderPlaced(order_id="O-B", customer_id="CUST-1", total=eur("80.00"))
    batch = [
        delivery(fin_ev.InvoiceIssued(invoice_id="I-A", order_id="O-A", customer_id="CUST-1", total=eur("40.00")),
                 "finance", "I-A"),
        delivery(fin_ev.PaymentReceived(invoice_id="I-A", order_id="O-A", customer_id="CUST-1", amount=eur("30.00"),
                                        amount_due=eur("10.00")), "finance", "I-A"),
        delivery(placed, "orders", "O-B"),
        delivery(orders_ev.OrderCancelled(order_id="O-C", customer_id="CUST-1", total=eur("1.00")), "orders", "O-C"),
        delivery(orders_ev.OrderPlaced(order_id="O-C", customer_id="CUST-1", total=eur("1.00")), "orders", "O-C"),
        delivery(placed, "orders", "O-B"),  # a new envelope: a new event id
    ]
    assert_acked(crm_consumer(engine).handle_batch(batch), len(batch))
    with engine.connect() as conn:
        decided = {r.order_id: (r.approved, r.exposure_after) for r in conn.execute(sa.text(
            "SELECT order_id, approved, exposure_after FROM credit_decisions"))}
        orders = {r.order_id: (r.amount, r.closed_by) for r in conn.execute(sa.text(
            "SELECT order_id, amount, closed_by FROM open_orders"))}
        invoice = conn.execute(sa.text("SELECT total, lowest_due, amount_due FROM unpaid_invoices")).one()
        answers = [envelope.decode(row.envelope).payload for row in conn.execute(sa.text(
            "SELECT envelope FROM outbox WHERE event_type <> :updated ORDER BY id"),
            {"updated": envelope.event_type(crm_ev.CustomerUpdated)})]
    assert decided == {"O-A": (True, 40), "O-B": (True, 90), "O-C": (False, None)}
    assert orders == {"O-A": (40, "invoiced"), "O-B": (80, None), "O-C": (None, "cancelled")}
    assert tuple(invoice) == (40, 10, 10)
    assert [(type(a).__name__, a.order_id) for a in answers] == [
        ("CreditApproved", "O-A"), ("CreditApproved", "O-B"), ("CreditRejected", "O-C"), ("CreditApproved", "O-B")]
    assert answers[1] == answers[3]


def confirmed(order_id: str, customer_id: str = "CUST-1") -> orders_ev.OrderConfirmed:
    price = eur("12.50")
    return orders_ev.OrderConfirmed(order_id=order_id, customer_id=customer_id, total=eur("25.00"), lines=[
        orders_ev.OrderLineItem(line_no=1, sku="SKU-A", warehouse_code="MAIN", quantity=2, unit_price=price)])


def test_finance_numbers_a_batch_s_invoices_in_memory_and_reads_what_they_look_at_once(engine_for):
    """finance's batch of OrderConfirmed: what each invoice looks at first (a cancellation, an
    invoice already there, the payment terms) is read for all of them in one statement, and the
    locked invoice counter counts on in memory, written once at the commit: no statement per
    number. A batch that changes what its invoices look at (a cancellation before the order's
    confirmation, new payment terms, an order confirmed twice) still sees each change. The batch's
    invoices and the journal entries that post them are written by one statement at the commit."""
    from decimal import Decimal

    from services.finance import events
    from services.finance.adapters import FinanceUnitOfWork
    from services.finance.ledger.domain import FinanceConfig

    engine = engine_for("finance")
    consumer = Consumer(events.build(FinanceConfig(Decimal("0.20"), 30, "EUR")),
                        lambda: FinanceUnitOfWork(engine, "finance"), 5, 20)
    assert_acked(consumer.handle_batch([delivery(confirmed("O-0"), "orders", "O-0")]), 1)  # the counter's first
    batch = [delivery(confirmed(f"O-{n}"), "orders", f"O-{n}") for n in (1, 2, 3)]
    statements = statements_of(engine, lambda: assert_acked(consumer.handle_batch(batch), 3))
    assert sum("cancelled_orders" in s for s in statements) == 1
    numbering = [s.split(" ", 1)[0] for s in statements if "number_sequences" in s]
    assert numbering == ["SELECT", "UPDATE"], numbering  # the lock, and the counter written at the commit
    writes = [s for s in statements if "INTO invoices" in s or "INTO journal_entries" in s]
    assert len(writes) == 1 and "INTO journal_lines" in writes[0] and "INTO invoice_lines" in writes[0], writes

    mixed = [
        delivery(orders_ev.OrderCancelled(order_id="O-5", customer_id="CUST-1"), "orders", "O-5"),
        delivery(confirmed("O-5"), "orders", "O-5"),
        delivery(crm_ev.CustomerUpdated(customer_id="CUST-2", payment_terms_days=7), "crm", "CUST-2"),
        delivery(confirmed("O-4", "CUST-2"), "orders", "O-4"),
        delivery(confirmed("O-6"), "orders", "O-6"),
        delivery(confirmed("O-4", "CUST-2"), "orders", "O-4"),  # again, under a new event id
    ]
    assert_acked(consumer.handle_batch(mixed), len(mixed))
    with engine.connect() as conn:
        issued = {r.order_id: (r.number_seq, (r.due_at - r.issued_at).days) for r in conn.execute(sa.text(
            "SELECT order_id, number_seq, issued_at, due_at FROM invoices"))}
        counter = conn.execute(sa.text("SELECT last_value FROM number_sequences")).scalar_one()
        posted = conn.execute(sa.text(
            "SELECT i.order_id, sum(l.debit) FROM invoices i JOIN journal_entries e ON e.entry_id = i.journal_entry_id"
            " AND e.reference = i.invoice_id JOIN journal_lines l ON l.entry_id = e.entry_id GROUP BY i.order_id")).all()
    assert issued == {"O-0": (1, 30), "O-1": (2, 30), "O-2": (3, 30), "O-3": (4, 30), "O-4": (5, 7), "O-6": (6, 30)}
    assert counter == 6
    assert dict(posted) == dict.fromkeys(issued, Decimal("30.00"))  # each posted with its own entry: 25 + 20% tax


def test_notification_reads_a_batch_s_contacts_in_one_statement(engine_for):
    """notification's batch reads its customers' contact data once, before its handlers run: an
    order event for a customer it knows, one for a customer it learns of later in the same batch
    (held, then released by the CustomerUpdated), and one after it; each queues its email."""
    from services.notification import events
    from services.notification.adapters import NotificationUnitOfWork

    engine = engine_for("notification")
    known = crm_ev.CustomerUpdated(customer_id="CUST-1", name="Acme", email="a@example.test")
    consumer = Consumer(events.build(), lambda: NotificationUnitOfWork(engine, "notification"), 5, 20)
    assert consumer.handle(delivery(known, "crm", "CUST-1")) == Ack()
    rejected = [orders_ev.OrderRejected(order_id=f"O-{n}", customer_id=customer, reason="no stock")
                for n, customer in enumerate(["CUST-1", "CUST-2"])]
    batch = [delivery(rejected[0], "orders", "O-0"), delivery(rejected[1], "orders", "O-1"),
             delivery(crm_ev.CustomerUpdated(customer_id="CUST-2", name="Bolt", email="b@example.test"), "crm",
                      "CUST-2"),
             delivery(orders_ev.OrderRejected(order_id="O-2", customer_id="CUST-2", reason="no credit"), "orders",
                      "O-2")]
    statements = statements_of(engine, lambda: assert_acked(consumer.handle_batch(batch), 4))
    assert sum("FROM contacts" in s for s in statements) == 1
    assert sum("INSERT INTO deliveries" in s for s in statements) == 1  # the batch's three, at its commit
    with engine.connect() as conn:
        queued = conn.execute(sa.text("SELECT recipient, count(*) FROM deliveries GROUP BY recipient")).all()
    assert dict(queued) == {"a@example.test": 1, "b@example.test": 2}
    # One the event already has for that channel and recipient is left out at the commit, twice in one
    # statement too; the rest go in.
    import dataclasses

    with NotificationUnitOfWork(engine, "notification") as uow:
        first = uow.deliveries.claim_due(dt.datetime(2999, 1, 1, tzinfo=dt.UTC), limit=1)[0]
        for n in range(2):
            uow.deliveries.add(dataclasses.replace(first, delivery_id=f"again-{n}"))
        uow.deliveries.add(dataclasses.replace(first, delivery_id="other", recipient="c@example.test"))
        uow.commit()
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT delivery_id FROM deliveries WHERE event_id = :e ORDER BY delivery_id"),
                           {"e": first.event_id}).scalars().all()
    assert ids == sorted([first.delivery_id, "other"])


def test_insert_many_keeps_the_rows_order_and_one_statement_text_for_any_batch(engine_for):
    """mesh.bulk.insert_many, on the outbox and orders' timeline: identity values count up in
    the order the rows were given, a row repeating a key of the same batch is skipped by ON
    CONFLICT DO NOTHING, and batches of 3 and 200 rows send the same statement text."""

    from mesh import bulk
    from services.orders.adapters import _ADD_STEPS, OrdersUnitOfWork

    engine = engine_for("orders")
    at = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)

    def steps(keys: list[str]) -> dict[str, str]:
        return bulk.rows([{"order_id": "O-1", "step_key": key, "kind": "placed", "service": "orders",
                                "occurred_at": at, "detail": key, "event_id": ""} for key in keys])

    few, many = ["c", "a", "c", "b"], [f"k{n:03}" for n in reversed(range(200))]
    sent = statements_of(engine, lambda: _write(engine, OrdersUnitOfWork, _ADD_STEPS, [steps(few), steps(many)]))
    assert len(set(sent)) == 1
    with engine.connect() as conn:
        keys = list(conn.execute(sa.text("SELECT step_key FROM order_timeline ORDER BY seq")).scalars())
    assert keys == ["c", "a", "b", *many]


def _write(engine, uow_class, statement, batches: list[dict]) -> None:
    with uow_class(engine, "orders") as uow:
        for batch in batches:
            uow.connection.execute(statement, batch)
        uow.commit()


def test_a_lock_first_batch_sets_its_lock_wait_with_its_inbox_rows(engine_for):
    """A batch whose handlers lock rows first (lock_first) waits for those like for its aggregates,
    then its handlers wait at most BATCH_LOCK_TIMEOUT: set by the statement that records the inbox
    rows, not by a statement of its own."""
    from mesh import locks
    from mesh.events.consumer import BATCH_LOCK_TIMEOUT, EventHandlers
    from mesh.uow import UnitOfWork

    engine = engine_for("orders")
    waits: list[str] = []
    handlers = EventHandlers(consumer="probe", lock_first=lambda uow, events: None)

    @handlers.on(inv_ev.StockReserved, lock=locks.by("order", "order_id"))
    def record_wait(uow, event, envelope) -> None:
        waits.append(uow.connection.execute(sa.text("SHOW lock_timeout")).scalar_one())

    consumer = Consumer(handlers, lambda: UnitOfWork(engine, "orders"), 5, 20)
    batch = [delivery(inv_ev.StockReserved(order_id=f"O-{n}"), "inventory", f"O-{n}") for n in range(2)]
    statements = statements_of(engine, lambda: assert_acked(consumer.handle_batch(batch), 2))
    assert waits == [BATCH_LOCK_TIMEOUT] * 2
    assert not any(s.startswith("SET") for s in statements)


def inventory_with_stock(engine_for, a: int, b: int):
    """inventory's schema with SKUs A and B in warehouse MAIN, `a` and `b` of each received (balance and ledger)."""
    engine = engine_for("inventory")
    stock = {"a": a, "b": b}
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO products (sku, name, unit_of_measure) VALUES ('A', 'a', 'pc'), ('B', 'b', 'pc')"))
        conn.execute(sa.text("INSERT INTO warehouses (code, name) VALUES ('MAIN', 'main')"))
        conn.execute(sa.text("INSERT INTO stock_balances (sku, warehouse_code, on_hand, reserved, version)"
                             " VALUES ('A', 'MAIN', :a, 0, 1), ('B', 'MAIN', :b, 0, 1)"), stock)
        conn.execute(sa.text("INSERT INTO stock_ledger (sku, warehouse_code, kind, on_hand_delta, reserved_delta, reason,"
                             " reference) VALUES ('A', 'MAIN', 'receipt', :a, 0, 'seed', ''),"
                             " ('B', 'MAIN', 'receipt', :b, 0, 'seed', '')"), stock)
    return engine


def test_inventory_reserves_an_order_in_two_statements(engine_for, redis_server):
    """A reservation on real PostgreSQL: one statement reads what was done with the order and its
    SKUs and warehouses and locks its balances, one writes the balances, the reservation rows and
    the ledger entries (in line order); the ledger still sums to the balances, and the same order
    again reserves nothing more."""
    import uuid

    from mesh.cache import Cache
    from services.inventory import domain, handlers
    from services.inventory.adapters import InventoryUnitOfWork, ledger_mismatches

    engine = inventory_with_stock(engine_for, a=10, b=10)
    cache = Cache(redis_server, f"test-{uuid.uuid4().hex[:8]}", 60)
    lines = (domain.ReserveLine(1, "B", "MAIN", 2), domain.ReserveLine(2, "A", "MAIN", 3),
             domain.ReserveLine(3, "B", "MAIN", 1))
    reserved_each_time, statements_each_time = [], []
    for _ in range(2):  # the order, then the same OrderPlaced again
        with InventoryUnitOfWork(engine, "inventory") as uow:
            sent = statements_of(engine, lambda uow=uow: reserved_each_time.append(
                handlers.reserve(uow, cache, domain.ReserveOrder("O-1", lines))))
            uow.commit()  # (its outbox row is written here, not counted)
        statements_each_time.append(len(sent))
    assert statements_each_time == [2, 1]
    assert reserved_each_time == [True, True]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT sku, reserved, version FROM stock_balances ORDER BY sku")).all() == [
            ("A", 3, 2), ("B", 3, 2)]
        assert conn.execute(sa.text("SELECT sku, quantity, status FROM reservations WHERE order_id = 'O-1'"
                                    " ORDER BY sku")).all() == [("A", 3, "reserved"), ("B", 3, "reserved")]
        assert conn.execute(sa.text("SELECT sku, kind, reserved_delta, reference FROM stock_ledger"
                                    " WHERE reference = 'O-1' ORDER BY id")).all() == [
            ("A", "reservation", 3, "O-1"), ("B", "reservation", 3, "O-1")]
        assert ledger_mismatches(conn) == []


def placed(order_id: str, *lines: tuple[str, int]) -> orders_ev.OrderPlaced:
    return orders_ev.OrderPlaced(order_id=order_id, customer_id="CUST-1", total=eur("1.00"), lines=[
        orders_ev.OrderLineItem(line_no=n, sku=sku, warehouse_code="MAIN", quantity=qty, unit_price=eur("1.00"))
        for n, (sku, qty) in enumerate(lines, start=1)])


def test_inventory_reserves_a_batch_from_one_read_and_writes_it_in_one_statement(engine_for, redis_server):
    """inventory's batch of OrderPlaced: what was done with each order and the balances of all
    their keys are read and locked up front (two statements); each reservation sees the ones
    before it (orders compete for the last units of A), and all are written by one statement at
    the commit. A batch that also releases an order still sees every change: the release writes
    what was reserved before it, and the orders after it read again."""
    import uuid

    from mesh.cache import Cache
    from services.inventory import events
    from services.inventory.adapters import InventoryUnitOfWork, ledger_mismatches

    engine = inventory_with_stock(engine_for, a=5, b=10)
    consumer = Consumer(events.build(Cache(redis_server, f"test-{uuid.uuid4().hex[:8]}", 60)),
                        lambda: InventoryUnitOfWork(engine, "inventory"), 5, 20)
    batch = [delivery(placed("O-1", ("B", 2), ("A", 3)), "orders", "O-1"),
             delivery(placed("O-2", ("A", 3)), "orders", "O-2"),  # 2 of A left: fails
             delivery(placed("O-3", ("A", 2), ("X", 1)), "orders", "O-3"),  # no SKU X: fails
             delivery(placed("O-4", ("A", 2), ("B", 1)), "orders", "O-4"),  # the last 2 of A
             delivery(placed("O-1", ("B", 2), ("A", 3)), "orders", "O-1")]  # again: the first answer
    statements = statements_of(engine, lambda: assert_acked(consumer.handle_batch(batch), 5))
    # the batch's locks and orders, and its write; the repeat of O-1 reads its order again (each
    # order's read is used once), after the reservations before it were written
    assert sum("stock_balances" in s for s in statements) == 3
    assert sum("FROM reservations" in s for s in statements) == 2
    assert sum("INTO reservations" in s for s in statements) == 1

    release = [delivery(placed("O-5", ("B", 1)), "orders", "O-5"),
               delivery(orders_ev.OrderCancelled(order_id="O-4", customer_id="CUST-1"), "orders", "O-4"),
               delivery(placed("O-6", ("A", 2)), "orders", "O-6")]  # the units O-4 gave back
    assert_acked(consumer.handle_batch(release), 3)
    with engine.connect() as conn:
        balances = conn.execute(sa.text("SELECT sku, reserved, version FROM stock_balances ORDER BY sku")).all()
        held = conn.execute(sa.text("SELECT order_id, sku, quantity, status FROM reservations"
                                    " ORDER BY order_id, sku")).all()
        failed = {r.order_id for r in conn.execute(sa.text("SELECT order_id FROM reservation_failures"))}
        answers = [(row.event_type.rsplit(".", 1)[1], envelope.decode(row.envelope).payload.order_id)
                   for row in conn.execute(sa.text("SELECT event_type, envelope FROM outbox ORDER BY id"))]
        assert ledger_mismatches(conn) == []
    assert [tuple(b) for b in balances] == [("A", 5, 5), ("B", 3, 5)]  # A: 3 + 2, -2, +2; B: 2 + 1, +1, -1
    assert [tuple(h) for h in held] == [("O-1", "A", 3, "reserved"), ("O-1", "B", 2, "reserved"),
                                        ("O-4", "A", 2, "released"), ("O-4", "B", 1, "released"),
                                        ("O-5", "B", 1, "reserved"), ("O-6", "A", 2, "reserved")]
    assert failed == {"O-2", "O-3"}
    reserved, refused = "StockReserved", "StockReservationFailed"
    assert [a for a in answers if a[0] in (reserved, refused)] == [
        (reserved, "O-1"), (refused, "O-2"), (refused, "O-3"), (reserved, "O-4"), (reserved, "O-1"),
        (reserved, "O-5"), (reserved, "O-6")]


def test_a_row_and_its_rows_go_in_with_one_statement(engine_for):
    """mesh.bulk.insert_with_rows, as finance posts a journal entry: the entry's generated id
    comes back and every line carries it, in the order given, from one statement; a second
    entry gets its own id."""
    from decimal import Decimal

    from services.finance.ledger.adapters import JournalRepository
    from services.finance.ledger.domain import JournalEntry, JournalLine

    engine = engine_for("finance")
    with engine.connect() as conn:
        accounts = conn.execute(sa.text("SELECT code FROM accounts ORDER BY code LIMIT 3")).scalars().all()
    lines = (JournalLine(accounts[2], debit=Decimal("7.00")), JournalLine(accounts[0], credit=Decimal("5.00")),
             JournalLine(accounts[1], credit=Decimal("2.00")))
    with engine.begin() as conn:
        journal = JournalRepository(conn)
        ids: list[int] = []
        sent = statements_of(engine, lambda: ids.append(journal.post(JournalEntry("one", "R-1", "EUR", lines))))
        ids.append(journal.post(JournalEntry("two", "R-2", "EUR", lines)))
    assert len(sent) == 1 and ids[0] != ids[1], sent
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT line_no, account, debit, credit FROM journal_lines WHERE entry_id = :e"
                                      " ORDER BY line_no"), {"e": ids[0]}).all()
    assert stored == [(1, accounts[2], Decimal("7.00"), Decimal("0.00")), (2, accounts[0], Decimal("0.00"),
                      Decimal("5.00")), (3, accounts[1], Decimal("0.00"), Decimal("2.00"))]


def test_bulk_rows_come_back_exactly_as_bound(engine_for):
    """mesh.bulk sends rows as one JSON document: bytes (every byte value), text JSON must escape
    (quotes, backslashes, newlines, non-ASCII), an aware and a far datetime, a NULL, a UUID and
    a decimal read back from PostgreSQL exactly as given; a value JSON has no form for is refused
    before anything is sent."""
    import uuid

    import pytest

    from mesh import bulk
    from mesh.uow import OUTBOX_INSERT
    from services.orders.adapters import _SAVE_MANY, _STATE

    engine = engine_for("orders")
    envelope_bytes, awkward = bytes(range(256)), 'quote " backslash \\ newline \n tab \t é ☃ 𝄞 \x7f'
    event_id = uuid.uuid4()
    at = dt.datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    with engine.begin() as conn:
        conn.execute(OUTBOX_INSERT, bulk.rows([{"event_id": event_id, "event_type": awkward, "aggregate_id": "A",
                                                "envelope": envelope_bytes}]))
        conn.execute(sa.text("INSERT INTO orders (order_id, request_id, customer_id, currency_code, status, version,"
                             " rejection_reason, created_at, updated_at) VALUES ('O-1', 'R-1', 'C', 'EUR', 'pending',"
                             " 1, '', now(), now())"))
        state = {"status": "confirmed", "version": 2, "rejection_reason": awkward, "updated_at": at,
                 "stock_step": "done", "credit_step": "done", "invoice_id": "", "drives": 0, "driven_at": None,
                 "invoiced_amount": Decimal("12345678901234.5678"), "amount_paid": Decimal("-0.0001"),
                 "cancellation_reason": ""}
        assert set(state) == set(_STATE)
        assert conn.execute(_SAVE_MANY, bulk.rows([{"order_id": "O-1", "loaded": 1, **state}])).rowcount == 1
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT event_id, event_type, envelope FROM outbox")).one() == (
            event_id, awkward, envelope_bytes)
        stored = conn.execute(sa.text(f"SELECT {', '.join(_STATE)} FROM orders")).one()._asdict()
    assert stored == state
    with pytest.raises(TypeError, match="no JSON form"):
        bulk.rows([{"x": object()}])
