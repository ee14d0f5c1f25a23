"""Accounting periods: a month is closed once it has ended, nothing posts into it (a late
event posts into the open period; the journal's trigger refuses any entry dated in a closed
one), and the trial balance takes a period."""
from __future__ import annotations

import datetime as dt

import grpc
import pytest
import sqlalchemy as sa

from erp.common.v1 import money_pb2
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.finance.v1 import finance_pb2 as pb
from erp.finance.v1 import finance_pb2_grpc
from mesh import service
from mesh.events import envelope
from mesh.events.consumer import Consumer
from mesh.events.transport import Ack, Delivery
from services.finance.ledger.periods import period_of
from services.finance.service import spec as finance_spec
from tests import support


@pytest.fixture
def finance(embedded_engines, tmp_path):
    spec = finance_spec()
    running = service.start(spec, support.settings_for("finance", embedded_engines, tmp_path))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    consumer = Consumer(spec.build_handlers(running.runtime), running.runtime.uow, 3, 20)
    try:
        yield finance_pb2_grpc.FinanceServiceStub(channel), consumer, running.runtime.engine
    finally:
        channel.close()
        running.stop(grace=1)


def shipped(order_id: str, cost: str) -> bytes:
    payload = inv_ev.StockIssued(order_id=order_id, lines=[inv_ev.ReservedLine(
        sku="LAMP", warehouse_code="MAIN", quantity=1, cost=money_pb2.Money(currency_code="EUR", amount=cost))])
    return envelope.build(source="inventory", aggregate_type="reservation", aggregate_id=order_id,
                          aggregate_version=3, payload=payload).SerializeToString()


def test_a_closed_period_takes_no_posting_and_the_trial_balance_takes_a_period(finance):
    stub, consumer, engine = finance
    now = dt.datetime.now(dt.UTC)
    this_month = period_of(now)
    last_month = period_of(now.replace(day=1) - dt.timedelta(days=1))

    for period, code in (("2999-01", grpc.StatusCode.FAILED_PRECONDITION), (this_month, grpc.StatusCode.FAILED_PRECONDITION),
                         ("2026-13", grpc.StatusCode.INVALID_ARGUMENT)):
        with pytest.raises(grpc.RpcError) as refused:
            stub.ClosePeriod(pb.ClosePeriodRequest(period=period, closed_by="controller"))
        assert refused.value.code() == code, period

    closed = stub.ClosePeriod(pb.ClosePeriodRequest(period=last_month, closed_by="controller")).period
    again = stub.ClosePeriod(pb.ClosePeriodRequest(period=last_month, closed_by="someone else")).period
    assert again == closed and closed.closed_by == "controller"
    assert [p.period for p in stub.ListClosedPeriods(pb.ListClosedPeriodsRequest()).periods] == [last_month]

    # A shipment that happened last month, reported now, posts into the open period.
    assert consumer.handle(Delivery(shipped("late-1", "12.00"), 0, None)) == Ack()
    with engine.connect() as conn:
        posted_at = conn.execute(sa.text("SELECT posted_at FROM journal_entries WHERE reference = 'late-1'")).scalar()
        shipped_at = conn.execute(sa.text("SELECT shipped_at FROM cost_of_sales WHERE order_id = 'late-1'")).scalar()
    assert period_of(posted_at) == period_of(shipped_at) == this_month

    # The trial balance at the end of last month does not hold it; now it does.
    assert stub.GetTrialBalance(pb.GetTrialBalanceRequest(period=last_month)).lines == []
    lines = {x.account: x.balance.amount for x in stub.GetTrialBalance(pb.GetTrialBalanceRequest(
        period=this_month)).lines}
    assert lines == {"1200": "-12.00", "5000": "12.00"}
    with pytest.raises(grpc.RpcError) as bad:
        stub.GetTrialBalance(pb.GetTrialBalanceRequest(period="last"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Whatever inserts it, an entry dated in the closed period is refused.
    with pytest.raises(sa.exc.DBAPIError, match="closed accounting period"), engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO journal_entries (posted_at, memo, reference, currency_code) "
                             "VALUES (:at, 'backdated', 'x', 'EUR')"), {"at": now.replace(day=1) - dt.timedelta(days=1)})
