"""Procurement on the real engines: drafts, the approval rules, goods receipts into
inventory (partial, concurrent, over the tolerance), the supplier's notification,
replenishment from shortages, and every bad request's status."""
from __future__ import annotations

import concurrent.futures
import uuid

import grpc
import pytest
import sqlalchemy as sa

from erp.common.v1 import money_pb2, paging_pb2
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1 import procurement_events_pb2 as proc_ev
from erp.inventory.v1 import inventory_pb2 as inv
from erp.procurement.v1 import procurement_pb2 as pb
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery
from services.inventory import events as inventory_events
from services.procurement import events as procurement_events
from services.procurement import service as procurement_service
from tests.integration.test_order_flow import assert_ledger_agrees, stock_up


def eur(amount: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", amount=amount)


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as exc:
        call()
    return exc.value.code()


def supplied(client, skus=("BOLT", "NUT"), price="2.50", supplier_id="ACME", preferred=True) -> None:
    stock_up(client, {(sku, "MAIN"): 0 for sku in skus}, customers=())
    client.create_supplier(supplier_id, "Acme Supply", email="orders@acme.test")
    for sku in skus:
        client.set_supplier_price(supplier_id, sku, price, preferred=preferred, min_quantity=5, lead_time_days=3)


def approved_order(client, lines, supplier_id="ACME") -> pb.PurchaseOrder:
    order = client.create_purchase_order(supplier_id, lines)
    client.submit_purchase_order(order.purchase_order_id, "sam")
    return client.approve_purchase_order(order.purchase_order_id, "ada")


def on_hand(client, sku: str, expected: int) -> None:
    client.wait_for(lambda: client.get_stock(sku, "MAIN"), lambda s: s.on_hand == expected)


def test_a_purchase_order_is_approved_received_in_parts_and_raises_stock(mesh):
    client, started = mesh
    supplied(client)
    draft = client.create_purchase_order("ACME", [("BOLT", 100, ""), ("NUT", 40, "0.75")])
    assert draft.status == pb.PURCHASE_ORDER_STATUS_DRAFT and draft.number.startswith("PO-")
    assert [(x.unit_price.amount, x.amount.amount, x.receivable_quantity) for x in draft.lines] == [
        ("2.50", "250.00", 105), ("0.75", "30.00", 42)]  # the supplier's price; 5% over-receipt tolerance
    assert draft.total.amount == "280.00" and draft.approvals_required == 1
    submitted = client.submit_purchase_order(draft.purchase_order_id, "sam")
    assert submitted.status == pb.PURCHASE_ORDER_STATUS_SUBMITTED and submitted.submitted_by == "sam"
    approved = client.approve_purchase_order(draft.purchase_order_id, "ada", "fine")
    assert approved.status == pb.PURCHASE_ORDER_STATUS_APPROVED
    assert [(a.approver, a.decision) for a in approved.approvals] == [("ada", pb.APPROVAL_DECISION_APPROVED)]
    # The supplier is sent the order.
    [mail] = client.wait_for(lambda: client.deliveries(customer_id="supplier:ACME"), lambda d: len(d) == 1)
    assert mail.recipient == "orders@acme.test" and draft.number in mail.subject

    first = client.receive_goods(draft.purchase_order_id, [(1, 60)], "rita", request_id="grn-1")
    assert first.purchase_order.receipt_status == pb.RECEIPT_STATUS_PARTIAL
    on_hand(client, "BOLT", 60)
    again = client.receive_goods(draft.purchase_order_id, [(1, 60)], "rita", request_id="grn-1")  # a repeat
    assert again.receipt.receipt_id == first.receipt.receipt_id
    final = client.receive_goods(draft.purchase_order_id, [(1, 45), (2, 40)], "rita").purchase_order
    assert final.receipt_status == pb.RECEIPT_STATUS_FULL
    assert [x.received_quantity for x in final.lines] == [105, 40]
    assert code_of(lambda: client.receive_goods(draft.purchase_order_id, [(1, 1)], "rita")) == \
        grpc.StatusCode.FAILED_PRECONDITION  # 105 of 100 is the most the tolerance allows
    on_hand(client, "BOLT", 105)
    on_hand(client, "NUT", 40)
    receipts = client.procurement.ListGoodsReceipts(pb.ListGoodsReceiptsRequest(
        purchase_order_id=draft.purchase_order_id)).receipts
    assert [[(x.line_no, x.quantity) for x in r.lines] for r in receipts] == [[(1, 60)], [(1, 45), (2, 40)]]
    assert code_of(lambda: client.procurement.CancelPurchaseOrder(pb.CancelPurchaseOrderRequest(
        purchase_order_id=draft.purchase_order_id, reason="changed our mind"))) == grpc.StatusCode.FAILED_PRECONDITION
    closed = client.procurement.ClosePurchaseOrder(pb.ClosePurchaseOrderRequest(
        purchase_order_id=draft.purchase_order_id, reason="complete")).purchase_order
    assert closed.status == pb.PURCHASE_ORDER_STATUS_CLOSED
    assert_ledger_agrees(started)
    # On hand is the sum of the receipts in the stock ledger (nothing else moved it).
    with started["inventory"].runtime.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT sku, kind, sum(on_hand_delta) FROM stock_ledger GROUP BY sku, kind "
                                    "ORDER BY sku")).all()
    assert [tuple(r) for r in rows] == [("BOLT", "receipt", 105), ("NUT", "receipt", 40)]


