"""Orders' persistence: tables, the order repository and its unit of work."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from mesh import bulk, idempotency, sql
from mesh.errors import Aborted
from mesh.uow import UnitOfWork
from services.orders.domain import Order, OrderLine, OrderStatus, SagaStep
from services.orders.timeline import Step, StepKind

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
    sa.Column("stock_step", sa.Text, nullable=False, server_default="pending"),
    sa.Column("credit_step", sa.Text, nullable=False, server_default="pending"),
    sa.Column("invoice_id", sa.Text, nullable=False, server_default=""),
    sa.Column("invoiced_amount", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("amount_paid", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("cancellation_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("drives", sa.Integer, nullable=False, server_default="0"),
    sa.Column("driven_at", sa.DateTime(timezone=True)),
)

order_lines = sa.Table(
    "order_lines", metadata,
    sa.Column("order_id", sa.Text, sa.ForeignKey("orders.order_id"), primary_key=True),
    sa.Column("line_no", sa.Integer, primary_key=True),
    sa.Column("sku", sa.Text, nullable=False),
    sa.Column("warehouse_code", sa.Text, nullable=False),
    sa.Column("quantity", sa.BigInteger, nullable=False),
    sa.Column("unit_price", sa.Numeric(18, 4), nullable=False),
    sa.Column("shipped_quantity", sa.BigInteger, nullable=False, server_default="0"),
)

# An order's timeline (services/orders/timeline.py): one row per step, one step per business
# fact of an order (step_key), so a redelivered or republished event inserts nothing.
order_timeline = sa.Table(
    "order_timeline", metadata,
    sa.Column("seq", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("order_id", sa.Text, nullable=False),
    sa.Column("step_key", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("service", sa.Text, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("order_id", "step_key", name="one_step_per_fact"),
)


# The statements every saga step runs, built once: SQLAlchemy reuses their compiled form
# instead of building and hashing a new statement per call.
# An order and its lines in one statement (mesh.bulk.insert_with_rows): the lines go in only when the
# order did (its id returned); a twin placement with the same request id that committed first leaves
# both out.
# The columns an order's state changes (_state), and those it is placed with (_row).
_STATE = ["status", "version", "rejection_reason", "updated_at", "stock_step", "credit_step", "invoice_id",
          "invoiced_amount", "amount_paid", "cancellation_reason", "drives", "driven_at"]
_PLACED = ["order_id", "request_id", "customer_id", "currency_code", "created_at", *_STATE]
_LINE_COLUMNS = ["line_no", "sku", "warehouse_code", "quantity", "unit_price"]
# Its first timeline step goes in with it, in the same statement.
_FIRST_STEP = ("first_step AS (INSERT INTO order_timeline (order_id, step_key, kind, service, occurred_at, detail,"
               " event_id) SELECT order_id, :first_step_key, :first_kind, :first_service,"
               " CAST(:first_occurred_at AS timestamptz), :first_detail, :first_event_id FROM new_row)")
_INSERT = bulk.insert_with_rows(orders, _PLACED, order_lines, _LINE_COLUMNS, "order_id",
                                on_conflict="ON CONFLICT (request_id) DO NOTHING", also=_FIRST_STEP)
# The same behind the call's idempotency key and beside its event (mesh.idempotency.in_one_statement):
# no ON CONFLICT, so a twin's order fails the statement, key and event with it, and the guard answers
# the call the usual way.
_INSERT_CLAIMED = idempotency.with_claim(bulk.insert_with_rows(orders, _PLACED, order_lines, _LINE_COLUMNS,
                                                               "order_id", also=_FIRST_STEP, after="claimed"))
# An order with its lines in one round trip: one row per line, the order's columns repeated.
_WITH_LINES = (sa.select(orders, *(c.label(f"line_{c.name}") for c in order_lines.c if c.name != "order_id"))
               .join(order_lines, order_lines.c.order_id == orders.c.order_id)
               .order_by(order_lines.c.line_no))
_GET = _WITH_LINES.where(orders.c.order_id == sa.bindparam("id"))
_GET_FOR_UPDATE = _GET.with_for_update(of=orders)
# Several orders locked in one statement (a consumer's batch), in one global order: order id. Each
# order is looked up by its id (mesh.bulk.planned_as_few), and its lines in a subquery the planner keeps
# apart (OFFSET 0): planned freely, a batch of 30 orders scanned the whole orders table, and the lines
# were hashed against a scan of every line ever placed (3 ms a batch at 9,000 lines).
_batch_ids = (sa.func.unnest(sa.bindparam("ids", type_=ARRAY(sa.Text))).table_valued("id", with_ordinality="n")
              .render_derived(name="k"))
_lines_of_order = (sa.select(*(c for c in order_lines.c if c.name != "order_id"))
                   .where(order_lines.c.order_id == orders.c.order_id).offset(sa.literal_column("0")).lateral("line"))
_LOCK_MANY = (sa.select(orders, *(c.label(f"line_{c.name}") for c in _lines_of_order.c))
              .select_from(_batch_ids.join(orders, sa.and_(orders.c.order_id == _batch_ids.c.id,
                                                           sa.text(bulk.planned_as_few("k.n"))))
                           .join(_lines_of_order, sa.true()))
              .order_by(orders.c.order_id, _lines_of_order.c.line_no).with_for_update(of=orders))
_BY_REQUEST = _WITH_LINES.where(orders.c.request_id == sa.bindparam("request"))
_LINES = sa.select(order_lines).where(order_lines.c.order_id == sa.bindparam("id")).order_by(order_lines.c.line_no)
# Every order a transaction changed, written in one statement at its commit, each only at the
# version it was loaded at (a lost update changes fewer rows than there are orders).
_SAVE_MANY = bulk.update_many(orders, {"order_id": "order_id", "version": "loaded"}, _STATE)
# PENDING orders whose deadline passed (since placement or their last drive), oldest first, after
# a (created_at, order_id) key; the index orders_by_status_created serves it.
_DUE = (sa.select(orders.c.created_at, orders.c.order_id)
        .where(orders.c.status == str(OrderStatus.PENDING),
               sa.func.coalesce(orders.c.driven_at, orders.c.created_at)
               <= sa.func.now() - sa.bindparam("deadline", type_=sa.Interval),
               sa.tuple_(orders.c.created_at, orders.c.order_id)
               > sa.tuple_(sa.bindparam("after_created", type_=sa.DateTime(timezone=True)), sa.bindparam("after_id")))
        .order_by(orders.c.created_at, orders.c.order_id).limit(sa.bindparam("limit")))
_NOW = sa.select(sa.func.now())
_SAVE_SHIPPED = order_lines.update().where(order_lines.c.order_id == sa.bindparam("id"),
                                           order_lines.c.line_no == sa.bindparam("line"))


class OrderRepository:
    """Orders read for update are kept for the rest of the transaction (a batch's events about one
    order change one object); saved orders are written together when it commits (flush)."""

    def __init__(self, conn: sa.Connection,
                 claimed: Callable[[sa.TextClause, Mapping[str, Any]], None] | None = None) -> None:
        """claimed: the unit of work's claimed_writer, which add() then hands its write to."""
        self.conn = conn
        self._claimed = claimed
        self._shipped: dict[str, dict[int, int]] = {}  # order id -> shipped quantity per line, as loaded
        self._locked: dict[str, Order] = {}  # read for update in this transaction
        self._changed: dict[str, Order] = {}  # saved, written at flush

    def add(self, order: Order, first_step: Step) -> bool:
        """Inserts the order, its lines and its first timeline step; False (and nothing inserted)
        when another order already has its request id (a twin request that committed first, even
        while this one waited for it)."""
        if not order.lines:
            raise ValueError(f"order {order.order_id} has no lines")  # domain.new_order refuses that first
        if first_step.order_id != order.order_id:
            raise ValueError(f"step {first_step.key} is not order {order.order_id}'s")
        lines = bulk.rows([{c: getattr(line, c) for c in _LINE_COLUMNS} for line in order.lines])
        step = {f"first_{name}": value for name, value in _step_row(first_step).items() if name != "order_id"}
        params = {**_row(order), **lines, **step}
        if self._claimed is not None:  # sent by the guard, with the call's key: any conflict fails it,
            self._claimed(_INSERT_CLAIMED, params)  # and the call runs again without a claimed writer
        elif sql.run(self.conn, _INSERT, params).first() is None:
            return False
        self._shipped[order.order_id] = {line.line_no: line.shipped_quantity for line in order.lines}
        return True

    def get(self, order_id: str, for_update: bool = False) -> Order | None:
        if order_id in self._locked:
            return self._locked[order_id]
        order = self._joined(self.conn.execute(_GET_FOR_UPDATE if for_update else _GET, {"id": order_id}).all())
        if for_update and order is not None:
            self._locked[order_id] = order
        return order

    def lock(self, order_ids: list[str]) -> None:
        """Locks and reads these orders in one statement; get() then answers from what it read."""
        wanted = sorted(set(order_ids) - self._locked.keys())
        if not wanted:
            return
        rows_of: dict[str, list] = {}
        for row in sql.run(self.conn, _LOCK_MANY, {"ids": wanted}):
            rows_of.setdefault(row.order_id, []).append(row)
        for rows in rows_of.values():
            if (order := self._joined(rows)) is not None:
                self._locked[order.order_id] = order

    def by_request(self, request_id: str) -> Order | None:
        return self._joined(self.conn.execute(_BY_REQUEST, {"request": request_id}).all())

    def save(self, order: Order) -> None:
        """Writes the order's state when the transaction commits (flush)."""
        self._changed[order.order_id] = order

    def flush(self) -> None:
        """Writes every saved order; the version check refuses a lost update."""
        if not self._changed:
            return
        changed, self._changed = list(self._changed.values()), {}
        rows = [{"order_id": order.order_id, "loaded": order.loaded_version, **_state(order)} for order in changed]
        if sql.run(self.conn, _SAVE_MANY, bulk.rows(rows)).rowcount != len(rows):
            which = (f"order {changed[0].order_id}" if len(changed) == 1
                     else "one of the orders " + ", ".join(order.order_id for order in changed))
            raise Aborted(f"{which} was changed by another request at the same time; read it again and retry")
        for order in changed:
            order.loaded_version = order.version
            self._save_shipped(order)

    def _save_shipped(self, order: Order) -> None:
        loaded = self._shipped.get(order.order_id, {})
        changed = [{"id": order.order_id, "line": line.line_no, "shipped_quantity": line.shipped_quantity}
                   for line in order.lines if loaded.get(line.line_no) != line.shipped_quantity]
        if changed:
            self.conn.execute(_SAVE_SHIPPED, changed)
        self._shipped[order.order_id] = {line.line_no: line.shipped_quantity for line in order.lines}

    def past_deadline(self, deadline: dt.timedelta, after: tuple[dt.datetime, str] | None,
                      limit: int) -> list[tuple[dt.datetime, str]]:
        """(created_at, order_id) of PENDING orders whose deadline passed, after a key, read
        without locks: the caller locks each and looks again."""
        start = after or (dt.datetime.min.replace(tzinfo=dt.UTC), "")
        return [tuple(row) for row in self.conn.execute(_DUE, {"deadline": deadline, "after_created": start[0],
                                                               "after_id": start[1], "limit": limit})]

    def now(self) -> dt.datetime:
        """The database's clock (its transaction's start): one clock for every replica."""
        return self.conn.execute(_NOW).scalar_one()

    def page(self, *, customer_id: str, status: OrderStatus | None, created_after, created_before,
             after: tuple[str, str] | None, limit: int) -> list[Order]:
        """Orders newest first (created_at desc, order_id desc), for keyset paging."""
        query = sa.select(orders).order_by(orders.c.created_at.desc(), orders.c.order_id.desc()).limit(limit)
        if customer_id:
            query = query.where(orders.c.customer_id == customer_id)
        if status is not None:
            query = query.where(orders.c.status == str(status))
        if created_after is not None:
            query = query.where(orders.c.created_at >= created_after)
        if created_before is not None:
            query = query.where(orders.c.created_at < created_before)
        if after is not None:
            query = query.where(sa.tuple_(orders.c.created_at, orders.c.order_id)
                                < sa.tuple_(sa.cast(after[0], sa.DateTime(timezone=True)), after[1]))
        return [self._load(row) for row in self.conn.execute(query)]

    def _joined(self, rows) -> Order | None:
        """The order of _WITH_LINES's rows (every order has a line), None for none."""
        if not rows:
            return None
        return self._order(rows[0], [OrderLine(r.line_line_no, r.line_sku, r.line_warehouse_code, r.line_quantity,
                                               r.line_unit_price, r.line_shipped_quantity) for r in rows])

    def _load(self, row) -> Order:
        return self._order(row, [OrderLine(r.line_no, r.sku, r.warehouse_code, r.quantity, r.unit_price,
                                           r.shipped_quantity)
                                 for r in self.conn.execute(_LINES, {"id": row.order_id})])

    def _order(self, row, lines: list[OrderLine]) -> Order:
        self._shipped[row.order_id] = {line.line_no: line.shipped_quantity for line in lines}
        return Order(order_id=row.order_id, request_id=row.request_id, customer_id=row.customer_id,
                     currency_code=row.currency_code, lines=lines, status=OrderStatus(row.status),
                     version=row.version, rejection_reason=row.rejection_reason, created_at=row.created_at,
                     updated_at=row.updated_at, stock_step=SagaStep(row.stock_step),
                     credit_step=SagaStep(row.credit_step), invoice_id=row.invoice_id,
                     invoiced_amount=row.invoiced_amount, amount_paid=row.amount_paid,
                     cancellation_reason=row.cancellation_reason, drives=row.drives, driven_at=row.driven_at,
                     loaded_version=row.version)


