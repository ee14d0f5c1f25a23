"""In-memory stand-ins for crm's repositories (used with tests.unit.fakes.FakeUnitOfWork).

They keep the contracts the handlers rely on, including the ones PostgreSQL enforces
(primary keys, the customers version check, the CHECK constraints of the migration),
and they log every call in one shared list so a test can see the order of things, for
example that the customer row is locked before the exposure is read. Stored values are
frozen dataclasses, so a handler that changes one and forgets to save it changes nothing.
"""
from __future__ import annotations

import dataclasses
from decimal import Decimal

from mesh.errors import Aborted
from services.crm.domain import (
    BeforeDeciding,
    ClosedBy,
    CreditDecision,
    Customer,
    CustomerStatus,
    Exposure,
    InvoiceBalance,
    OrderExposure,
)
from tests.unit.fakes import FakeIntegrityError


class FakeCustomers:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.rows: dict[str, Customer] = {}
        self.status_changes: list[tuple[str, int, str, str, str]] = []  # id, version, from, to, reason

    def snapshot(self):
        return dict(self.rows), list(self.status_changes)

    def restore(self, snap) -> None:
        rows, changes = snap
        self.rows, self.status_changes = dict(rows), list(changes)

    def get(self, customer_id: str, for_update: bool = False) -> Customer | None:
        self.calls.append(f"lock customer {customer_id}" if for_update else f"get customer {customer_id}")
        return self.rows.get(customer_id)

    def lock_for_exposure(self, customer_id: str) -> Customer | None:
        self.calls.append(f"lock customer {customer_id}")
        found = self.rows.get(customer_id)
        return dataclasses.replace(found, contacts=()) if found else None

    def list(self, after: str | None, status: CustomerStatus | None, limit: int) -> list[Customer]:
        found = sorted((c for c in self.rows.values()
                        if (after is None or c.customer_id > after) and (status is None or c.status is status)),
                       key=lambda c: c.customer_id)
        return found[:limit]

    def add(self, customer: Customer) -> bool:
        self.calls.append(f"add customer {customer.customer_id}")
        if customer.customer_id in self.rows:
            return False
        _check_customer(customer)
        self.rows[customer.customer_id] = customer
        return True

    def save(self, customer: Customer) -> None:
        """Same rule as the SQL UPDATE ... WHERE version = customer.version - 1."""
        self.calls.append(f"save customer {customer.customer_id}")
        stored = self.rows.get(customer.customer_id)
        if stored is None or stored.version != customer.version - 1:
            raise Aborted(f"customer {customer.customer_id} changed concurrently")
        _check_customer(customer)
        # Only status, its reason, the credit limit, the webhook and the version are written.
        self.rows[customer.customer_id] = dataclasses.replace(
            stored, status=customer.status, status_reason=customer.status_reason,
            credit_limit=customer.credit_limit, webhook_url=customer.webhook_url,
            webhook_signing=customer.webhook_signing, version=customer.version)

    def record_status_change(self, before: Customer, after: Customer) -> None:
        if after.customer_id not in self.rows:
            raise FakeIntegrityError(f"foreign key: no customer {after.customer_id}")
        self.status_changes.append((after.customer_id, after.version, str(before.status), str(after.status),
                                    after.status_reason))


def _check_customer(c: Customer) -> None:
    if c.credit_limit < 0:
        raise FakeIntegrityError(f"credit_limit_not_negative: {c}")
    if not 0 <= c.payment_terms_days <= 365:
        raise FakeIntegrityError(f"payment_terms_in_range: {c}")


class FakeCredit:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls
        self.decisions: dict[str, CreditDecision] = {}
        self.exposure: FakeExposure | None = None  # where an approval opens its order (FakeExposure sets it)

    def snapshot(self):
        return dict(self.decisions)

    def restore(self, snap) -> None:
        self.decisions = dict(snap)

    def decision(self, order_id: str) -> CreditDecision | None:
        self.calls.append(f"decision {order_id}")
        return self.decisions.get(order_id)

    def add(self, decision: CreditDecision) -> None:
        self.calls.append(f"decide {decision.order_id}")
        if decision.order_id in self.decisions:
            raise FakeIntegrityError(f"duplicate decision for order {decision.order_id}")
        if decision.approved != (decision.reason == ""):
            raise FakeIntegrityError(f"reason_iff_rejected: {decision}")
        if decision.approved:
            assert self.exposure is not None, "an approval opens its order: give FakeExposure this FakeCredit"
            self.exposure.open_order(OrderExposure(decision.order_id, decision.customer_id, decision.currency_code,
                                                   decision.order_total))
        self.decisions[decision.order_id] = decision


