"""Orders' persistence: tables, the order repository and its unit of work."""
from __future__ import annotations

import sqlalchemy as sa

from mesh.uow import UnitOfWork
from services.orders.domain import Order, OrderLine, OrderStatus

metadata = sa.MetaData()

orders = sa.Table(
    "orders", metadata,
    sa.Column("order_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False, unique=True),
    sa.Column("customer_id", sa.Text, nullable=False),
    sa.Column("currency_code", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("rejection_reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
)


class OrderRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    def add(self, order: Order) -> None:
        self.conn.execute(orders.insert().values(**_row(order)))
        self.conn.execute(order_lines.insert(), [
            {"order_id": order.order_id, "line_no": line.line_no, "sku": line.sku,
             "warehouse_code": line.warehouse_code, "quantity": line.quantity, "unit_price": line.unit_price}
            for line in order.lines])

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        query = sa.select(orders).where(orders.c.order_id == order_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return self._load(row) if row else None

    def by_request(self, request_id: str) -> Order | None:
        row = self.conn.execute(sa.select(orders).where(orders.c.request_id == request_id)).first()
        return self._load(row) if row else None

    def save(self, order: Order) -> None:
        """Writes the order's state; the version check refuses a lost update."""
        updated = self.conn.execute(orders.update().where(
            orders.c.order_id == order.order_id, orders.c.version == order.version - 1,
        ).values(status=str(order.status), version=order.version, rejection_reason=order.rejection_reason,
                 updated_at=order.updated_at)).rowcount
        if updated != 1:
            raise RuntimeError(f"order {order.order_id} changed concurrently")

    def _load(self, row) -> Order:
        lines = [OrderLine(r.line_no, r.sku, r.warehouse_code, r.quantity, r.unit_price)
                 for r in self.conn.execute(sa.select(order_lines).where(order_lines.c.order_id == row.order_id)
                                            .order_by(order_lines.c.line_no))]
        return Order(order_id=row.order_id, request_id=row.request_id, customer_id=row.customer_id,
                     currency_code=row.currency_code, lines=lines, status=OrderStatus(row.status),
                     version=row.version, rejection_reason=row.rejection_reason, created_at=row.created_at,
                     updated_at=row.updated_at)


def _row(order: Order) -> dict:
    return {"order_id": order.order_id, "request_id": order.request_id, "customer_id": order.customer_id,
            "currency_code": order.currency_code, "status": str(order.status), "version": order.version,
            "rejection_reason": order.rejection_reason, "created_at": order.created_at,
            "updated_at": order.updated_at}


class OrdersUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.orders = OrderRepository(self.connection)