def test_an_order_above_the_threshold_needs_two_different_approvers(mesh):
    client, _ = mesh
    supplied(client, skus=("PUMP",), price="2500.00")
    order = client.create_purchase_order("ACME", [("PUMP", 5, "")])  # 12,500.00 > 10,000.00
    assert order.approvals_required == 2
    client.submit_purchase_order(order.purchase_order_id, "sam")
    once = client.approve_purchase_order(order.purchase_order_id, "ada")
    assert once.status == pb.PURCHASE_ORDER_STATUS_SUBMITTED and len(once.approvals) == 1
    assert code_of(lambda: client.approve_purchase_order(order.purchase_order_id, "ada")) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: client.receive_goods(order.purchase_order_id, [(1, 1)], "rita")) == \
        grpc.StatusCode.FAILED_PRECONDITION  # not approved yet
    twice = client.approve_purchase_order(order.purchase_order_id, "bo")
    assert twice.status == pb.PURCHASE_ORDER_STATUS_APPROVED
    assert [a.approver for a in twice.approvals] == ["ada", "bo"]
    assert client.approve_purchase_order(order.purchase_order_id, "bo").version == twice.version  # a repeat


def test_a_rejected_order_records_who_and_why_and_cannot_be_approved(mesh):
    client, _ = mesh
    supplied(client, skus=("BOLT",))
    order = client.create_purchase_order("ACME", [("BOLT", 10, "")])
    client.submit_purchase_order(order.purchase_order_id, "sam")
    rejected = client.procurement.RejectPurchaseOrder(pb.RejectPurchaseOrderRequest(
        purchase_order_id=order.purchase_order_id, approver="ada", reason="too expensive")).purchase_order
    assert rejected.status == pb.PURCHASE_ORDER_STATUS_REJECTED and rejected.closing_reason == "too expensive"
    assert [(a.approver, a.decision, a.comment) for a in rejected.approvals] == [
        ("ada", pb.APPROVAL_DECISION_REJECTED, "too expensive")]
    assert code_of(lambda: client.approve_purchase_order(order.purchase_order_id, "bo")) == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_concurrent_receipts_never_pass_the_tolerance(mesh):
    client, started = mesh
    supplied(client, skus=("BOLT",))
    order = approved_order(client, [("BOLT", 20, "")])  # receivable: 21

    def receive():
        try:
            return client.receive_goods(order.purchase_order_id, [(1, 3)], "rita").receipt.receipt_id
        except grpc.RpcError as exc:
            return exc.code()

    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(lambda _: receive(), range(10)))
    assert sum(isinstance(o, str) for o in outcomes) == 7
    assert set(o for o in outcomes if not isinstance(o, str)) == {grpc.StatusCode.FAILED_PRECONDITION}
    assert client.get_purchase_order(order.purchase_order_id).lines[0].received_quantity == 21
    on_hand(client, "BOLT", 21)
    assert_ledger_agrees(started)


