"""Every handler runs beside a copy of itself (DESIGN.md decision 11, issue 14), tested as a
property: two replicas of every order-to-cash consumer (inventory, orders, crm, finance,
notification) on one real PostgreSQL database, each replica with its own engine and pool,
cache client, unit of work and Consumer, and the test playing the broker.

The broker reads every new outbox row of every schema and routes it to each service whose
handlers consume its type; the deliveries wait in a pool. Hypothesis chooses, step by step:
a command (place, cancel, ship, pay) on either replica; which pending deliveries go next, to
which replica, whether one is delivered again (later, or to both replicas at the same
moment); two deliveries at once on the two replicas in two threads (often two events of one
order for one service); a batch on one replica; a command racing a delivery. Some steps force
issue 14's windows every time they run: an order cancelled while its OrderPlaced (inventory,
crm) or its OrderConfirmed (finance) is pending, and the two delivered on both replicas at the
same moment. The aggregate locks (mesh.locks) must make all of that safe; without them the
machine finds a counterexample within a few examples.

Checked after every step (true at every moment): no stock reserved by an order inventory has
closed, no invoice beside finance's cancellation tombstone, every journal entry balances,
balances equal the stock ledger. At the end, after every pending delivery is drained in a
random order (seeded by hypothesis): nothing dead-lettered, every order settled, reservations
follow the orders (none held by a closed one), one invoice per confirmed order and a credit
note for each cancelled invoiced one, crm's exposure equals open orders plus unpaid invoices
(derived from orders' and finance's own tables), the books balance, one notification per
event and channel.

Each example gets a fresh database cloned from a migrated template (CREATE DATABASE ...
TEMPLATE), so no migration runs per example. No gRPC server, relay, dispatcher or transport is
started: nothing else reads the outboxes. Examples are real multi-service runs (a few seconds
each), so a failure is reported as found, not shrunk; its steps and a reproduce_failure blob
are printed (the race itself may need a few runs to reproduce).
"""
from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import random
import threading
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.engine import make_url

from mesh import db
from mesh.cache import Cache
from mesh.errors import FailedPrecondition
from mesh.events.consumer import Consumer
from mesh.events.envelope import decode
from mesh.events.transport import Ack, DeadLetter, Delivery, Retry
from mesh.service import Runtime
from services.crm import domain as crm_domain
from services.crm import handlers as crm_handlers
from services.finance.receivables import domain as fin_domain
from services.finance.receivables import handlers as fin_handlers
from services.inventory import domain as inv_domain
from services.inventory import handlers as inv_handlers
from services.inventory.adapters import ledger_mismatches
from services.orders import domain as orders_domain
from services.orders import handlers as orders_handlers
from tests import support

SERVICES = ("inventory", "orders", "crm", "finance", "notification")
REPLICAS = 2
MAX_ATTEMPTS = 8  # a delivery that fails this often is dead-lettered: the test then fails
WAREHOUSE = "MAIN"
# Small stock and tight limits, so that reservations and credit checks both fail sometimes.
STOCK = {"P-A": 10, "P-B": 6}
PRICES = {"P-A": Decimal("10.00"), "P-B": Decimal("25.00")}
CREDIT_LIMITS = ("100000.00", "80.00", "0.00")  # a generous customer, a tight one, one on no credit
CENT = Decimal("0.01")
TAX_RATE = Decimal("0.20")

# Customers by weight: mostly the generous one, so that orders get far enough to ship and be paid.
CUSTOMER = st.sampled_from([0, 0, 1, 2])
LINES = st.lists(st.tuples(st.sampled_from(sorted(STOCK)), st.integers(1, 3)), min_size=1, max_size=2,
                 unique_by=lambda line: line[0])
AGAIN = st.sampled_from(["once", "once", "once", "later", "both_at_once"])
# ERP_TEST_REPLICA_EXAMPLES=200 for a longer hunt than CI's.
EXAMPLES = int(os.environ.get("ERP_TEST_REPLICA_EXAMPLES", "10"))
STEPS = 40


# ---------------------------------------------------------------- the replicas


# Notification's dispatcher never runs here (nothing is sent); these only keep its start-up quiet.
QUIET = {"ERP_SMTP_URL": "smtp://127.0.0.1:1", "ERP_WEBHOOK_SECRET": "replica-properties"}


