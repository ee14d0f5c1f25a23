"""Reconciliation (`python -m services.tools.reconcile`, `erp reconcile`) on real PostgreSQL with the
real services: events are lost on purpose (one service's handler of an event drops it, as if the
message had vanished), the tool is run as an operator runs it (its settings from ERP_* variables),
and it must report the drift, exit 1, repair what is unambiguous, and find nothing afterwards."""
from __future__ import annotations

import os
import threading

from erp.finance.v1 import finance_pb2 as fin_pb
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ord_pb
from erp_client import cli
from erp_client.client import Line
from services.crm import handlers as crm_handlers
from services.finance.receivables import handlers as finance_handlers
from services.inventory import handlers as inventory_handlers
from services.tools import reconcile as tool
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.test_races import ON_EACH_POSTGRES


class Losing:
    """Replaces a service's handler of an event by one that loses the event (nothing changes) while
    `on` is set and `only(args)` holds; counts the events lost."""

    def __init__(self, monkeypatch, module, name: str, only=lambda args: True) -> None:
        self.on, self.only, self.lost, self._lock = True, only, 0, threading.Lock()
        original = getattr(module, name)

        def handler(uow, *args, **kwargs):
            with self._lock:
                if self.on and self.only(args):
                    self.lost += 1
                    return None
            return original(uow, *args, **kwargs)

        monkeypatch.setattr(module, name, handler)