def test_a_replayed_goods_receipt_raises_stock_once(mesh):
    client, started = mesh
    stock_up(client, {("BOLT", "MAIN"): 0}, customers=())
    running = started["inventory"]
    consumer = Consumer(inventory_events.build(running.runtime.cache), running.runtime.uow, 3, 20)
    payload = proc_ev.GoodsReceived(receipt_id="R-1", purchase_order_id="PO-1", supplier_id="ACME",
                                    warehouse_code="MAIN", lines=[proc_ev.ReceivedLine(line_no=1, sku="BOLT",
                                                                                       quantity=7)])
    for _ in range(3):  # three deliveries, each under a new event id
        env = envelope.build(source="procurement", aggregate_type="purchase_order", aggregate_id="PO-1",
                             aggregate_version=3, payload=payload)
        assert consumer.handle(Delivery(env.SerializeToString(), 0, None)) == Ack()
    on_hand(client, "BOLT", 7)
    unknown = proc_ev.GoodsReceived(receipt_id="R-2", purchase_order_id="PO-1", warehouse_code="MAIN",
                                    lines=[proc_ev.ReceivedLine(line_no=1, sku="NOPE", quantity=1)])
    env = envelope.build(source="procurement", aggregate_type="purchase_order", aggregate_id="PO-1",
                         aggregate_version=4, payload=unknown)
    outcome = consumer.handle(Delivery(env.SerializeToString(), 0, None))
    assert type(outcome).__name__ == "Retry" and "NOPE" in outcome.error  # then the dead-letter queue
    assert_ledger_agrees(started)


def test_a_shortage_raises_one_draft_for_the_preferred_supplier_and_the_next_adds_to_it(mesh):
    client, started = mesh
    supplied(client, skus=("BOLT", "NUT"))
    client.create_supplier("OTHER", "Other Supply")
    client.set_supplier_price("OTHER", "BOLT", "1.00")  # cheaper, but not preferred
    for sku in ("BOLT", "NUT"):
        client.adjust_stock(sku, "MAIN", 10, reason="count")
        client.inventory.SetReorderPoint(inv.SetReorderPointRequest(sku=sku, warehouse_code="MAIN", reorder_point=5,
                                                                    reorder_quantity=50))
    client.adjust_stock("BOLT", "MAIN", -8, reason="scrap")  # 2 < 5: a shortage

    def drafts():
        return client.purchase_orders(supplier_id="ACME", status=pb.PURCHASE_ORDER_STATUS_DRAFT)

    [draft] = client.wait_for(drafts, lambda d: len(d) == 1)
    assert draft.origin == pb.PURCHASE_ORDER_ORIGIN_REPLENISHMENT and draft.warehouse_code == "MAIN"
    assert [(x.sku, x.quantity, x.unit_price.amount) for x in draft.lines] == [("BOLT", 50, "2.50")]
    client.adjust_stock("NUT", "MAIN", -6, reason="scrap")  # another shortage, same supplier: same draft
    [draft] = client.wait_for(drafts, lambda d: len(d) == 1 and len(d[0].lines) == 2)
    assert [(x.sku, x.quantity) for x in draft.lines] == [("BOLT", 50), ("NUT", 50)]
    # The same shortage delivered again, under a new event id, orders nothing more.
    consumer = Consumer(procurement_events.build(procurement_service.deps(started["procurement"].runtime.settings)),
                        started["procurement"].runtime.uow, 3, 20)
    level = client.get_stock("NUT", "MAIN")
    shortage = inv_ev.StockBelowReorderPoint(sku="NUT", warehouse_code="MAIN", available=4, reorder_point=5,
                                             reorder_quantity=50)
    env = envelope.build(source="inventory", aggregate_type="stock", aggregate_id="MAIN/NUT",
                         aggregate_version=level.version, payload=shortage)
    assert consumer.handle(Delivery(env.SerializeToString(), 0, None)) == Ack()
    assert [(x.sku, x.quantity) for x in client.get_purchase_order(draft.purchase_order_id).lines] == [
        ("BOLT", 50), ("NUT", 50)]