def _state(order: Order) -> dict:
    return {"status": str(order.status), "version": order.version, "rejection_reason": order.rejection_reason,
            "updated_at": order.updated_at, "stock_step": str(order.stock_step),
            "credit_step": str(order.credit_step), "invoice_id": order.invoice_id,
            "invoiced_amount": order.invoiced_amount, "amount_paid": order.amount_paid,
            "cancellation_reason": order.cancellation_reason, "drives": order.drives, "driven_at": order.driven_at}


def _row(order: Order) -> dict:
    return {"order_id": order.order_id, "request_id": order.request_id, "customer_id": order.customer_id,
            "currency_code": order.currency_code, "created_at": order.created_at, **_state(order)}


# A transaction's steps in one statement, in the order added (seq counts up in it).
_ADD_STEPS = bulk.insert_many(order_timeline, ["order_id", "step_key", "kind", "service", "occurred_at", "detail",
                                               "event_id"], "ON CONFLICT (order_id, step_key) DO NOTHING")
# Oldest first, after a (occurred_at, seq) key; the index order_timeline_by_time serves it.
_STEPS = (sa.select(order_timeline)
          .where(order_timeline.c.order_id == sa.bindparam("id"),
                 sa.tuple_(order_timeline.c.occurred_at, order_timeline.c.seq)
                 > sa.tuple_(sa.bindparam("after_at", type_=sa.DateTime(timezone=True)), sa.bindparam("after_seq")))
          .order_by(order_timeline.c.occurred_at, order_timeline.c.seq).limit(sa.bindparam("limit")))
