"""A batch's statements look its keys up by index, whatever the size of the tables they touch.

PostgreSQL plans json_to_recordset as 100 rows; for 100 keys, hashing a whole table of a few
thousand rows looks cheaper than probing its index, so a batch of 5 used to read every row of
the orders, reservations or credit decisions ever written (mesh/bulk.py's doc has the figures).
These tests fill a table with 5,000 rows and read the plan PostgreSQL chooses for the batch
statements that touch it, before the table has statistics (a new database, until autovacuum
first looks) and after ANALYZE (every database after that).
"""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from mesh import bulk

ROWS = 5000


def plan(conn: sa.Connection, statement: sa.Executable, params: dict) -> str:
    """The plan PostgreSQL chooses for the statement with these parameters, as EXPLAIN prints it."""
    compiled = statement.compile(dialect=postgresql.dialect())  # type: ignore[no-untyped-call]
    return "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.construct_params(params)).scalars())


def both_ways(conn: sa.Connection, tables: list[str], check) -> None:
    """check() before the tables have statistics, then after ANALYZE."""
    check()
    for table in tables:
        conn.execute(sa.text(f"ANALYZE {table}"))
    check()


def assert_no_full_read(found: str, *tables: str) -> None:
    for table in tables:
        assert f"Seq Scan on {table}" not in found, found
    assert "hashed SubPlan" not in found, found


def test_orders_batch_locks_and_writes_its_orders_by_key(engine_for):
    from services.orders.adapters import _LOCK_MANY, _SAVE_MANY

    with engine_for("orders").begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO orders (order_id, request_id, customer_id, currency_code, status, version, rejection_reason,"
            " created_at, updated_at) SELECT 'O-' || g, 'R-' || g, 'C', 'EUR', 'pending', 1, '', now(), now()"
            " FROM generate_series(1, :n) AS g"), {"n": ROWS})
        conn.execute(sa.text(
            "INSERT INTO order_lines (order_id, line_no, sku, warehouse_code, quantity, unit_price)"
            " SELECT o.order_id, l, 'SKU', 'MAIN', 1, 1 FROM orders o, generate_series(1, 3) AS l"))
        state = {"status": "confirmed", "version": 2, "rejection_reason": "", "updated_at": None, "stock_step": "done",
                 "credit_step": "done", "invoice_id": "", "invoiced_amount": 0, "amount_paid": 0,
                 "cancellation_reason": "", "drives": 0, "driven_at": None}
        saved = bulk.rows([{"order_id": f"O-{n}", "loaded": 1, **state} for n in (7, 70, 700)])

        def check() -> None:
            batch = [f"O-{n}" for n in range(100, 4000, 130)]  # 30 orders, as a busy consumer's batch has
            assert_no_full_read(plan(conn, _LOCK_MANY, {"ids": batch}), "orders", "order_lines")
            assert_no_full_read(plan(conn, _SAVE_MANY, saved), "orders")

        both_ways(conn, ["orders", "order_lines"], check)


def test_inventory_batch_reads_what_its_orders_did_and_locks_its_balances_by_key(engine_for):
    from services.inventory.adapters import _LOCK_KEYS, _SEEN

    with engine_for("inventory").begin() as conn:
        conn.execute(sa.text("INSERT INTO warehouses (code, name) VALUES ('MAIN', 'main')"))
        conn.execute(sa.text("INSERT INTO products (sku, name, unit_of_measure) SELECT 'SKU-' || g, 'p', 'each'"
                             " FROM generate_series(1, :n) AS g"), {"n": ROWS})
        conn.execute(sa.text("INSERT INTO stock_balances (sku, warehouse_code, on_hand, reserved, version)"
                             " SELECT sku, 'MAIN', 10, 0, 1 FROM products"))
        conn.execute(sa.text("INSERT INTO reservations (order_id, sku, warehouse_code, quantity, status)"
                             " SELECT 'O-' || g, 'SKU-1', 'MAIN', 1, 'reserved' FROM generate_series(1, :n) AS g"),
                     {"n": ROWS})
        seen = bulk.rows([{"order_id": "O-7"}, {"order_id": "O-new"}])

        def check() -> None:
            assert_no_full_read(plan(conn, _SEEN, seen), "reservations", "closed_orders")
            assert_no_full_read(plan(conn, _LOCK_KEYS, {"skus": ["SKU-3", "SKU-30"], "codes": ["MAIN", "MAIN"]}),
                                "stock_balances")

        both_ways(conn, ["products", "stock_balances", "reservations"], check)


def test_crm_batch_reads_its_orders_decisions_by_key(engine_for):
    from services.crm.adapters import _BEFORE_DECIDING_MANY

    with engine_for("crm").begin() as conn:
        conn.execute(sa.text("INSERT INTO credit_decisions (order_id, customer_id, approved, reason, currency_code)"
                             " SELECT 'O-' || g, 'C', true, '', 'EUR' FROM generate_series(1, :n) AS g"), {"n": ROWS})
        asked = bulk.rows([{"order_id": "O-7", "customer_id": "C", "currency_code": "EUR"}])
        both_ways(conn, ["credit_decisions"],
                  lambda: assert_no_full_read(plan(conn, _BEFORE_DECIDING_MANY, asked), "credit_decisions"))


def test_a_bulk_statement_takes_at_most_max_rows():
    """recordset()'s bound on row numbers is always true because rows() refuses a longer batch."""
    with pytest.raises(ValueError, match="split the batch"):
        bulk.rows([{}] * (bulk.MAX_ROWS + 1))
