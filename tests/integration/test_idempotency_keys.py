"""Idempotency keys that mean one request (DESIGN decision 13), for every mutating RPC, on the
real servers and a real PostgreSQL: the same key with the same body answers the first result
and makes one effect; the same key with another body is ALREADY_EXISTS naming the key; 20
identical calls at once all get the one result, never INTERNAL.

The RPCs come from the descriptors (every method whose request has a request_id field), so a
new one is covered once it has a sample below; test_every_mutating_rpc_has_a_sample fails until
it does."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time
import uuid
from collections.abc import Callable
from decimal import Decimal

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from erp.common.v1.money_pb2 import Money
from erp.finance.v1 import finance_pb2 as fin
from erp.inventory.v1 import inventory_pb2 as inv
from erp.orders.v1 import orders_pb2 as ordpb
from erp.procurement.v1 import procurement_pb2 as proc
from erp_client.client import Line
from mesh import db, idempotency, retention
from mesh.errors import Aborted
from services import RUNNABLE
from tests import support
from tests.integration.conftest import running_mesh
from tests.integration.test_order_flow import stock_up

EUR = "EUR"
CUSTOMER, SUPPLIER, SKU = "CUST-IDEM", "WOOD", "CHAIR"


def eur(amount: str) -> Money:
    return Money(currency_code=EUR, amount=amount)


def all_mutating_rpcs() -> list[str]:
    import importlib

    names = []
    for name in RUNNABLE:
        names += importlib.import_module(f"services.{name}.service").spec().grpc_services
    return sorted(idempotency.mutating_methods(names))


@dataclasses.dataclass(frozen=True)
class World:
    """What the samples refer to, made once for the module."""

    purchase_order_id: str  # approved, 100,000 ordered, 1,000 received: room for receipts and bills
    invoice_id: str  # 1,200.00 due: room for payments of a cent
    bill_id: str  # posted, 1,000.00: room for payments of a cent


@dataclasses.dataclass(frozen=True)
class Sample:
    request: Callable[[World, str], object]  # one valid request with this key
    other_body: Callable[[object], None]  # changes the request into another valid one
    effects: str  # the table whose rows with the key are the call's effect
    # Changes what the first call made, so a repeat that re-reads today's state would answer
    # differently from the first result; None: another request of the sample, with another key.
    moves: Callable[[World, dict, object], None] | None = None


def _order_leaves_pending(w: World, started: dict, placed: ordpb.PlaceOrderResponse) -> None:
    get = ordpb.GetOrderRequest(order_id=placed.order.order_id)
    support.wait_for("the order to leave PENDING", lambda: _call(
        started, "/erp.orders.v1.OrderService/GetOrder", get).order.status != ordpb.ORDER_STATUS_PENDING)


def _submit(w: World, started: dict, created: proc.CreatePurchaseOrderResponse) -> None:
    _call(started, "/erp.procurement.v1.ProcurementService/SubmitPurchaseOrder", proc.SubmitPurchaseOrderRequest(
        purchase_order_id=created.purchase_order.purchase_order_id, submitted_by="buyer"))


def _pay_a_cent(w: World, started: dict, recorded: fin.RecordSupplierBillResponse) -> None:
    _call(started, "/erp.finance.v1.FinanceService/PaySupplierBill", fin.PaySupplierBillRequest(
        request_id=uuid.uuid4().hex, bill_id=recorded.bill.bill_id, amount=eur("0.01")))


def _change(field_path: str, value):
    def change(request) -> None:
        *parents, last = field_path.split(".")
        target = request
        for part in parents:
            target = target[int(part)] if part.isdigit() else getattr(target, part)
        setattr(target, last, value)
    return change


SAMPLES: dict[str, Sample] = {
    "/erp.inventory.v1.InventoryService/AdjustStock": Sample(
        lambda w, k: inv.AdjustStockRequest(request_id=k, sku=SKU, warehouse_code="MAIN", quantity_delta=1,
                                            reason="cycle count"),
        _change("quantity_delta", 2), "inventory.stock_ledger"),
    "/erp.orders.v1.OrderService/PlaceOrder": Sample(
        lambda w, k: ordpb.PlaceOrderRequest(request_id=k, customer_id=CUSTOMER, currency_code=EUR, lines=[
            ordpb.OrderLine(sku=SKU, warehouse_code="MAIN", quantity=1, unit_price=eur("1.00"))]),
        _change("lines.0.quantity", 2), "orders.orders", _order_leaves_pending),
    "/erp.procurement.v1.ProcurementService/CreatePurchaseOrder": Sample(
        lambda w, k: proc.CreatePurchaseOrderRequest(request_id=k, supplier_id=SUPPLIER, lines=[
            proc.PurchaseOrderLine(sku=SKU, quantity=1, unit_price=eur("10.00"))]),
        _change("lines.0.quantity", 2), "procurement.purchase_orders", _submit),
    "/erp.procurement.v1.ProcurementService/RecordGoodsReceipt": Sample(
        lambda w, k: proc.RecordGoodsReceiptRequest(request_id=k, purchase_order_id=w.purchase_order_id,
                                                    received_by="goods-in",
                                                    lines=[proc.GoodsReceiptLine(line_no=1, quantity=1)]),
        _change("lines.0.quantity", 2), "procurement.goods_receipts"),
    "/erp.finance.v1.FinanceService/RecordSupplierBill": Sample(
        lambda w, k: fin.RecordSupplierBillRequest(
            request_id=k, purchase_order_id=w.purchase_order_id, supplier_bill_number="B-" + k,
            lines=[fin.SupplierBillLine(line_no=1, quantity=1, unit_price=eur("10.00"))]),
        _change("lines.0.quantity", 2), "finance.supplier_bills", _pay_a_cent),
    "/erp.finance.v1.FinanceService/RecordPayment": Sample(
        lambda w, k: fin.RecordPaymentRequest(request_id=k, invoice_id=w.invoice_id, amount=eur("0.01")),
        _change("amount.amount", "0.02"), "finance.payments"),
    "/erp.finance.v1.FinanceService/PaySupplierBill": Sample(
        lambda w, k: fin.PaySupplierBillRequest(request_id=k, bill_id=w.bill_id, amount=eur("0.01")),
        _change("amount.amount", "0.02"), "finance.supplier_bill_payments"),
}

MUTATING = all_mutating_rpcs()


def test_every_mutating_rpc_has_a_sample():
    """A new RPC with a request_id is covered by the tests below once it has a sample here."""
    assert MUTATING, "the descriptors name mutating RPCs"
    assert set(MUTATING) - set(SAMPLES) == set(), "add a sample request for each of these"
    assert set(SAMPLES) - set(MUTATING) == set(), "these samples name no mutating RPC"


def test_reads_are_not_guarded():
    assert "/erp.inventory.v1.InventoryService/GetStock" not in MUTATING
    assert "/erp.inventory.v1.InventoryService/AdjustStock" in MUTATING


# ---------------------------------------------------------------- the mesh


def balances(client) -> dict[str, Decimal]:
    return {row.account: Decimal(row.balance.amount) for row in client.trial_balance(EUR).lines}


@pytest.fixture(scope="module")
def world(postgres_server, redis_server, tmp_path_factory):
    engines_ = support.Engines("", redis_server, "postgres", namespace="erptest-" + uuid.uuid4().hex[:8])
    with support.fresh_database(postgres_server) as url:
        engines_ = dataclasses.replace(engines_, database_url=url)
        with running_mesh(engines_, tmp_path_factory.mktemp("idem")) as (client, started):
            stock_up(client, {(SKU, "MAIN"): 100_000}, customers=(CUSTOMER,))
            client.create_supplier(SUPPLIER, "Nordic Wood", payment_terms_days=30)
            client.set_supplier_price(SUPPLIER, SKU, "10.00", preferred=True)
            po = client.create_purchase_order(SUPPLIER, [(SKU, 100_000, "10.00")])
            client.submit_purchase_order(po.purchase_order_id, "buyer")
            client.approve_purchase_order(po.purchase_order_id, "manager")
            client.approve_purchase_order(po.purchase_order_id, "director")
            client.receive_goods(po.purchase_order_id, [(1, 1000)], "goods-in")
            client.wait_for(lambda: balances(client), lambda b: b.get("2100") == Decimal("-10000.00"))
            bill = client.record_supplier_bill(po.purchase_order_id, "WOOD-1", [(1, 100, "10.00")])
            assert bill.status == fin.SUPPLIER_BILL_STATUS_POSTED
            order = client.place_order(CUSTOMER, [Line(SKU, 1, "1000.00")])
            [invoice] = client.wait_for(lambda: client.invoices_for_order(order.order_id), lambda found: found)
            engine = sa.create_engine(db.sqlalchemy_url(url))
            try:
                yield World(po.purchase_order_id, invoice.invoice_id, bill.bill_id), started, engine
            finally:
                engine.dispose()


def _service(method: str) -> str:
    return method.lstrip("/").split(".")[1]  # /erp.<service>.v1.X/Y


def _call(started, method: str, request, timeout: float = 30.0):
    desc = idempotency.method_descriptor(method)
    response_class = message_factory.GetMessageClass(desc.output_type)
    with grpc.insecure_channel(f"127.0.0.1:{started[_service(method)].port}") as channel:
        stub = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=response_class.FromString)
        return stub(request, timeout=timeout)


def _effects(engine, sample: Sample, key: str) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {sample.effects} WHERE request_id = :k"),
                            {"k": key}).scalar_one()


def _key(method: str) -> str:
    return f"{method.rsplit('/', 1)[-1]}-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("method", MUTATING)
def test_the_same_key_and_body_again_answers_the_first_result_with_one_effect(world, method):
    w, started, engine = world
    sample, key = SAMPLES[method], _key(method)
    first = _call(started, method, sample.request(w, key))
    if sample.moves is None:
        _call(started, method, sample.request(w, _key(method)))  # another request in between moves the state on
    else:
        sample.moves(w, started, first)
    again = _call(started, method, sample.request(w, key))
    assert again.SerializeToString(deterministic=True) == first.SerializeToString(deterministic=True)
    assert _effects(engine, sample, key) == 1


@pytest.mark.parametrize("method", MUTATING)
def test_the_same_key_with_another_body_is_already_exists_naming_the_key(world, method):
    w, started, engine = world
    sample, key = SAMPLES[method], _key(method)
    request = sample.request(w, key)
    _call(started, method, request)
    other = type(request)()
    other.CopyFrom(request)
    sample.other_body(other)
    assert other != request
    with pytest.raises(grpc.RpcError) as refused:
        _call(started, method, other)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS, refused.value.details()
    assert f"request_id {key} was already used for a different request" in refused.value.details()
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in rpc_status.from_call(refused.value).details)
    assert (info.reason, info.metadata["request_id"]) == ("IDEMPOTENCY_KEY_REUSED", key)
    assert _effects(engine, sample, key) == 1
    # The first body still answers (its key is not spoiled by the refused one).
    _call(started, method, request)
    assert _effects(engine, sample, key) == 1


@pytest.mark.parametrize("method", MUTATING)
def test_twenty_identical_calls_at_once_all_get_the_one_result(world, method):
    w, started, engine = world
    sample, key = SAMPLES[method], _key(method)
    request = sample.request(w, key)
    start = threading.Barrier(20)

    def call():
        start.wait()
        try:
            return _call(started, method, request).SerializeToString(deterministic=True)
        except grpc.RpcError as err:
            return f"{err.code().name}: {err.details()}"

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: call(), range(20)))
    assert all(isinstance(a, bytes) for a in answers), [a for a in answers if not isinstance(a, bytes)]
    assert len(set(answers)) == 1
    assert _effects(engine, sample, key) == 1


def test_a_key_whose_first_call_died_before_its_answer_was_kept(world):
    """The fingerprint is stored before the handler runs: a first call that made its effect and
    died before its answer was stored leaves the key bound to its body. The same body runs the
    (idempotent) handler again and gets the first effect; another body is refused."""
    w, started, engine = world
    method = "/erp.inventory.v1.InventoryService/AdjustStock"
    sample, key = SAMPLES[method], _key(method)
    request = sample.request(w, key)
    first = _call(started, method, request)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE inventory.idempotency_keys SET response = NULL WHERE request_id = :k"),
                     {"k": key})
    other = type(request)()
    other.CopyFrom(request)
    sample.other_body(other)
    with pytest.raises(grpc.RpcError) as refused:
        _call(started, method, other)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    again = _call(started, method, request)
    assert (again.stock.sku, again.stock.warehouse_code) == (first.stock.sku, first.stock.warehouse_code)
    assert _effects(engine, sample, key) == 1


def test_a_refused_request_does_not_use_its_key_up(world):
    w, started, engine = world
    method = "/erp.inventory.v1.InventoryService/AdjustStock"
    key = _key(method)
    bad = inv.AdjustStockRequest(request_id=key, sku=SKU, warehouse_code="MAIN", quantity_delta=-10**9,
                                 reason="more than there is")
    with pytest.raises(grpc.RpcError) as refused:
        _call(started, method, bad)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    _call(started, method, SAMPLES[method].request(w, key))
    assert _effects(engine, SAMPLES[method], key) == 1


def _pruned_tables(pruner: threading.Thread) -> list[str]:
    """The tables a pruner thread was started with (its run_pruner(service, engine, kept, ...) arguments)."""
    return [kept.table for kept in pruner._args[2]]  # type: ignore[attr-defined]


def test_keys_are_kept_for_the_retention_then_pruned(world):
    _, started, engine = world
    method = "/erp.inventory.v1.InventoryService/AdjustStock"
    old, young = _key(method), _key(method)
    for key in (old, young):
        _call(started, method, SAMPLES[method].request(None, key))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE inventory.idempotency_keys SET created_at = now() - interval '169 hours'"
                             " WHERE request_id = :k"), {"k": old})
    retention.prune_all(started["inventory"].runtime.engine, retention.idempotency_keys(), threading.Event(),
                        batch=2)  # the default: 168 hours
    with engine.connect() as conn:
        left = set(conn.execute(sa.text("SELECT request_id FROM inventory.idempotency_keys"
                                        " WHERE request_id IN (:a, :b)"), {"a": old, "b": young}).scalars())
    assert left == {young}
    # Every service runs the pruner; those with mutating RPCs prune their keys too.
    pruners = {name for name, running in started.items() if any(t.name == "pruner" for t in running.threads)}
    assert pruners == set(started)
    with_keys = {name for name, running in started.items()
                 if any("idempotency_keys" in _pruned_tables(t) for t in running.threads if t.name == "pruner")}
    assert with_keys == {_service(m) for m in MUTATING}


def test_a_placement_that_waited_for_its_twin_answers_with_the_twin_s_order(world):
    """Below the keys, forced: a twin's transaction has inserted the order with this request id and
    not committed; place_order waits on the unique index, the twin commits, and place_order answers
    with the twin's order (before: a unique-key violation, INTERNAL to the caller)."""
    _, started, engine = world
    from services.orders import domain as orders_domain
    from services.orders import handlers as orders_handlers
    from services.orders import timeline as orders_timeline

    runtime = started["orders"].runtime
    cmd = orders_domain.PlaceOrder(request_id=_key("PlaceOrder"), customer_id=CUSTOMER, currency_code=EUR,
                                   lines=(orders_domain.LineInput(SKU, "MAIN", 1, "1.00", EUR),))
    twin = orders_domain.new_order(str(uuid.uuid4()), cmd, "MAIN")
    result: dict = {}

    def place() -> None:
        try:
            result["order"] = orders_handlers.place_order(runtime.uow(), cmd, "MAIN")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            result["error"] = exc

    placing = threading.Thread(target=place)
    with runtime.uow() as holder:
        holder.orders.add(twin, orders_timeline.placed(twin))
        placing.start()
        support.wait_for("place_order to wait for the twin's insert", lambda: support.waits_on_a_lock(engine))
        holder.commit()
    placing.join(10)
    assert "error" not in result, repr(result.get("error"))
    assert result["order"].order_id == twin.order_id


