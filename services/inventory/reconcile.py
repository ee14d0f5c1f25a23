"""Inventory's projections against their sources (mesh/reconcile.py runs them):

- reservations, made and released by orders' events, against the orders (orders' API): a
  reservation still held by an order that was rejected or cancelled is released, one held by an
  order that shipped is issued (what the lost OrderRejected / OrderCancelled / OrderShipped would
  have done, by the same handler under the same lock); an open order without its reservation,
  or with other quantities, and a reservation of an order orders does not know, are reported;
- goods receipts on the stock ledger, raised by procurement's GoodsReceived, against
  procurement's receipts (its API): a receipt missing from the ledger is received (the handler
  of GoodsReceived, which counts a receipt once); other quantities, and receipts procurement
  does not know, are reported.

Orders still PENDING are left alone: their saga is in flight (or the deadline drives it).
The reservations and the ledger have no RPC: they are read from inventory's own schema.
"""
from __future__ import annotations

import functools
from collections import defaultdict

from erp.orders.v1 import orders_pb2 as ord_pb
from erp.procurement.v1 import procurement_pb2 as proc_pb
from mesh.reconcile import Check, Finding, Owner, Sources, paged
from services.inventory import handlers

S = ord_pb.OrderStatus
OPEN = {S.ORDER_STATUS_CONFIRMED, S.ORDER_STATUS_INVOICED}  # reserved until shipped or cancelled
CLOSED = {S.ORDER_STATUS_REJECTED, S.ORDER_STATUS_CANCELLED}
SHIPPED = {S.ORDER_STATUS_SHIPPED, S.ORDER_STATUS_COMPLETED}
RECEIPT_KEY = "receipt:"  # a receipt line's ledger request id: receipt:<receipt id>:<line no>


def status(order) -> str:
    return S.Name(order.status).removeprefix("ORDER_STATUS_")


# ---------------------------------------------------------------- reservations


def reservations(sources: Sources) -> list[Finding]:
    owner = sources.owner("inventory")
    held: dict[str, dict[tuple[str, str], int]] = defaultdict(dict)
    for row in owner.rows("SELECT order_id, sku, warehouse_code, quantity FROM reservations "
                          "WHERE status = 'reserved'"):
        held[row.order_id][(row.sku, row.warehouse_code)] = row.quantity
    orders = sources.orders()  # read after the projection: every order holding stock is in it
    findings = [_held(owner, order_id, lines, orders.get(order_id)) for order_id, lines in held.items()]
    for order in orders.values():
        if order.status in OPEN:
            wanted = _lines(order)
            if order.order_id not in held:
                findings.append(_finding("open order without its reservation", order.order_id,
                                         f"order is {status(order)}; nothing reserved (wanted {_show(wanted)})"))
            elif held[order.order_id] != wanted:
                findings.append(_finding("reserved quantities differ from the order's", order.order_id,
                                         f"reserved {_show(held[order.order_id])}, order {_show(wanted)}"))
    return [f for f in findings if f is not None]


def _held(owner: Owner, order_id: str, lines: dict, order) -> Finding | None:
    reserved = f"reserved {_show(lines)}"
    if order is None:
        return _finding("held by an order orders does not know", order_id, reserved)
    if order.status in CLOSED:
        return _finding("held by a closed order", order_id, f"{reserved}; order is {status(order)}",
                        lambda: _release(owner, order_id))
    if order.status in SHIPPED:
        return _finding("held by a shipped order", order_id, f"{reserved}; order is {status(order)}",
                        lambda: _issue(owner, order_id))
    return None  # open (checked against the order's lines) or pending (in flight)


def _release(owner: Owner, order_id: str) -> str:
    with owner.uow() as uow:
        uow.lock("order", order_id)
        handlers.release(uow, owner.extras["cache"], order_id)
        uow.commit()
    return "released, as its OrderRejected/OrderCancelled does (StockReleased published)"


def _issue(owner: Owner, order_id: str) -> str:
    with owner.uow() as uow:
        uow.lock("order", order_id)
        handlers.issue(uow, owner.extras["cache"], order_id)
        uow.commit()
    return "issued, as its OrderShipped does (StockIssued published)"


def _lines(order) -> dict[tuple[str, str], int]:
    """The order's quantities per (SKU, warehouse), as inventory merges them."""
    merged: dict[tuple[str, str], int] = defaultdict(int)
    for line in order.lines:
        merged[(line.sku, line.warehouse_code)] += line.quantity
    return dict(merged)