def test_a_draft_is_edited_with_its_version_and_only_while_a_draft(mesh):
    client, _ = mesh
    supplied(client, skus=("BOLT", "NUT"))
    draft = client.create_purchase_order("ACME", [("BOLT", 10, "")])

    def update(version, lines):
        return client.procurement.UpdatePurchaseOrder(pb.UpdatePurchaseOrderRequest(
            purchase_order_id=draft.purchase_order_id, expected_version=version, note="urgent",
            lines=[pb.PurchaseOrderLine(sku=s, quantity=q) for s, q in lines])).purchase_order

    edited = update(draft.version, [("BOLT", 12), ("NUT", 3)])
    assert [(x.line_no, x.sku, x.quantity) for x in edited.lines] == [(1, "BOLT", 12), (2, "NUT", 3)]
    assert edited.note == "urgent" and edited.total.amount == "37.50"
    assert code_of(lambda: update(draft.version, [("BOLT", 1)])) == grpc.StatusCode.ABORTED  # stale version
    client.submit_purchase_order(draft.purchase_order_id, "sam")
    assert code_of(lambda: update(edited.version + 1, [("BOLT", 1)])) == grpc.StatusCode.FAILED_PRECONDITION


def test_bad_requests_get_the_status_that_says_what_is_wrong(mesh):
    client, _ = mesh
    supplied(client, skus=("BOLT",))
    p = client.procurement
    assert client.create_supplier("ACME", "Acme Supply", email="orders@acme.test").version == 1  # a repeat
    assert code_of(lambda: client.create_supplier("ACME", "Again")) == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as bad:
        p.CreateSupplier(pb.CreateSupplierRequest(supplier=pb.Supplier(
            supplier_id="bad id", name="", currency_code="euro", email="nope", payment_terms_days=-1)))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for field in ("supplier.supplier_id", "supplier.name", "supplier.currency_code", "supplier.email",
                  "supplier.payment_terms_days"):
        assert field in bad.value.details()
    assert code_of(lambda: client.get_purchase_order(str(uuid.uuid4()))) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.create_purchase_order("NOBODY", [("BOLT", 1, "")])) == grpc.StatusCode.NOT_FOUND
    assert code_of(lambda: client.create_purchase_order("ACME", [("GHOST", 1, "1.00")])) == \
        grpc.StatusCode.NOT_FOUND  # inventory does not know the SKU
    assert code_of(lambda: client.create_purchase_order("ACME", [("BOLT", 0, ""), ("BOLT", 1, "")])) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.create_purchase_order("ACME", [("BOLT", 1, "1.00")], currency_code="USD")) == \
        grpc.StatusCode.INVALID_ARGUMENT  # not the supplier's currency
    assert code_of(lambda: client.set_supplier_price("ACME", "GHOST", "1.00")) == grpc.StatusCode.NOT_FOUND
    empty = client.create_purchase_order("ACME", [])
    assert code_of(lambda: client.submit_purchase_order(empty.purchase_order_id, "sam")) == \
        grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: client.submit_purchase_order(empty.purchase_order_id, "")) == \
        grpc.StatusCode.INVALID_ARGUMENT
    p.UpdateSupplierStatus(pb.UpdateSupplierStatusRequest(supplier_id="ACME", status=pb.SUPPLIER_STATUS_BLOCKED))
    draft = client.create_purchase_order("ACME", [("BOLT", 1, "")])
    assert code_of(lambda: client.submit_purchase_order(draft.purchase_order_id, "sam")) == \
        grpc.StatusCode.FAILED_PRECONDITION  # a blocked supplier
    assert code_of(lambda: p.UpdateSupplierStatus(pb.UpdateSupplierStatusRequest(supplier_id="ACME"))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: client.receive_goods(draft.purchase_order_id, [(9, 1)], "rita")) == \
        grpc.StatusCode.INVALID_ARGUMENT  # no line 9
    assert code_of(lambda: p.ListPurchaseOrders(pb.ListPurchaseOrdersRequest(
        page=paging_pb2.PageRequest(page_token="junk")))) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_listing_pages_through_purchase_orders_newest_first(mesh):
    client, _ = mesh
    supplied(client, skus=("BOLT",))
    made = [client.create_purchase_order("ACME", [("BOLT", n + 1, "")]).purchase_order_id for n in range(5)]

    seen, token = [], ""
    while True:
        page = client.procurement.ListPurchaseOrders(pb.ListPurchaseOrdersRequest(
            supplier_id="ACME", page=paging_pb2.PageRequest(page_size=2, page_token=token)))
        seen += [o.purchase_order_id for o in page.purchase_orders]
        token = page.next_page_token
        if not token:
            break
    assert seen == list(reversed(made))