class FakeExposure:
    def __init__(self, calls: list[str], credit: FakeCredit | None = None) -> None:
        self.calls = calls
        self.credit = credit  # its decisions, for before_deciding
        if credit is not None:
            credit.exposure = self
        self.orders: dict[str, OrderExposure] = {}
        self.invoices: dict[str, InvoiceBalance] = {}
        self.credit_notes: dict[str, tuple[str, str, Decimal]] = {}

    def snapshot(self):
        return dict(self.orders), dict(self.invoices), dict(self.credit_notes)

    def restore(self, snap) -> None:
        orders, invoices, notes = snap
        self.orders, self.invoices, self.credit_notes = dict(orders), dict(invoices), dict(notes)

    def totals(self, customer_id: str, currency_code: str) -> Exposure:
        self.calls.append(f"totals {customer_id}")
        open_total = sum((o.amount for o in self.orders.values()
                          if o.customer_id == customer_id and o.currency_code == currency_code and o.is_open),
                         Decimal(0))
        unpaid = sum((i.amount_due for i in self.invoices.values()
                      if i.customer_id == customer_id and i.currency_code == currency_code), Decimal(0))
        return Exposure(open_total, unpaid)

    def before_deciding(self, order_id: str, customer_id: str, currency_code: str) -> BeforeDeciding:
        self.calls.append(f"decision {order_id}")
        order = self.orders.get(order_id)
        return BeforeDeciding(self.credit is not None and order_id in self.credit.decisions,
                              order.closed_by if order is not None else None, self.totals(customer_id, currency_code))

    def open_order(self, order: OrderExposure) -> None:
        self.calls.append(f"open order {order.order_id}")
        if order.order_id in self.orders:
            raise FakeIntegrityError(f"duplicate open order {order.order_id}")
        if order.amount is None or order.amount < 0:
            raise FakeIntegrityError(f"amount_not_negative / open_orders_have_an_amount: {order}")
        self.orders[order.order_id] = order

    def close_order(self, order_id: str, customer_id: str, closed_by: ClosedBy) -> bool:
        self.calls.append(f"close order {order_id}")
        current = self.orders.get(order_id)
        if current is None:
            self.orders[order_id] = OrderExposure(order_id, customer_id, "", None, closed_by)
            return True
        if not current.is_open:
            return False
        self.orders[order_id] = dataclasses.replace(current, closed_by=closed_by)
        return True

    def invoice(self, invoice_id: str, customer_id: str, order_id: str, currency_code: str) -> InvoiceBalance:
        self.calls.append(f"invoice {invoice_id}")
        return self.invoices.setdefault(invoice_id, InvoiceBalance(invoice_id, customer_id, order_id, currency_code))

    def invoice_replaces_order(self, balance: InvoiceBalance) -> None:
        self.close_order(balance.order_id, balance.customer_id, ClosedBy.INVOICED)
        self.save_invoice(balance)

    def save_invoice(self, balance: InvoiceBalance) -> None:
        self.calls.append(f"save invoice {balance.invoice_id}")
        assert balance.invoice_id in self.invoices, f"save of an invoice row that does not exist: {balance}"
        if balance.amount_due < 0:
            raise FakeIntegrityError(f"amount_due_not_negative: {balance}")
        self.invoices[balance.invoice_id] = balance

    def add_credit_note(self, credit_note_id: str, invoice_id: str, customer_id: str, unpaid_amount: Decimal) -> bool:
        self.calls.append(f"credit note {credit_note_id}")
        if credit_note_id in self.credit_notes:
            return False
        self.credit_notes[credit_note_id] = (invoice_id, customer_id, unpaid_amount)
        return True
