"""Wiring: the procurement service as the mesh runs it.

Settings of its own (README's configuration table):
- ERP_PROCUREMENT_SECOND_APPROVAL_ABOVE (default "10000.00"): purchase orders with a
  larger total need a second approval by a different approver;
- ERP_PROCUREMENT_OVER_RECEIPT_TOLERANCE (default "0.05"): fraction of a line's ordered
  quantity that may be received on top of it (rounded down to whole units);
- ERP_PROCUREMENT_SEGREGATE_DUTIES (default "true"): whoever submitted a purchase order
  cannot approve it (FAILED_PRECONDITION saying so).
It asks inventory (ERP_INVENTORY_TARGET) whether SKUs and warehouses exist when drafts
and prices are edited.
"""
from __future__ import annotations

from pathlib import Path

from erp.procurement.v1 import procurement_pb2, procurement_pb2_grpc
from mesh.service import Runtime, ServiceSpec
from mesh.settings import Settings
from services import PORTS, topology
from services.procurement import events
from services.procurement.adapters import InventoryCatalog, ProcurementUnitOfWork
from services.procurement.domain import ProcurementConfig
from services.procurement.grpc_api import ProcurementServicer
from services.procurement.handlers import Deps

NAME = "procurement"


def deps(settings: Settings) -> Deps:
    return Deps(ProcurementConfig.from_settings(settings), InventoryCatalog(settings))


def add_servicers(server, runtime: Runtime[ProcurementUnitOfWork]) -> None:
    procurement_pb2_grpc.add_ProcurementServiceServicer_to_server(
        ProcurementServicer(runtime, deps(runtime.settings)), server)


def spec() -> ServiceSpec[ProcurementUnitOfWork]:
    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(procurement_pb2.DESCRIPTOR.services_by_name["ProcurementService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=ProcurementUnitOfWork,
        build_handlers=lambda runtime: events.build(deps(runtime.settings)),
    )