def _show(lines: dict[tuple[str, str], int]) -> str:
    return ", ".join(f"{qty} {sku}@{wh}" for (sku, wh), qty in sorted(lines.items()))


def _finding(kind: str, order_id: str, detail: str, repair=None, check: str = "inventory.reservations") -> Finding:
    return Finding(check, kind, f"order {order_id}", detail, repair)


# ---------------------------------------------------------------- goods receipts


def receipts(sources: Sources) -> list[Finding]:
    owner = sources.owner("inventory")
    ledger: dict[str, dict[int, tuple[str, str, int]]] = defaultdict(dict)  # receipt -> line -> (sku, wh, qty)
    for row in owner.rows("SELECT request_id, sku, warehouse_code, on_hand_delta FROM stock_ledger "
                          "WHERE kind = 'receipt' AND request_id LIKE 'receipt:%'"):
        receipt_id, _, line_no = row.request_id.removeprefix(RECEIPT_KEY).rpartition(":")
        ledger[receipt_id][int(line_no)] = (row.sku, row.warehouse_code, row.on_hand_delta)
    findings = []
    known = set()
    for receipt, prices in _procurement_receipts(sources):
        known.add(receipt.receipt_id)
        wanted = {line.line_no: (line.sku, receipt.warehouse_code, line.quantity) for line in receipt.lines}
        found = ledger.get(receipt.receipt_id, {})
        if not found:
            findings.append(Finding("inventory.receipts", "receipt missing from the stock ledger",
                                    f"receipt {receipt.receipt_id}", f"procurement received {_show_lines(wanted)}",
                                    functools.partial(_receive, owner, receipt, prices)))
        elif found != wanted:
            findings.append(Finding("inventory.receipts", "received quantities differ", f"receipt {receipt.receipt_id}",
                                    f"ledger {_show_lines(found)}, procurement {_show_lines(wanted)}"))
    for receipt_id, lines in ledger.items():
        if receipt_id not in known:
            findings.append(Finding("inventory.receipts", "receipt procurement does not know",
                                    f"receipt {receipt_id}", f"ledger {_show_lines(lines)}"))
    return findings


def _procurement_receipts(sources: Sources):
    """Every goods receipt procurement recorded (read after the ledger), with its order's unit
    prices by line ({line_no: (currency, amount)}): a repaired receipt is valued at them, as
    its GoodsReceived would have been."""
    client = sources.client
    for order in paged(client.procurement.ListPurchaseOrders, proc_pb.ListPurchaseOrdersRequest(), "purchase_orders"):
        if order.receipt_status in (proc_pb.RECEIPT_STATUS_PARTIAL, proc_pb.RECEIPT_STATUS_FULL):
            prices = {line.line_no: (line.unit_price.currency_code, line.unit_price.amount) for line in order.lines}
            request = proc_pb.ListGoodsReceiptsRequest(purchase_order_id=order.purchase_order_id)
            for receipt in client.procurement.ListGoodsReceipts(request).receipts:
                yield receipt, prices


def _receive(owner: Owner, receipt, prices: dict[int, tuple[str, str]]) -> str:
    from mesh import money

    priced = {no: (currency, money.parse_amount(amount)) for no, (currency, amount) in prices.items() if amount}
    currencies = {currency for currency, _ in priced.values()}
    with owner.uow() as uow:
        uow.lock("goods_receipt", receipt.receipt_id)
        received = handlers.receive(
            uow, owner.extras["cache"], receipt.receipt_id, receipt.warehouse_code,
            [(line.line_no, line.sku, line.quantity, priced.get(line.line_no, ("", None))[1])
             for line in receipt.lines], currency=next(iter(currencies), "") if len(currencies) == 1 else "",
            valuation_currency=owner.extras.get("currency", "EUR"))
        uow.commit()
    return "received, as its GoodsReceived does" if received else "already received meanwhile: nothing done"


def _show_lines(lines: dict[int, tuple[str, str, int]]) -> str:
    return ", ".join(f"line {n}: {qty} {sku}@{wh}" for n, (sku, wh, qty) in sorted(lines.items()))


CHECKS = [
    Check("inventory.reservations", "reservations held against the orders' statuses and lines", reservations),
    Check("inventory.receipts", "goods receipts on the stock ledger against procurement's receipts", receipts),
]