_STEP_KINDS = sa.select(order_timeline.c.kind).where(order_timeline.c.order_id == sa.bindparam("id")).distinct()


def _step_row(step: Step) -> dict[str, object]:
    return {"order_id": step.order_id, "step_key": step.key, "kind": str(step.kind), "service": step.service,
            "occurred_at": step.at, "detail": step.detail, "event_id": step.event_id}


class TimelineRepository:
    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self._pending: list[dict] = []

    def add(self, step: Step) -> None:
        """Records a step when the transaction commits (flush), in the order added; nothing when
        its order has that step already (a redelivered or republished event)."""
        self._pending.append(_step_row(step))

    def flush(self) -> None:
        if self._pending:
            rows, self._pending = self._pending, []
            sql.run(self.conn, _ADD_STEPS, bulk.rows(rows))

    def steps(self, order_id: str, after: tuple[dt.datetime, int] | None, limit: int) -> list[Step]:
        """The order's steps in time order (ties in the order recorded), after a key."""
        start = after or (dt.datetime.min.replace(tzinfo=dt.UTC), 0)
        rows = self.conn.execute(_STEPS, {"id": order_id, "after_at": start[0], "after_seq": start[1],
                                          "limit": limit})
        return [Step(r.order_id, r.step_key, StepKind(r.kind), r.service, r.occurred_at, r.detail, r.event_id, r.seq)
                for r in rows]

    def kinds(self, order_id: str) -> set[StepKind]:
        return {StepKind(kind) for kind in self.conn.execute(_STEP_KINDS, {"id": order_id}).scalars()}


class OrdersUnitOfWork(UnitOfWork):
    def start(self) -> None:
        self.orders = OrderRepository(self.connection, self.claimed_writer)
        self.timeline = TimelineRepository(self.connection)

    def flush(self) -> None:
        self.orders.flush()
        self.timeline.flush()
