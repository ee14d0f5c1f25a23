"""The order saga's gauges, read from the orders table on scrape (mesh.sampled): how many orders
are in each status, and how long the oldest PENDING one has waited, beside the deadline it has."""
from __future__ import annotations

import sqlalchemy as sa

from mesh.sampled import Family, Gauges, Sample
from mesh.service import Runtime
from services.orders.adapters import OrdersUnitOfWork
from services.orders.deadline import Deadline
from services.orders.domain import OrderStatus

ORDERS = Family("erp_orders", "orders by status", ("service", "status"))
OLDEST_PENDING_AGE = Family("erp_orders_oldest_pending_age_seconds",
                            "how long the oldest PENDING order has waited since placement; 0 when none")
PENDING_DEADLINE = Family("erp_order_pending_deadline_seconds",
                          "ERP_ORDER_PENDING_DEADLINE_SECONDS: a PENDING order older than this is driven again")

_BY_STATUS = sa.text("SELECT status, count(*) AS n FROM orders GROUP BY status")
_OLDEST_PENDING = sa.text("SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM orders "
                          "WHERE status = :pending")


def build(runtime: Runtime[OrdersUnitOfWork]) -> Gauges:
    deadline = Deadline.from_settings(runtime.settings).after.total_seconds()

    def sample(conn: sa.Connection) -> list[Sample]:
        counts = {row.status: row.n for row in conn.execute(_BY_STATUS)}
        oldest = conn.execute(_OLDEST_PENDING, {"pending": OrderStatus.PENDING.value}).scalar_one()
        return [*((ORDERS, (status.name,), float(counts.get(status.value, 0))) for status in OrderStatus),
                (OLDEST_PENDING_AGE, (), float(oldest)),
                (PENDING_DEADLINE, (), deadline)]

    return Gauges((ORDERS, OLDEST_PENDING_AGE, PENDING_DEADLINE), (sample,))
