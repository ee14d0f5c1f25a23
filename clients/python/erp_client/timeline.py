"""`erp order timeline`: an order's steps across the services as a readable table.

    time (UTC)               service       step              detail
    2026-03-01 12:00:00.120  orders        placed            2 line(s), 3 unit(s), total 448.99 EUR before tax
    2026-03-01 12:00:00.180  inventory     stock reserved    reserved 3 x CHAIR@MAIN, 1 x DESK@MAIN
    ...
    awaiting: finance: payment: 538.79 EUR due; orders: shipment (someone marks the order shipped)
"""
from __future__ import annotations

from erp.orders.v1 import orders_pb2 as pb

COLUMNS = ("time (UTC)", "service", "step", "detail")


def step_name(kind: int) -> str:
    """TIMELINE_STEP_KIND_STOCK_RESERVED -> 'stock reserved'."""
    return pb.TimelineStepKind.Name(kind).removeprefix("TIMELINE_STEP_KIND_").lower().replace("_", " ")


def rows(timeline: pb.GetOrderTimelineResponse) -> list[tuple[str, str, str, str]]:
    return [(step.occurred_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], step.service,
             step_name(step.kind), step.detail) for step in timeline.steps]


def awaiting_line(timeline: pb.GetOrderTimelineResponse) -> str:
    awaited = "; ".join(f"{a.service}: {a.description}" for a in timeline.awaiting)
    return f"awaiting: {awaited or 'nothing'}"


def render(timeline: pb.GetOrderTimelineResponse) -> str:
    """The table, with a title line (order and status) and a last line of what is awaited."""
    table = [COLUMNS, *rows(timeline)]
    widths = [max(len(row[i]) for row in table) for i in range(len(COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
             for row in table]
    status = pb.OrderStatus.Name(timeline.status).removeprefix("ORDER_STATUS_").lower()
    return "\n".join([f"order {timeline.order_id}: {status}", *lines, awaiting_line(timeline)])
