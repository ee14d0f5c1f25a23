"""The events procurement consumes: shortages (replenishment) and posted supplier bills."""
from __future__ import annotations

from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from mesh.events.consumer import EventHandlers
from services.procurement import handlers


def build(deps: handlers.Deps) -> EventHandlers:
    consumes = EventHandlers(consumer="procurement")

    @consumes.on(inv_ev.StockBelowReorderPoint)
    def on_stock_below_reorder_point(uow, event: inv_ev.StockBelowReorderPoint, envelope) -> None:
        handlers.on_stock_below_reorder_point(uow, deps, event.sku, event.warehouse_code, event.reorder_quantity,
                                              envelope.envelope.aggregate_version)

    @consumes.on(fin_ev.SupplierBillPosted)
    def on_supplier_bill_posted(uow, event: fin_ev.SupplierBillPosted, _envelope) -> None:
        quantities: dict[int, int] = {}
        for line in event.lines:
            quantities[line.line_no] = quantities.get(line.line_no, 0) + line.quantity
        handlers.on_bill_posted(uow, deps, event.bill_id, event.purchase_order_id, quantities)

    return consumes
