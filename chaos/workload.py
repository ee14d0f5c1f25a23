"""The journaled workload: placements, cancellations, shipments and payments, as a caller that must
not lose or double anything would send them.

Every request is written to the journal (and flushed) before it is sent, and a call that fails for a
reason that says nothing about the request (unavailable, deadline, aborted) is sent again with the same
request id until it is answered or its time runs out. The journal is what the audit holds the mesh to:
an order whose placement was answered must exist; a request id must not give two orders; a payment must
be applied at most once.
"""
from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
import uuid
from pathlib import Path

import grpc

from erp.orders.v1 import orders_pb2 as ord_pb
from erp_client import ErpClient
from erp_client.client import Line

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
             grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
PENDING = ord_pb.ORDER_STATUS_PENDING
CONFIRMED = ord_pb.ORDER_STATUS_CONFIRMED
INVOICED = ord_pb.ORDER_STATUS_INVOICED
WAREHOUSE = "MAIN"
SKUS = [f"CHAOS-{i:02d}" for i in range(24)]
SCARCE_SKU = "CHAOS-SCARCE"  # little stock: some orders are rejected for stock, and release what they held
SCARCE_STOCK = 40
STOCK = 10_000_000
UNKNOWN_CUSTOMER = "CHAOS-NOBODY"  # crm rejects its orders; notification has no contact for it


def customers(count: int) -> list[str]:
    return [f"CHAOS-CUST-{i:03d}" for i in range(count)]