@pytest.mark.parametrize("owner", ["answers", "dies"])
def test_a_twin_waits_for_the_call_in_progress_and_takes_its_answer_or_its_place(world, owner):
    """Forced: a call with this key is in progress (its claim stored, its row locked, no answer
    yet) when a twin arrives. The twin waits on the lock; when the first call stores its answer the
    twin returns that answer and runs nothing; when the first call dies (its transaction ends with
    no answer) the twin runs the handler itself, once."""
    w, started, engine = world
    method = "/erp.inventory.v1.InventoryService/AdjustStock"
    sample, key = SAMPLES[method], _key(method)
    request = sample.request(w, key)
    fp = idempotency.fingerprint(method, request, "")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO inventory.idempotency_keys (request_id, method, fingerprint)"
                             " VALUES (:k, :m, :fp)"), {"k": key, "m": method, "fp": fp})
    first_answer = inv.AdjustStockResponse(stock=inv.StockLevel(sku=SKU, warehouse_code="MAIN", on_hand=424242))
    result: dict = {}

    def twin() -> None:
        try:
            result["answer"] = _call(started, method, request)
        except grpc.RpcError as err:
            result["error"] = f"{err.code().name}: {err.details()}"

    waiting = threading.Thread(target=twin)
    with engine.connect() as holder:  # the first call, inside its handler
        holder.execute(sa.text("SELECT 1 FROM inventory.idempotency_keys WHERE request_id = :k FOR UPDATE"),
                       {"k": key})
        waiting.start()
        support.wait_for("the twin to wait for the call in progress", lambda: support.waits_on_a_lock(engine))
        if owner == "answers":
            holder.execute(sa.text("UPDATE inventory.idempotency_keys SET response = :r WHERE request_id = :k"),
                           {"k": key, "r": first_answer.SerializeToString()})
            holder.commit()
        else:
            holder.rollback()
    waiting.join(20)
    assert "error" not in result, result["error"]
    if owner == "answers":
        assert result["answer"] == first_answer
        assert _effects(engine, sample, key) == 0
    else:
        assert result["answer"].stock.on_hand != 424242
        assert _effects(engine, sample, key) == 1


