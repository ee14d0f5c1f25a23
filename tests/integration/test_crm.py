"""The crm service on the real engines: its gRPC API through the generated stubs, its
credit checks and exposure projection driven by real events (published through the
transport, or handed to its consumer), and concurrent credit checks for one customer."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from erp.common.v1 import money_pb2, paging_pb2
from erp.crm.v1 import crm_pb2 as pb
from erp.crm.v1 import crm_pb2_grpc
from erp.events.v1 import crm_events_pb2 as ev
from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import orders_events_pb2 as orders_ev
from mesh import db, service
from mesh.events import dead_letters, envelope
from mesh.events.consumer import Consumer
from mesh.events.relay import Relay
from mesh.events.transport import Ack, Delivery
from mesh.uow import UnitOfWork
from services.crm import events as crm_events
from services.crm.adapters import CrmUnitOfWork
from services.crm.service import spec as crm_spec
from tests import support

PROBE_MIGRATIONS = Path(__file__).parent / "probe_migrations"


@pytest.fixture
def crm(engines, tmp_path):
    """The crm service, started in-process on the engine set; yields (stub, running service)."""
    started = []

    def start(**overrides):
        running = service.start(crm_spec(), support.settings_for("crm", engines, tmp_path, **overrides))
        started.append(running)
        return running

    running = start()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    try:
        yield crm_pb2_grpc.CustomerServiceStub(channel), running, start
    finally:
        channel.close()
        support.stop_all(started)  # the engines fixture removes crm's RabbitMQ queues


def eur(amount: str, currency: str = "EUR") -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount=amount)


def new_customer(stub, customer_id: str, limit: str = "100.00", **fields) -> pb.Customer:
    customer = pb.Customer(customer_id=customer_id, name=f"Customer {customer_id}", credit_limit=eur(limit),
                           payment_terms_days=30, **fields)
    return stub.CreateCustomer(pb.CreateCustomerRequest(customer=customer), timeout=10).customer


def exposure(stub, customer_id: str) -> tuple[str, str, str, str]:
    e = stub.GetCustomer(pb.GetCustomerRequest(customer_id=customer_id), timeout=10).exposure
    return e.open_orders.amount, e.unpaid_invoices.amount, e.total.amount, e.available_credit.amount


def fails(call, request, code: grpc.StatusCode) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    assert info.value.code() == code, info.value.details()
    assert "Traceback" not in (info.value.details() or "")
    return info.value


def violations(err: grpc.RpcError) -> set[str]:
    for detail in rpc_status.from_call(err).details:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            return {v.field for v in bad.field_violations}
    raise AssertionError("no BadRequest detail")


def outbox_events(running, *types) -> list:
    """crm's published facts, in commit order (decoded from its outbox)."""
    with running.runtime.engine.connect() as conn:
        bodies = conn.execute(sa.text("SELECT envelope FROM outbox ORDER BY id")).scalars().all()
    decoded = [envelope.decode(bytes(b)) for b in bodies]
    return [e for e in decoded if not types or isinstance(e.payload, types)]


def decisions(running) -> dict[str, object]:
    return {e.payload.order_id: e.payload for e in outbox_events(running, ev.CreditApproved, ev.CreditRejected)}


def deliver(consumer: Consumer, payload, aggregate_id: str = "", version: int = 1, source: str = "orders"):
    """Hands one event to a consumer exactly as a transport would."""
    env = envelope.build(source=source, aggregate_type="order", aggregate_id=aggregate_id or payload.order_id,
                         aggregate_version=version, payload=payload)
    return consumer.handle(Delivery(env.SerializeToString(), 0, None))


def consumer_for(running, uow_factory=None) -> Consumer:
    return Consumer(crm_events.build(), uow_factory or running.runtime.uow, 3, 20)