class Journal:
    """One JSON line per request before it is sent, and per answer once it is received."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a", buffering=1)  # noqa: SIM115 - open for the whole run
        self._lock = threading.Lock()
        self.placed: dict[str, dict] = {}  # request id -> {customer, lines, order_id (once answered)}
        self.payments: dict[str, dict] = {}  # request id -> {invoice_id, amount, answered}
        self.cancel_requested: set[str] = set()
        self.ship_requested: set[str] = set()

    def write(self, **record) -> None:
        with self._lock:
            self._file.write(json.dumps({"t": round(time.time(), 3), **record}) + "\n")
            self._file.flush()

    def close(self) -> None:
        self._file.close()


def call(fn, budget: float, stats: dict):
    """fn() until it answers, a non-retryable error, or `budget` seconds; None when time ran out."""
    end = time.monotonic() + budget
    delay = 0.1
    while True:
        try:
            return fn()
        except grpc.RpcError as err:
            if err.code() not in RETRYABLE or time.monotonic() + delay > end:
                if err.code() in RETRYABLE:
                    stats["gave up"] += 1
                    return None
                raise
            stats["retried"] += 1
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@dataclasses.dataclass
class Workload:
    client: ErpClient
    journal: Journal
    customer_ids: list[str]
    call_budget: float = 120.0  # how long one request is retried before the caller gives up
    settle_budget: float = 120.0  # how long a journey waits for its order to leave PENDING

    def __post_init__(self) -> None:
        self.stats = {"placed": 0, "cancelled": 0, "shipped": 0, "paid": 0, "retried": 0, "gave up": 0,
                      "refused": 0}
        self._stats_lock = threading.Lock()

    def seed(self) -> None:
        c = self.client
        with_retry = lambda fn: call(fn, self.call_budget, self.stats)  # noqa: E731
        with_retry(lambda: _created(lambda: c.create_warehouse(WAREHOUSE, "Main")))
        for sku in [*SKUS, SCARCE_SKU]:
            with_retry(lambda sku=sku: _created(lambda: c.create_product(sku, sku)))
            amount = SCARCE_STOCK if sku == SCARCE_SKU else STOCK
            with_retry(lambda sku=sku, amount=amount: c.adjust_stock(sku, WAREHOUSE, amount, "opening stock",
                                                                     request_id=f"chaos-open-{sku}"))
        for customer in self.customer_ids:
            with_retry(lambda customer=customer: _created(lambda: c.create_customer(
                customer, customer, "1000000000.00", "EUR", email=f"{customer.lower()}@example.test")))

    def journey(self, seed: int) -> None:
        """One order's life: placed; then cancelled at once, or (once settled) shipped and/or paid."""
        rng = random.Random(seed)
        stats = {"retried": 0, "gave up": 0}
        try:
            self._journey(rng, stats)
        except grpc.RpcError as err:
            self.journal.write(op="refused", code=err.code().name, details=err.details())
            stats["refused"] = 1
        with self._stats_lock:
            for k, v in stats.items():
                self.stats[k] = self.stats.get(k, 0) + v

    def _journey(self, rng: random.Random, stats: dict) -> None:
        c, j = self.client, self.journal
        customer = UNKNOWN_CUSTOMER if rng.random() < 0.02 else rng.choice(self.customer_ids)
        skus = rng.sample(SKUS, rng.randint(1, 3)) + ([SCARCE_SKU] if rng.random() < 0.05 else [])
        lines = [Line(sku, rng.randint(1, 4), f"{rng.randint(1, 90)}.{rng.randint(0, 99):02d}") for sku in skus]
        request_id = str(uuid.uuid4())
        j.write(op="place", request_id=request_id, customer=customer,
                lines=[[x.sku, x.quantity, x.unit_price] for x in lines])
        j.placed[request_id] = {"customer": customer, "lines": [(x.sku, x.quantity) for x in lines]}
        order = call(lambda: c.place_order(customer, lines, request_id=request_id), self.call_budget, stats)
        if order is None:
            return
        j.placed[request_id]["order_id"] = order.order_id
        j.write(op="placed", request_id=request_id, order_id=order.order_id)
        stats["placed"] = 1
        roll = rng.random()
        if roll < 0.25:
            self._cancel(order.order_id, stats)
            return
        settled = self._settled(order.order_id, stats)
        if settled is None or settled.status not in (CONFIRMED, INVOICED):
            return
        if roll < 0.35:
            self._cancel(order.order_id, stats)
            return
        if roll < 0.75:
            self._ship(order.order_id, stats)
        if roll > 0.5:
            self._pay(order.order_id, stats, whole=rng.random() < 0.7)

    def _settled(self, order_id: str, stats: dict):
        end = time.monotonic() + self.settle_budget
        while time.monotonic() < end:
            order = call(lambda: self.client.get_order(order_id), self.call_budget, stats)
            if order is not None and order.status != PENDING:
                return order
            time.sleep(0.25)
        return None

    def _cancel(self, order_id: str, stats: dict) -> None:
        self.journal.write(op="cancel", order_id=order_id)
        self.journal.cancel_requested.add(order_id)
        try:
            if call(lambda: self.client.cancel_order(order_id, "chaos: changed their mind"), self.call_budget, stats):
                stats["cancelled"] = 1
        except grpc.RpcError as err:  # rejected meanwhile, or a retry after the first try did it
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise

    def _ship(self, order_id: str, stats: dict) -> None:
        self.journal.write(op="ship", order_id=order_id)
        self.journal.ship_requested.add(order_id)
        try:
            if call(lambda: self.client.mark_shipped(order_id), self.call_budget, stats):
                stats["shipped"] = 1
        except grpc.RpcError as err:  # a retry after the first try shipped it
            if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
                raise

    def _pay(self, order_id: str, stats: dict, whole: bool) -> None:
        end = time.monotonic() + self.settle_budget
        invoice = None
        while invoice is None and time.monotonic() < end:
            invoices = call(lambda: self.client.invoices_for_order(order_id), self.call_budget, stats)
            invoice = invoices[0] if invoices else None
            if invoice is None:
                time.sleep(0.25)
        if invoice is None:
            return
        amount = invoice.total.amount if whole else f"{max(0.01, float(invoice.total.amount) / 2):.2f}"
        request_id = str(uuid.uuid4())
        self.journal.write(op="pay", request_id=request_id, invoice_id=invoice.invoice_id, amount=amount)
        self.journal.payments[request_id] = {"invoice_id": invoice.invoice_id, "amount": amount, "answered": False}
        answer = call(lambda: self.client.record_payment(invoice.invoice_id, amount, request_id=request_id),
                      self.call_budget, stats)
        if answer is not None:
            self.journal.payments[request_id]["answered"] = True
            self.journal.write(op="paid", request_id=request_id)
            stats["paid"] = 1


def _created(create):
    """Creates, or finds it was created by an earlier try whose answer was lost."""
    try:
        return create()
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.ALREADY_EXISTS:
            return None
        raise