class _NoRelay:
    """What Runtime.uow() needs of a relay: something to wake. Nothing publishes here; the
    test reads the outboxes itself."""

    def __init__(self) -> None:
        self.wake = threading.Event()


@dataclasses.dataclass
class Replica:
    """One copy of one service: its own engine and pool, cache client, unit of work and consumer."""

    service: str
    index: int
    runtime: Runtime
    consumer: Consumer

    def uow(self):
        return self.runtime.uow()

    def close(self) -> None:
        self.runtime.cache.close()
        self.runtime.engine.dispose()


def _spec(service: str):
    return importlib.import_module(f"services.{service}.service").spec()


def start_replica(service: str, index: int, engines: support.Engines, data_dir: Path) -> Replica:
    spec = _spec(service)
    config = support.settings_for(service, engines, data_dir, migrate_on_start=False, db_pool_size=2, env=QUIET)
    engine = db.create_engine(engines.database_url, schema=config.schema, pool_size=2)
    cache = Cache(engines.redis_url, prefix=f"{config.cache_prefix}:{service}", ttl_seconds=config.cache_ttl_seconds,
                  local_ttl_seconds=config.cache_local_seconds)
    runtime = Runtime(config, engine, cache, None, _NoRelay(), spec.uow_class, engine)  # type: ignore[arg-type]
    consumer = Consumer(spec.build_handlers(runtime), runtime.uow, MAX_ATTEMPTS, 1)
    return Replica(service, index, runtime, consumer)


# ---------------------------------------------------------------- databases: one migrated template, a clone per example


def _url(server_url: str, name: str) -> str:
    return make_url(db.sqlalchemy_url(server_url)).set(database=name).render_as_string(hide_password=False)


def _admin(server_url: str) -> sa.Engine:
    return sa.create_engine(_url(server_url, "postgres"), isolation_level="AUTOCOMMIT")


@dataclasses.dataclass(frozen=True)
class Template:
    server_url: str
    name: str
    redis_url: str
    data_dir: Path

    def clone(self) -> str:
        name = "erp_replicas_" + uuid.uuid4().hex[:10]
        admin = _admin(self.server_url)
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self.name}"'))
        finally:
            admin.dispose()
        return name

    def drop(self, name: str) -> None:
        admin = _admin(self.server_url)
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()


@pytest.fixture(scope="module", params=support.POSTGRES_KINDS)
def template(request, redis_server, tmp_path_factory) -> Template:
    server = request.getfixturevalue(f"{request.param}_pg")
    name = "erp_replicas_tmpl_" + uuid.uuid4().hex[:8]
    url = _url(server, name)
    db.ensure_database(url)
    made = Template(server, name, redis_server, tmp_path_factory.mktemp("replicas"))
    try:
        for service in SERVICES:
            engine = db.create_engine(url, schema=service, pool_size=1)
            try:
                db.migrate(engine, service, _spec(service).migrations_dir)
            finally:
                engine.dispose()  # a template database must have no sessions when it is cloned
        yield made
    finally:
        made.drop(name)


# ---------------------------------------------------------------- the broker


@dataclasses.dataclass
class Pending:
    """One event on its way to one consuming service."""

    service: str
    body: bytes
    event_type: str
    event_id: str
    order_id: str
    attempts: int = 0

    def __repr__(self) -> str:
        return f"<{self.event_type.rsplit('.', 1)[-1]} of {self.order_id[:8]} for {self.service}>"


class Broker:
    """Reads every schema's outbox (only at quiet moments: no transaction in flight, so no
    lower id can still commit) and routes each new event to the services consuming its type."""

    def __init__(self, engine: sa.Engine, routes: dict[str, list[str]]) -> None:
        self.engine = engine
        self.routes = routes
        self.last = dict.fromkeys(SERVICES, 0)

    def collect(self) -> list[Pending]:
        new: list[Pending] = []
        with self.engine.connect() as conn:
            for schema in SERVICES:
                rows = conn.execute(sa.text(f'SELECT id, event_type, envelope FROM "{schema}".outbox '
                                            "WHERE id > :last ORDER BY id"), {"last": self.last[schema]}).all()
                for row in rows:
                    self.last[schema] = row.id
                    event = decode(bytes(row.envelope))
                    order_id = getattr(event.payload, "order_id", "") or event.envelope.aggregate_id
                    new += [Pending(service, bytes(row.envelope), row.event_type, event.envelope.event_id, order_id)
                            for service in self.routes.get(row.event_type, ())]
        return new


