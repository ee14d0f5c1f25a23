"""The events procurement consumes: shortages (replenishment) and posted supplier bills."""
from __future__ import annotations

from erp.events.v1 import finance_events_pb2 as fin_ev
from erp.events.v1 import inventory_events_pb2 as inv_ev
from erp.events.v1.envelope_pb2 import EventEnvelope
from mesh import locks
from mesh.events.consumer import EventHandlers
from services.procurement import handlers
from services.procurement.adapters import ProcurementUnitOfWork

# Shortages raise or extend the open replenishment draft of a supplier and warehouse; which
# supplier is only known inside the handler, so the warehouse's replenishment is the aggregate
# (two shortages racing would otherwise both find no draft and raise two).
REPLENISHMENT = locks.by("replenishment", "warehouse_code")


def build(deps: handlers.Deps) -> EventHandlers:
    consumes = EventHandlers(consumer="procurement")

    @consumes.on(inv_ev.StockBelowReorderPoint, lock=REPLENISHMENT)
    def on_stock_below_reorder_point(uow: ProcurementUnitOfWork, event: inv_ev.StockBelowReorderPoint,
                                     envelope: EventEnvelope) -> None:
        handlers.on_stock_below_reorder_point(uow, deps, event.sku, event.warehouse_code, event.reorder_quantity,
                                              envelope.aggregate_version)

    @consumes.on(fin_ev.SupplierBillPosted, lock=locks.by("purchase_order", "purchase_order_id"))
    def on_supplier_bill_posted(uow: ProcurementUnitOfWork, event: fin_ev.SupplierBillPosted,
                                _envelope: EventEnvelope) -> None:
        quantities: dict[int, int] = {}
        for line in event.lines:
            quantities[line.line_no] = quantities.get(line.line_no, 0) + line.quantity
        handlers.on_bill_posted(uow, deps, event.bill_id, event.purchase_order_id, quantities)

    return consumes