def tool_env(monkeypatch, engines: support.Engines, started: dict) -> None:
    """The ERP_* settings an operator gives the tool: the services' database, Redis and addresses."""
    for name in [n for n in os.environ if n.startswith("ERP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("ERP_DATABASE_URL", engines.database_url)
    monkeypatch.setenv("ERP_REDIS_URL", engines.redis_url)
    monkeypatch.setenv("ERP_CACHE_PREFIX", engines.namespace)
    for name, running in started.items():
        monkeypatch.setenv(f"ERP_{name.upper()}_TARGET", f"127.0.0.1:{running.port}")


def reconcile(capsys, *argv: str) -> tuple[int, str]:
    """`python -m services.tools.reconcile ARGV`: its exit status and report."""
    status = tool.main([*argv, "--settle", "0.2"])
    return status, capsys.readouterr().out


def wait_status(client, order_id: str, status: int) -> None:
    support.wait_for(f"order {order_id} to be {ord_pb.OrderStatus.Name(status)}",
                     lambda: client.get_order(order_id).status == status)


@ON_EACH_POSTGRES
def test_lost_order_events_are_reported_and_the_unambiguous_ones_repaired(engines, tmp_path, monkeypatch, capsys):
    with running_mesh(engines, tmp_path, services=("inventory", "orders", "crm", "finance")) as (client, started):
        client.create_warehouse("MAIN", "Main")
        client.create_product("CHAIR", "Chair")
        client.adjust_stock("CHAIR", "MAIN", 10, reason="opening stock")
        client.create_customer("CUST-1", "Acme", "1000.00")
        tool_env(monkeypatch, engines, started)
        status, report = reconcile(capsys)
        assert status == 1, report  # procurement is not running here
        assert "inventory.receipts: could not be checked: a service answered UNAVAILABLE" in report
        assert report.splitlines()[-1] == "no drift in the 3 checks that ran"
        checks = ("inventory.reservations", "crm.exposure", "finance.invoices")

        # crm misses an OrderRejected: it still counts the order its credit check approved.
        crm_loses = Losing(monkeypatch, crm_handlers, "order_closed")
        rejected = client.place_order("CUST-1", [Line("CHAIR", 20, "10.00", "MAIN")]).order_id  # 20 > 10 in stock
        wait_status(client, rejected, ord_pb.ORDER_STATUS_REJECTED)
        support.wait_for("crm to lose the OrderRejected", lambda: crm_loses.lost == 1)
        support.wait_for("crm to count the rejected order",
                         lambda: client.get_customer("CUST-1").exposure.open_orders.amount == "200.00")
        crm_loses.on = False

        # inventory misses an OrderCancelled: the stock stays reserved for a cancelled order.
        victims: set[str] = set()
        inventory_loses = Losing(monkeypatch, inventory_handlers, "release", only=lambda args: args[1] in victims)
        cancelled = client.place_order("CUST-1", [Line("CHAIR", 2, "10.00", "MAIN")]).order_id
        wait_status(client, cancelled, ord_pb.ORDER_STATUS_INVOICED)
        victims.add(cancelled)
        client.cancel_order(cancelled, "changed their mind")
        support.wait_for("inventory to lose the OrderCancelled", lambda: inventory_loses.lost == 1)
        inventory_loses.on = False
        support.wait_for("the invoice to be credited", lambda: [i.status for i in client.invoices_for_order(
            cancelled)] == [fin_pb.INVOICE_STATUS_CREDITED])

        # finance misses an OrderConfirmed: a confirmed order without an invoice (money: reported only).
        finance_loses = Losing(monkeypatch, finance_handlers, "issue_invoice")
        unbilled = client.place_order("CUST-1", [Line("CHAIR", 3, "10.00", "MAIN")]).order_id
        wait_status(client, unbilled, ord_pb.ORDER_STATUS_CONFIRMED)
        support.wait_for("finance to lose the OrderConfirmed", lambda: finance_loses.lost == 1)
        finance_loses.on = False
        assert client.get_stock("CHAIR", "MAIN").reserved == 2 + 3

        status, report = reconcile(capsys, *checks, "--dry-run")
        assert status == 1, report
        assert f"inventory.reservations: held by a closed order: order {cancelled}" in report
        assert f"crm.exposure: open order that was closed: order {rejected}" in report
        assert f"finance.invoices: confirmed order without an invoice: order {unbilled}" in report
        assert report.count("repairable: run without --dry-run") == 2 and "REPAIRED" not in report
        assert "3 drifts found, 0 repaired" in report
        assert client.get_stock("CHAIR", "MAIN").reserved == 5

        metrics = tmp_path / "reconcile.prom"
        status, report = reconcile(capsys, *checks, "--metrics-file", str(metrics))
        assert status == 1, report
        assert report.count("REPAIRED") == 2 and "3 drifts found, 2 repaired" in report
        assert f"order {unbilled}\n    order is CONFIRMED, total 30.00 EUR\n    not repaired" in report
        assert 'erp_reconcile_drift{check="finance.invoices"} 1.0' in metrics.read_text()
        assert 'erp_reconcile_repaired{check="crm.exposure"} 1.0' in metrics.read_text()
        assert client.get_stock("CHAIR", "MAIN").reserved == 3  # the unbilled order's
        assert client.get_customer("CUST-1").exposure.open_orders.amount == "30.00"

        status = cli.main(["reconcile", "inventory.reservations", "crm.exposure", "--settle", "0.2"])  # `erp reconcile`
        report = capsys.readouterr().out
        assert (status, report.splitlines()[-1]) == (0, "no drift: every projection agrees with its source")
        assert reconcile(capsys, "no.such.check")[0] == 2


@ON_EACH_POSTGRES
def test_a_goods_receipt_inventory_lost_is_received_by_reconciliation(engines, tmp_path, monkeypatch, capsys):
    with running_mesh(engines, tmp_path, services=("inventory", "procurement")) as (client, started):
        client.create_warehouse("MAIN", "Main")
        client.create_product("CHAIR", "Chair")
        client.create_supplier("SUP-1", "Supplier")
        order = client.create_purchase_order("SUP-1", [("CHAIR", 5, "4.00")], warehouse_code="MAIN")
        client.submit_purchase_order(order.purchase_order_id, submitted_by="alice")
        client.approve_purchase_order(order.purchase_order_id, approver="bob")
        inventory_loses = Losing(monkeypatch, inventory_handlers, "receive")
        client.receive_goods(order.purchase_order_id, [(1, 5)], received_by="carol")
        support.wait_for("inventory to lose the GoodsReceived", lambda: inventory_loses.lost == 1)
        inventory_loses.on = False
        tool_env(monkeypatch, engines, started)

        status, report = reconcile(capsys, "inventory.receipts")
        assert status == 1, report
        assert "inventory.receipts: receipt missing from the stock ledger" in report
        assert "procurement received line 1: 5 CHAIR@MAIN\n    REPAIRED: received, as its GoodsReceived does" in report
        assert client.get_stock("CHAIR", "MAIN").on_hand == 5
        # valued at the purchase order's price, as its GoodsReceived would have been
        [line] = client.inventory.GetStockValuation(inv.GetStockValuationRequest(sku_prefix="CHAIR")).lines
        assert (line.quantity, line.unit_cost.amount, line.value.amount) == (5, "4.00", "20.00")
        assert reconcile(capsys, "inventory.receipts")[0] == 0