def eventually(check, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > end:
                raise
            time.sleep(0.05)


# ---------------------------------------------------------------- the gRPC API


def test_customers_through_the_generated_stubs(crm):
    stub, running, _ = crm
    contacts = [pb.Contact(name="Ann Lee", email="ann@acme.example", phone="+44 20 7946 0000",
                           role="accounts payable")]
    made = new_customer(stub, "ACME", "1000", email="ap@acme.example", contacts=contacts,
                        webhook_url="https://acme.example/erp-hook")
    assert (made.status, made.credit_limit, made.version) == (pb.CUSTOMER_STATUS_ACTIVE, eur("1000.00"), 1)
    assert list(made.contacts) == contacts
    # Idempotent: the same create again answers with the customer; another one with its id conflicts.
    again = new_customer(stub, "ACME", "1000.00", email="ap@acme.example", contacts=contacts,
                         webhook_url="https://acme.example/erp-hook")
    assert again == made
    conflict = pb.Customer(customer_id="ACME", name="Someone else", credit_limit=eur("5"))
    fails(stub.CreateCustomer, pb.CreateCustomerRequest(customer=conflict), grpc.StatusCode.ALREADY_EXISTS)

    got = stub.GetCustomer(pb.GetCustomerRequest(customer_id="ACME"), timeout=10)
    assert got.customer == made
    assert exposure(stub, "ACME") == ("0.00", "0.00", "0.00", "1000.00")

    held = stub.UpdateCustomerStatus(pb.UpdateCustomerStatusRequest(
        customer_id="ACME", status=pb.CUSTOMER_STATUS_ON_HOLD, reason="overdue invoices"), timeout=10).customer
    assert (held.status, held.version) == (pb.CUSTOMER_STATUS_ON_HOLD, 2)
    raised = stub.SetCreditLimit(pb.SetCreditLimitRequest(customer_id="ACME", credit_limit=eur("2500.50")),
                                 timeout=10).customer
    assert (raised.credit_limit.amount, raised.version, raised.status) == ("2500.50", 3, pb.CUSTOMER_STATUS_ON_HOLD)
    err = fails(stub.SetCreditLimit, pb.SetCreditLimitRequest(customer_id="ACME", credit_limit=eur("9", "USD")),
                grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(err) == {"credit_limit.currency_code"}

    # Every change is published as CustomerUpdated, versioned per customer.
    updates = outbox_events(running, ev.CustomerUpdated)
    assert [(u.envelope.aggregate_id, u.envelope.aggregate_version, u.payload.status) for u in updates] == [
        ("ACME", 1, "active"), ("ACME", 2, "on_hold"), ("ACME", 3, "on_hold")]
    assert updates[0].payload.webhook_url == "https://acme.example/erp-hook"
    assert updates[0].payload.payment_terms_days == 30
    # One service start per engine set for the whole API (starts are what make this file slow).
    check_list_customers_pages_and_filters(stub)
    check_bad_requests_get_field_violations_and_unknown_customers_not_found(stub)


def check_list_customers_pages_and_filters(stub):
    for i in range(5):
        new_customer(stub, f"C-{i}")
    stub.UpdateCustomerStatus(pb.UpdateCustomerStatusRequest(
        customer_id="C-3", status=pb.CUSTOMER_STATUS_BLOCKED, reason="fraud"), timeout=10)
    seen, token = [], ""
    while True:
        page = stub.ListCustomers(pb.ListCustomersRequest(page=paging_pb2.PageRequest(page_size=2, page_token=token)),
                                  timeout=10)
        assert len(page.customers) <= 2
        seen += [c.customer_id for c in page.customers]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["ACME"] + [f"C-{i}" for i in range(5)]  # ACME from the caller
    blocked = stub.ListCustomers(pb.ListCustomersRequest(status=pb.CUSTOMER_STATUS_BLOCKED), timeout=10)
    assert [c.customer_id for c in blocked.customers] == ["C-3"] and blocked.next_page_token == ""
    first = stub.ListCustomers(pb.ListCustomersRequest(page=paging_pb2.PageRequest(page_size=1)), timeout=10)
    err = fails(stub.ListCustomers, pb.ListCustomersRequest(
        page=paging_pb2.PageRequest(page_token=first.next_page_token), status=pb.CUSTOMER_STATUS_ACTIVE),
        grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(err) == {"page.page_token"}


def check_bad_requests_get_field_violations_and_unknown_customers_not_found(stub):
    err = fails(stub.CreateCustomer, pb.CreateCustomerRequest(), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(err) == {"customer.customer_id", "customer.name", "customer.credit_limit.amount",
                               "customer.credit_limit.currency_code"}
    bad = pb.Customer(customer_id="X-1", name="X", credit_limit=eur("-1.5"), payment_terms_days=400, status=42,
                      email="nope", webhook_url="javascript:alert(1)", contacts=[pb.Contact(email="a@b.co")])
    err = fails(stub.CreateCustomer, pb.CreateCustomerRequest(customer=bad), grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(err) == {"customer.credit_limit.amount", "customer.payment_terms_days", "customer.status",
                               "customer.email", "customer.webhook_url", "customer.contacts[0].name"}
    err = fails(stub.UpdateCustomerStatus, pb.UpdateCustomerStatusRequest(customer_id="X-1"),
                grpc.StatusCode.INVALID_ARGUMENT)
    assert violations(err) == {"status", "reason"}
    for call, request in (
        (stub.GetCustomer, pb.GetCustomerRequest(customer_id="NOPE")),
        (stub.UpdateCustomerStatus, pb.UpdateCustomerStatusRequest(
            customer_id="NOPE", status=pb.CUSTOMER_STATUS_ACTIVE, reason="x")),
        (stub.SetCreditLimit, pb.SetCreditLimitRequest(customer_id="NOPE", credit_limit=eur("1"))),
    ):
        fails(call, request, grpc.StatusCode.NOT_FOUND)


# ---------------------------------------------------------------- events


@pytest.fixture
def probe(engines):
    """A probe service's outbox in the same database: events written there and relayed
    reach crm through the real transport, as other services' events do."""
    engine = db.create_engine(engines.database_url, schema="probe", pool_size=2)
    db.migrate(engine, "probe", PROBE_MIGRATIONS)
    yield engine
    engine.dispose()


def publish(probe_engine, running, payloads: list) -> None:
    versions: dict[str, int] = {}
    with UnitOfWork(probe_engine, "probe") as uow:
        for payload in payloads:
            key = payload.order_id
            versions[key] = versions.get(key, 0) + 1
            uow.emit(aggregate_type="order", aggregate_id=key, version=versions[key], payload=payload)
        uow.commit()
    assert Relay(probe_engine, "probe", running.runtime.transport.publisher).publish_pending() == len(payloads)


def test_credit_checks_and_exposure_follow_published_events(crm, probe):
    stub, running, _ = crm
    new_customer(stub, "CUST-1", "100.00")
    new_customer(stub, "CUST-2", "100.00")
    stub.UpdateCustomerStatus(pb.UpdateCustomerStatusRequest(
        customer_id="CUST-2", status=pb.CUSTOMER_STATUS_BLOCKED, reason="unpaid since March"), timeout=10)
    # crm's queue and bindings exist once it has subscribed; make sure before publishing.
    running.runtime.transport.subscribe("crm", crm_events.build().event_types).close()
    publish(probe, running, [
        orders_ev.OrderRejected(order_id="O-0", customer_id="CUST-1", reason="stock not available"),
        orders_ev.OrderPlaced(order_id="O-1", customer_id="CUST-1", total=eur("60.00")),
        orders_ev.OrderPlaced(order_id="O-2", customer_id="CUST-1", total=eur("60.00")),
        orders_ev.OrderPlaced(order_id="O-3", customer_id="CUST-1", total=eur("40.00")),
        orders_ev.OrderPlaced(order_id="O-4", customer_id="CUST-2", total=eur("1.00")),
        orders_ev.OrderPlaced(order_id="O-5", customer_id="NOBODY", total=eur("1.00")),
        orders_ev.OrderPlaced(order_id="O-6", customer_id="CUST-1", total=eur("1.00", "USD")),
        orders_ev.OrderPlaced(order_id="O-0", customer_id="CUST-1", total=eur("1.00")),  # after its rejection
    ])

    def all_decided():
        found = decisions(running)
        assert len(found) == 7, found
        return found

    found = eventually(all_decided)
    assert {k for k, v in found.items() if isinstance(v, ev.CreditApproved)} == {"O-1", "O-3"}
    assert found["O-3"].exposure == eur("100.00") and found["O-3"].credit_limit == eur("100.00")
    reasons = {k: v.reason for k, v in found.items() if isinstance(v, ev.CreditRejected)}
    assert reasons["O-2"].startswith("credit limit 100.00 EUR exceeded: exposure would be 120.00 EUR")
    assert reasons["O-4"] == "customer CUST-2 is blocked: unpaid since March"
    assert reasons["O-5"] == "unknown customer NOBODY"
    assert "USD" in reasons["O-6"] and "EUR" in reasons["O-6"]
    assert reasons["O-0"] == "order O-0 was already rejected before its credit check"
    assert exposure(stub, "CUST-1") == ("100.00", "0.00", "100.00", "0.00")

    # Finance takes over: the invoice replaces the order, payments and credit notes lower it.
    publish(probe, running, [
        orders_ev.OrderRejected(order_id="O-3", customer_id="CUST-1", reason="stock not available"),
        fin_ev.InvoiceIssued(invoice_id="INV-1", number="INV-2026-000001", order_id="O-1", customer_id="CUST-1",
                             total=eur("72.00"), due_date="2026-07-01", order_amount=eur("60.00")),
        fin_ev.PaymentReceived(payment_id="P-1", invoice_id="INV-1", order_id="O-1", customer_id="CUST-1",
                               amount=eur("50.00"), amount_due=eur("22.00")),
    ])
    eventually(lambda: _assert_equal(exposure(stub, "CUST-1"), ("0.00", "22.00", "22.00", "78.00")))
    publish(probe, running, [
        fin_ev.CreditNoteIssued(credit_note_id="CN-1", number="CN-2026-000001", invoice_id="INV-1", order_id="O-1",
                                customer_id="CUST-1", amount=eur("72.00"), unpaid_amount=eur("22.00")),
    ])
    eventually(lambda: _assert_equal(exposure(stub, "CUST-1"), ("0.00", "0.00", "0.00", "100.00")))
    assert dead_letters.listing(running.runtime.engine, 10) == []


def _assert_equal(actual, expected):
    assert actual == expected


def test_each_order_is_decided_once_however_often_it_is_delivered(crm):
    stub, running, _ = crm
    new_customer(stub, "CUST-1", "100.00")
    consumer = consumer_for(running)
    placed = orders_ev.OrderPlaced(order_id="O-1", customer_id="CUST-1", total=eur("60.00"))
    env = envelope.build(source="orders", aggregate_type="order", aggregate_id="O-1", aggregate_version=1,
                         payload=placed)
    for _ in range(2):  # the same delivery twice (the inbox absorbs it)...
        assert consumer.handle(Delivery(env.SerializeToString(), 0, None)) == Ack()
    assert deliver(consumer, placed) == Ack()  # ...and the same order under a new event id
    assert list(decisions(running)) == ["O-1"]
    assert exposure(stub, "CUST-1")[0] == "60.00"
    # A malformed finance event is retried (then dead-lettered), never half applied.
    bad = fin_ev.InvoiceIssued(invoice_id="INV-1", order_id="O-1", customer_id="CUST-1", total=eur("lots"))
    outcome = deliver(consumer, bad, source="finance")
    assert type(outcome).__name__ == "Retry" and "invoice total" in outcome.error
    assert exposure(stub, "CUST-1")[:2] == ("60.00", "0.00")


# ---------------------------------------------------------------- concurrency


def gated_uow_class(gate: threading.Barrier):
    """crm's unit of work, except that reading a customer's exposure waits (briefly) at
    a barrier for the other check. Without the customer row lock both checks reach it
    together, both read the same exposure and both approve; with the lock the second is
    still waiting for the lock, the barrier times out and the first goes on alone."""

    class GatedUnitOfWork(CrmUnitOfWork):
        def start(self) -> None:
            super().start()
            totals = self.exposure.totals

            def gated_totals(customer_id, currency_code):
                try:
                    gate.wait()
                except threading.BrokenBarrierError:
                    pass
                return totals(customer_id, currency_code)

            self.exposure.totals = gated_totals

    return GatedUnitOfWork


def test_concurrent_checks_for_one_customer_never_both_spend_the_same_credit(crm):
    stub, running, _ = crm
    new_customer(stub, "CUST-1", "100.00")
    gate = threading.Barrier(2, timeout=1.0)
    uow_class = gated_uow_class(gate)
    engine = running.runtime.engine
    consumers = [consumer_for(running, lambda: uow_class(engine, "crm")) for _ in range(2)]
    orders = [orders_ev.OrderPlaced(order_id=f"O-{i}", customer_id="CUST-1", total=eur("60.00")) for i in range(2)]
    start = threading.Barrier(2)
    outcomes: list = [None, None]

    def handle(i: int) -> None:
        start.wait()
        outcomes[i] = deliver(consumers[i], orders[i])

    threads = [threading.Thread(target=handle, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcomes == [Ack(), Ack()]
    found = decisions(running)
    assert len(found) == 2
    approved = [p for p in found.values() if isinstance(p, ev.CreditApproved)]
    rejected = [p for p in found.values() if isinstance(p, ev.CreditRejected)]
    assert len(approved) == 1 and len(rejected) == 1
    assert "exposure would be 120.00 EUR" in rejected[0].reason
    assert exposure(stub, "CUST-1")[0] == "60.00"


def test_competing_replicas_on_the_bus_approve_only_what_fits(crm, probe):
    stub, running, start = crm
    start(event_consumer_threads=2)  # a second replica: three consumers on one queue
    running.runtime.transport.subscribe("crm", crm_events.build().event_types).close()
    new_customer(stub, "CUST-1", "100.00")
    new_customer(stub, "CUST-2", "1000.00")
    placed = [orders_ev.OrderPlaced(order_id=f"O-{i}", customer_id="CUST-1", total=eur("60.00")) for i in range(8)]
    placed += [orders_ev.OrderPlaced(order_id=f"P-{i}", customer_id="CUST-2", total=eur("100.00")) for i in range(8)]
    publish(probe, running, placed)

    def all_decided():
        found = decisions(running)
        assert len(found) == 16
        return found

    found = eventually(all_decided)
    approved = sorted(k for k, v in found.items() if isinstance(v, ev.CreditApproved))
    assert len([k for k in approved if k.startswith("O-")]) == 1
    assert [k for k in approved if k.startswith("P-")] == [f"P-{i}" for i in range(8)]
    assert exposure(stub, "CUST-1")[:3] == ("60.00", "0.00", "60.00")
    assert exposure(stub, "CUST-2")[3] == "200.00"


def test_a_batch_locks_its_customers_first_so_it_queues_instead_of_falling_back(crm):
    """Replicas' batches lock the customers they touch up front, in id order: one waiting on
    another waits (no deadlock is possible) instead of giving up after the batch lock timeout."""
    from mesh import metrics

    stub, running, _ = crm
    for customer_id in ("CUST-A", "CUST-B"):
        new_customer(stub, customer_id, "100.00")
    # Handled in this order, without locking first, the batch would hold CUST-B and then wait for CUST-A.
    batch = [Delivery(envelope.build(source="orders", aggregate_type="order", aggregate_id=order_id,
                                     aggregate_version=1, payload=orders_ev.OrderPlaced(
                                         order_id=order_id, customer_id=customer_id, total=eur("10.00"))
                                     ).SerializeToString(), 0, None)
             for order_id, customer_id in (("O-B", "CUST-B"), ("O-A", "CUST-A"))]
    fallbacks = metrics.EVENT_BATCH_FALLBACKS.labels("crm")
    before = fallbacks._value.get()

    def cust_b_is_free() -> None:  # the batch waits for CUST-A and has not taken CUST-B
        with running.runtime.engine.connect() as other:
            other.execute(sa.text("SET lock_timeout = '1s'"))
            other.execute(sa.text("SELECT 1 FROM customers WHERE customer_id = 'CUST-B' FOR UPDATE"))
            other.rollback()

    outcomes = support.handle_batch_behind_a_lock(  # held five times the batch lock timeout
        running.runtime.engine, "SELECT 1 FROM customers WHERE customer_id = 'CUST-A' FOR UPDATE",
        consumer_for(running), batch, while_held=cust_b_is_free)
    assert outcomes == [Ack(), Ack()]
    assert fallbacks._value.get() == before  # applied as one batch, after waiting
    assert sorted(decisions(running)) == ["O-A", "O-B"]