def in_two_threads(first: Callable[[], object], second: Callable[[], object]) -> tuple[object, object]:
    """Runs both at the same moment (a barrier releases them together); what each returned."""
    start = threading.Barrier(2)
    results: list[object] = [None, None]

    def run(i: int, fn: Callable[[], object]) -> None:
        start.wait(10)
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, fn), daemon=True) for i, fn in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a handler hung (a deadlock?)"
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, FailedPrecondition):
            raise result
    return results[0], results[1]


# ---------------------------------------------------------------- the machine


def step(fn):
    """Marks the machine broken while a rule or invariant runs, so that after a failed step the
    teardown reports that failure instead of piling the final checks on top of it."""
    @functools.wraps(fn)
    def run(self, *args, **kwargs):
        self.broken = True
        fn(self, *args, **kwargs)
        self.broken = False

    return run


class ReplicaMesh(RuleBasedStateMachine):
    """Five services, two replicas each, one database; hypothesis is the broker's scheduler."""

    def __init__(self, template: Template) -> None:
        super().__init__()
        self.template = template
        self.database = template.clone()
        self.replicas: dict[str, list[Replica]] = {}
        self.broker_engine: sa.Engine | None = None
        try:
            engines = support.Engines(_url(template.server_url, self.database), template.redis_url, "postgres",
                                      namespace="erptest-" + self.database)
            self.replicas = {service: [start_replica(service, i, engines, template.data_dir) for i in range(REPLICAS)]
                             for service in SERVICES}
            routes: dict[str, list[str]] = {}
            for service in SERVICES:
                for event_type in self.replicas[service][0].consumer.handlers.event_types:
                    routes.setdefault(event_type, []).append(service)
            self.broker_engine = sa.create_engine(engines.database_url, pool_size=1)
            self.broker = Broker(self.broker_engine, routes)
            self.pending: list[Pending] = []
            self.dead: list[tuple[Pending, str]] = []
            self.orders: list[str] = []
            self.customers = [f"CUST-{i}" for i in range(len(CREDIT_LIMITS))]
            self.rng = random.Random(0)
            self.broken = False
            self._set_up()
        except BaseException:
            self._close()
            raise

    # ------------------------------------------------------------ plumbing

    def replica(self, service: str, index: int) -> Replica:
        return self.replicas[service][index % REPLICAS]

    def _collect(self) -> None:
        self.pending += self.broker.collect()

    def _set_up(self) -> None:
        """Stock and customers, through the real handlers; their events (CustomerUpdated for
        finance's terms and notification's contacts) are delivered before the game starts."""
        inventory = self.replica("inventory", 0)
        inv_handlers.create_warehouse(inventory.uow(), inv_domain.CreateWarehouse(WAREHOUSE, "Main"))
        for sku, quantity in STOCK.items():
            inv_handlers.create_product(inventory.uow(), inv_domain.CreateProduct(sku, sku, "unit"))
            inv_handlers.adjust_stock(inventory.uow(), inventory.runtime.cache, inv_domain.AdjustStock(
                str(uuid.uuid4()), sku, WAREHOUSE, quantity, "opening stock"))
        crm = self.replica("crm", 0)
        for customer, limit in zip(self.customers, CREDIT_LIMITS, strict=True):
            crm_handlers.create_customer(crm.uow(), crm_domain.CreateCustomer(
                customer, customer, "", "1.00", "EUR", 30, email=f"{customer.lower()}@example.test"))
            crm_handlers.set_credit_limit(crm.uow(), crm_domain.SetCreditLimit(customer, limit, "EUR"))
        self._collect()
        while self.pending:
            self._deliver(self.pending.pop(0), 0)

    def _settle(self, item: Pending, outcome) -> None:
        if isinstance(outcome, Retry):  # the broker brings it back later
            self.pending.append(dataclasses.replace(item, attempts=item.attempts + 1))
        elif isinstance(outcome, DeadLetter):
            self.dead.append((item, outcome.reason))
        else:
            assert isinstance(outcome, Ack), outcome

    def _handle(self, item: Pending, index: int):
        return self.replica(item.service, index).consumer.handle(Delivery(item.body, item.attempts, None))

    def _deliver(self, item: Pending, index: int) -> None:
        self._settle(item, self._handle(item, index))
        self._collect()

    def _take(self, pick: int) -> Pending:
        return self.pending.pop(pick % len(self.pending))

    def _close(self) -> None:
        for copies in self.replicas.values():
            for replica in copies:
                replica.close()
        if self.broker_engine is not None:
            self.broker_engine.dispose()
        self.template.drop(self.database)

    def rows(self, sql: str, **params) -> list:
        with self.broker_engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    # ------------------------------------------------------------ the schedule

    @initialize(seed=st.integers(0, 2**32 - 1))
    def seed(self, seed: int) -> None:
        """The order of the final drain (a random one, reproducible)."""
        self.rng = random.Random(seed)

    def _place(self, customer: int, replica: int, lines: list[tuple[str, int]]) -> str:
        cmd = orders_domain.PlaceOrder(str(uuid.uuid4()), self.customers[customer], "EUR", tuple(
            orders_domain.LineInput(sku, WAREHOUSE, quantity, str(PRICES[sku]), "EUR") for sku, quantity in lines))
        order = orders_handlers.place_order(self.replica("orders", replica).uow(), cmd, WAREHOUSE)
        self.orders.append(order.order_id)
        return order.order_id

    def _cancel(self, order_id: str, replica: int) -> None:
        try:
            orders_handlers.cancel_order(self.replica("orders", replica).uow(), order_id, "changed their mind")
        except FailedPrecondition:
            pass  # shipped, rejected or completed: not cancellable, rightly

    def _orders_in(self, *statuses: str) -> list[str]:
        """The orders (in placement order) that orders has in these statuses now; all when none is."""
        now = dict(self.rows("SELECT order_id, status FROM orders.orders"))
        return [o for o in self.orders if now.get(o) in statuses] or self.orders

    @rule(customer=CUSTOMER, replica=st.integers(0, 1), lines=LINES)
    @step
    def place(self, customer: int, replica: int, lines: list[tuple[str, int]]) -> None:
        self._place(customer, replica, lines)
        self._collect()

    @rule(customer=CUSTOMER, replica=st.integers(0, 1), lines=LINES)
    @step
    def place_then_cancel_at_once(self, customer: int, replica: int, lines: list[tuple[str, int]]) -> None:
        """A customer who cancels right after placing: OrderPlaced and OrderCancelled pending together."""
        self._cancel(self._place(customer, replica, lines), 1 - replica)
        self._collect()

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 10**6), replica=st.integers(0, 1))
    @step
    def cancel(self, pick: int, replica: int) -> None:
        self._cancel(self.orders[pick % len(self.orders)], replica)
        self._collect()

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 10**6), replica=st.integers(0, 1))
    @step
    def ship(self, pick: int, replica: int) -> None:
        candidates = self._orders_in("confirmed", "invoiced")
        try:
            orders_handlers.mark_shipped(self.replica("orders", replica).uow(), candidates[pick % len(candidates)])
        except FailedPrecondition:
            pass  # not confirmed (yet), or closed
        self._collect()

    @rule(pick=st.integers(0, 10**6), replica=st.integers(0, 1), part=st.sampled_from(["half", "all"]))
    @step
    def pay(self, pick: int, replica: int, part: str) -> None:
        invoices = self.rows("SELECT invoice_id, total - amount_paid - amount_credited AS due "
                             "FROM finance.invoices ORDER BY number")
        invoices = [row for row in invoices if row.due > 0] or invoices  # mostly payable ones
        if invoices:
            self._pay(invoices[pick % len(invoices)].invoice_id, part, replica)
        self._collect()

    def _pay(self, invoice_id: str, part: str, replica: int) -> None:
        [due] = self.rows("SELECT total - amount_paid - amount_credited FROM finance.invoices WHERE invoice_id = :i",
                          i=invoice_id)[0]
        amount = max(CENT, due if part == "all" else (due / 2).quantize(CENT, ROUND_HALF_UP))
        try:
            fin_handlers.record_payment(self.replica("finance", replica).uow(), fin_domain.RecordPayment(
                str(uuid.uuid4()), invoice_id, str(amount), "EUR", "property test"))
        except FailedPrecondition:
            pass  # paid in full, or credited

    @rule(customer=st.sampled_from([0, 0, 1]), lines=LINES, replica=st.integers(0, 1),
          then=st.sampled_from(["pay half", "pay all", "ship", "ship, pay all", "pay half and cancel at once",
                                "pay all and ship at once"]))
    @step
    def invoice_then(self, customer: int, lines: list[tuple[str, int]], replica: int, then: str) -> None:
        """A new order taken through its saga until it is invoiced (when it is approved), then
        paid, shipped, or paid on a finance replica while orders cancels or ships it; what these
        cause is left pending like everything else."""
        order_id = self._place(customer, replica, lines)
        self._collect()
        for i in range(40):
            mine = [j for j, item in enumerate(self.pending) if item.order_id == order_id]
            if not mine:
                break
            self._deliver(self.pending.pop(mine[0]), replica + i)
        invoice = self.rows("SELECT invoice_id FROM finance.invoices WHERE order_id = :o", o=order_id)
        if not invoice:
            return  # rejected
        invoice_id = invoice[0].invoice_id
        if then == "pay half and cancel at once":
            in_two_threads(lambda: self._pay(invoice_id, "half", replica),
                           lambda: self._cancel(order_id, 1 - replica))
        elif then == "pay all and ship at once":
            in_two_threads(lambda: self._pay(invoice_id, "all", replica),
                           lambda: orders_handlers.mark_shipped(self.replica("orders", 1 - replica).uow(), order_id))
        else:
            if then.startswith("ship"):
                orders_handlers.mark_shipped(self.replica("orders", 1 - replica).uow(), order_id)
            if "pay" in then:
                self._pay(invoice_id, then.rsplit(" ", 1)[-1], replica)
        self._collect()

    @rule(moves=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 1), AGAIN), min_size=1, max_size=4))
    @step
    def deliver(self, moves: list[tuple[int, int, str]]) -> None:
        """A few deliveries, one after the other: each (which, to which replica, and whether
        again): once; or a duplicate of it left for later; or the same event to both replicas
        at the same moment (a redelivery racing the first, as after a lost ack)."""
        for pick, replica, again in moves:
            if not self.pending:
                return
            item = self._take(pick)
            if again == "later":
                self.pending.append(dataclasses.replace(item))
            if again != "both_at_once":
                self._deliver(item, replica)
                continue
            outcomes = in_two_threads(lambda item=item: self._handle(item, 0), lambda item=item: self._handle(item, 1))
            for outcome in outcomes:
                if not isinstance(outcome, Retry):
                    self._settle(item, outcome)
            retries = [outcome for outcome in outcomes if isinstance(outcome, Retry)]
            if retries:  # brought back once, however many copies failed
                self._settle(item, retries[0])
            self._collect()

    @rule(pick=st.integers(0, 10**6), limit=st.integers(1, 8), first_replica=st.integers(0, 1))
    @step
    def deliver_one_orders_events(self, pick: int, limit: int, first_replica: int) -> None:
        """Moves one order along: up to `limit` of its pending events (the ones its deliveries
        cause too), alternating replicas, so that orders get far enough to be shipped, paid,
        and cancelled after their invoice."""
        if not self.pending:
            return
        order_id = self.pending[pick % len(self.pending)].order_id
        for i in range(limit):
            mine = [j for j, item in enumerate(self.pending) if item.order_id == order_id]
            if not mine:
                return
            self._deliver(self.pending.pop(mine[0]), first_replica + i)

    @rule(pick=st.integers(0, 10**6), other=st.integers(0, 10**6), same_order=st.booleans())
    @step
    def deliver_two_at_once(self, pick: int, other: int, same_order: bool) -> None:
        """Two deliveries at the same moment, one on each replica. same_order: two events of
        one order for one service (a release and its reservation, a cancellation and its
        invoice, two saga answers), when the pool holds such a pair."""
        pool = self.pending
        if len(pool) < 2:
            return
        if same_order:
            groups: dict[tuple[str, str], list[int]] = {}
            for i, item in enumerate(pool):
                groups.setdefault((item.service, item.order_id), []).append(i)
            pairs = [ids for ids in groups.values() if len({pool[i].event_type for i in ids}) >= 2]
            if pairs:
                ids = pairs[pick % len(pairs)]
                first = ids[0]
                second = next(i for i in ids if pool[i].event_type != pool[first].event_type)
                if other % 2:
                    first, second = second, first
                self._two_at_once(first, second)
                return
        first = pick % len(pool)
        second = other % (len(pool) - 1)
        second += second >= first
        self._two_at_once(first, second)

    def _two_at_once(self, first: int, second: int) -> None:
        a, b = self.pending[first], self.pending[second]
        for i in sorted((first, second), reverse=True):
            self.pending.pop(i)
        outcomes = in_two_threads(lambda: self._handle(a, 0), lambda: self._handle(b, 1))
        self._settle(a, outcomes[0])
        self._settle(b, outcomes[1])
        self._collect()

    @rule(customer=CUSTOMER, lines=LINES, swap=st.booleans())
    @step
    def cancel_racing_its_invoice(self, customer: int, lines: list[tuple[str, int]], swap: bool) -> None:
        """Issue 14's finance window, forced: a new order is taken through its saga up to the
        point where its OrderConfirmed waits for finance, then cancelled, and finance gets the
        OrderConfirmed and the OrderCancelled on both replicas at the same moment."""
        order_id = self._place(customer, 0, lines)
        self._collect()
        for i in range(20):
            if any(self._is(item, order_id, "finance", ".OrderConfirmed") for item in self.pending):
                break
            mine = [j for j, item in enumerate(self.pending) if item.order_id == order_id and item.service != "finance"]
            if not mine:
                return  # rejected: nothing to invoice
            self._deliver(self.pending.pop(mine[0]), i)
        self._cancel(order_id, 1)
        self._collect()
        self._race(order_id, "finance", ".OrderConfirmed", swap)

    @staticmethod
    def _is(item: Pending, order_id: str, service: str, event_type: str) -> bool:
        return item.order_id == order_id and item.service == service and item.event_type.endswith(event_type)

    def _race(self, order_id: str, service: str, earlier_type: str, swap: bool) -> None:
        """The order's pending `earlier_type` and OrderCancelled for `service`, on both replicas at once."""
        earlier = [i for i, item in enumerate(self.pending) if self._is(item, order_id, service, earlier_type)]
        cancelled = [i for i, item in enumerate(self.pending) if self._is(item, order_id, service, ".OrderCancelled")]
        if not earlier or not cancelled:
            return  # not cancellable (shipped, rejected), or its events went already
        self._two_at_once(*((cancelled[0], earlier[0]) if swap else (earlier[0], cancelled[0])))

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 10**6), service=st.sampled_from(["finance", "inventory", "crm"]), swap=st.booleans())
    @step
    def cancel_then_race_its_events(self, pick: int, service: str, swap: bool) -> None:
        """Issue 14's windows, forced often: an order with an event pending for `service` (an
        OrderConfirmed for finance, an OrderPlaced for inventory or crm) is cancelled, and its
        OrderCancelled and that event reach the service on both replicas at the same moment."""
        candidates = [item for item in self.pending if item.service == service and not item.event_type.endswith(
            (".OrderCancelled", ".OrderRejected"))]
        if not candidates:
            return
        earlier = candidates[pick % len(candidates)]
        self._cancel(earlier.order_id, pick % REPLICAS)
        self._collect()
        self._race(earlier.order_id, service, "." + earlier.event_type.rsplit(".", 1)[-1], swap)

    @rule(pick=st.integers(0, 10**6), size=st.integers(2, 4), replica=st.integers(0, 1))
    @step
    def deliver_batch(self, pick: int, size: int, replica: int) -> None:
        """Several deliveries for one service in one transaction (the consumer's prefetch batch)."""
        if not self.pending:
            return
        service = self.pending[pick % len(self.pending)].service
        ids = [i for i, item in enumerate(self.pending) if item.service == service][:size]
        batch = [self.pending[i] for i in ids]
        for i in sorted(ids, reverse=True):
            self.pending.pop(i)
        consumer = self.replica(service, replica).consumer
        outcomes = consumer.handle_batch([Delivery(item.body, item.attempts, None) for item in batch])
        for item, outcome in zip(batch, outcomes, strict=True):
            self._settle(item, outcome)
        self._collect()

    @precondition(lambda self: self.orders)
    @rule(pick=st.integers(0, 10**6), order_pick=st.integers(0, 10**6), replica=st.integers(0, 1),
          command=st.sampled_from(["cancel", "ship"]))
    @step
    def command_racing_a_delivery(self, pick: int, order_pick: int, replica: int, command: str) -> None:
        """CancelOrder or MarkShipped on one replica of orders while the other handles an event
        of that order (when one for orders is pending: a saga answer, the invoice, a payment)."""
        if not self.pending:
            return
        for_orders = [i for i, item in enumerate(self.pending) if item.service == "orders"]
        item = self._take(for_orders[pick % len(for_orders)] if for_orders else pick)
        order_id = item.order_id if item.order_id in self.orders else self.orders[order_pick % len(self.orders)]
        uow = self.replica("orders", replica).uow()
        outcome, _ = in_two_threads(
            lambda: self._handle(item, 1 - replica),
            (lambda: orders_handlers.cancel_order(uow, order_id, "raced")) if command == "cancel"
            else (lambda: orders_handlers.mark_shipped(uow, order_id)))
        self._settle(item, outcome)
        self._collect()

    # ------------------------------------------------------------ true at every moment

    @invariant()
    @step
    def no_stock_held_by_an_order_inventory_closed(self) -> None:
        held = self.rows("SELECT r.order_id, r.sku, r.quantity FROM inventory.reservations r "
                         "JOIN inventory.closed_orders c USING (order_id) WHERE r.status = 'reserved'")
        assert held == [], f"stock reserved by orders inventory knows are closed: {held}"

    @invariant()
    @step
    def no_invoice_beside_a_cancellation_tombstone(self) -> None:
        both = self.rows("SELECT i.number, i.order_id FROM finance.invoices i "
                         "JOIN finance.cancelled_orders c USING (order_id)")
        assert both == [], f"invoiced although finance recorded the order's cancellation first: {both}"

    @invariant()
    @step
    def books_balance_and_balances_are_the_ledger(self) -> None:
        unbalanced = self.rows("SELECT entry_id, sum(debit), sum(credit) FROM finance.journal_lines "
                               "GROUP BY entry_id HAVING sum(debit) <> sum(credit)")
        assert unbalanced == [], f"journal entries that do not balance: {unbalanced}"
        with self.replica("inventory", 0).runtime.engine.connect() as conn:
            assert ledger_mismatches(conn) == []

    # ------------------------------------------------------------ at the end

    def teardown(self) -> None:
        try:
            if self.broker_engine is not None and not self.broken:
                self._drain()
                self._check_the_end()
        finally:
            self._close()

    def _drain(self) -> None:
        """Every pending delivery, in a random order, to a random replica, until none is left."""
        for _ in range(5000):
            if not self.pending:
                return
            self._deliver(self._take(self.rng.randrange(len(self.pending))), self.rng.randrange(REPLICAS))
        raise AssertionError(f"deliveries never ran out: {self.pending[:10]}")

    def _check_the_end(self) -> None:
        assert self.dead == [], f"dead-lettered: {self.dead}"
        orders = {row.order_id: row for row in self.rows(
            "SELECT o.order_id, o.customer_id, o.status, o.credit_step, o.invoice_id, "
            "       (SELECT sum(l.quantity * l.unit_price) FROM orders.order_lines l WHERE l.order_id = o.order_id) "
            "       AS total FROM orders.orders o")}
        assert set(orders) == set(self.orders)
        # Every order settled: answered by both checks (or closed), and invoiced once confirmed.
        unsettled = {o: row.status for o, row in orders.items() if row.status in ("pending", "confirmed")}
        assert unsettled == {}, f"orders left unsettled after every event was delivered: {unsettled}"

        # No reservation held by a closed order; shipped orders' stock issued.
        reservations: dict[str, set[str]] = {}
        for order_id, status in self.rows("SELECT order_id, status FROM inventory.reservations"):
            reservations.setdefault(order_id, set()).add(status)
        expected_stock = {"invoiced": {"reserved"}, "shipped": {"issued"}, "completed": {"issued"}}
        for order_id, row in orders.items():
            got = reservations.get(order_id, set())
            if row.status in ("rejected", "cancelled"):
                assert "reserved" not in got, f"{row.status} order {order_id} still holds stock: {got}"
            else:
                assert got == expected_stock[row.status], f"{row.status} order {order_id}: reservations {got}"
        [(oversold,)] = self.rows("SELECT count(*) FROM inventory.stock_balances "
                                  "WHERE on_hand < 0 OR reserved < 0 OR reserved > on_hand")
        assert oversold == 0
        [(reserved,)] = self.rows("SELECT coalesce(sum(reserved), 0) FROM inventory.stock_balances")
        [(held,)] = self.rows("SELECT coalesce(sum(quantity), 0) FROM inventory.reservations WHERE status = 'reserved'")
        assert reserved == held, f"balances say {reserved} reserved, reservations hold {held}"
        with self.replica("inventory", 1).runtime.engine.connect() as conn:
            assert ledger_mismatches(conn) == []

        # One invoice per confirmed order, none for a rejected one, a credit note for a cancelled one.
        invoices = {row.order_id: row for row in self.rows(
            "SELECT i.invoice_id, i.order_id, i.customer_id, i.total, i.amount_paid, i.amount_credited, "
            "       (SELECT count(*) FROM finance.credit_notes n WHERE n.invoice_id = i.invoice_id) AS notes "
            "FROM finance.invoices i")}
        assert set(invoices) <= set(orders)
        for order_id, row in orders.items():
            invoice = invoices.get(order_id)
            if row.status == "rejected":
                assert invoice is None, f"rejected order {order_id} was invoiced"
            elif row.status == "cancelled":
                assert invoice is None or invoice.notes == 1, \
                    f"cancelled order {order_id} has invoice {invoice.invoice_id} and {invoice.notes} credit notes"
            else:
                assert invoice is not None and invoice.notes == 0, f"{row.status} order {order_id}: invoice {invoice}"
                assert row.invoice_id == invoice.invoice_id
                subtotal = row.total.quantize(CENT, ROUND_HALF_UP)
                assert invoice.total == subtotal + (subtotal * TAX_RATE).quantize(CENT, ROUND_HALF_UP)

        # crm's exposure = open orders (approved, not yet invoiced or closed) + what is unpaid on invoices.
        for customer in self.customers:
            open_orders = sum((row.total for row in orders.values() if row.customer_id == customer
                               and row.status in ("pending", "confirmed") and row.credit_step == "ok"
                               and not row.invoice_id), Decimal(0))
            unpaid = sum((max(Decimal(0), i.total - i.amount_paid - i.amount_credited) for i in invoices.values()
                          if i.customer_id == customer), Decimal(0))
            crm = self.replica("crm", 0)
            with crm.uow() as uow:
                exposure = uow.exposure.totals(customer, "EUR")
            assert (exposure.open_orders, exposure.unpaid_invoices) == (open_orders, unpaid), \
                f"crm's exposure of {customer}: {exposure}, orders and finance say open {open_orders}, unpaid {unpaid}"

        # The books: every entry balances, and so does the trial balance.
        [(debit, credit)] = self.rows("SELECT coalesce(sum(debit), 0), coalesce(sum(credit), 0) "
                                      "FROM finance.journal_lines")
        assert debit == credit
        unbalanced = self.rows("SELECT entry_id FROM finance.journal_lines GROUP BY entry_id "
                               "HAVING sum(debit) <> sum(credit)")
        assert unbalanced == []
        # One notification per event and channel, however often the event came.
        twice = self.rows("SELECT event_id, channel FROM notification.deliveries GROUP BY 1, 2 HAVING count(*) > 1")
        assert twice == []


def test_two_replicas_of_every_consumer_keep_every_invariant(template):
    run_state_machine_as_test(
        lambda: ReplicaMesh(template),
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, database=None,
                          print_blob=True, phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