def test_the_lock_wait_set_in_the_locking_statement_bounds_that_statement(world):
    """The guard sets a slice's lock wait in the statement that locks the key's row (one round
    trip). Forced: the row is held and the connection's own lock_timeout is unlimited, so only
    the statement's setting can end the wait: the guard gives up with ABORTED and leaves the key
    as it was."""
    _, started, engine = world
    method = "/erp.inventory.v1.InventoryService/AdjustStock"
    key = _key(method)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO inventory.idempotency_keys (request_id, method, fingerprint)"
                             " VALUES (:k, :m, '\\x00')"), {"k": key, "m": method})
    guard = idempotency.Idempotency(started["inventory"].runtime.engine)
    outcome: dict = {}

    def lock_for_half_a_second() -> None:
        with guard.engine.connect() as conn:
            conn.execute(sa.text("SET lock_timeout = 0"))  # this session would wait for ever
            conn.commit()
            try:
                guard._lock(conn, key, until=time.monotonic() + 0.5)
            except Exception as exc:  # noqa: BLE001 - asserted below
                outcome["error"] = exc
            finally:
                conn.execute(sa.text("RESET lock_timeout"))
                conn.commit()

    with engine.connect() as holder:
        holder.execute(sa.text("SELECT 1 FROM inventory.idempotency_keys WHERE request_id = :k FOR UPDATE"),
                       {"k": key})
        waiting = threading.Thread(target=lock_for_half_a_second)
        waiting.start()
        waiting.join(60)  # not a timing check: without the setting this join would run out
        alive = waiting.is_alive()
        holder.rollback()
    waiting.join()
    assert not alive, "the guard's lock wait was not bounded by the statement's own setting"
    assert isinstance(outcome.get("error"), Aborted), outcome
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT response IS NULL FROM inventory.idempotency_keys WHERE request_id = :k"),
                            {"k": key}).scalar_one()
