"""Wiring: the inventory service as the mesh runs it."""
from __future__ import annotations

from pathlib import Path

from erp.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from mesh.service import Runtime, ServiceSpec
from services import PORTS, topology
from services.inventory import events
from services.inventory.adapters import InventoryUnitOfWork
from services.inventory.grpc_api import InventoryServicer, valuation_currency

NAME = "inventory"


def add_servicers(server, runtime: Runtime[InventoryUnitOfWork]) -> None:
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(runtime), server)


def spec() -> ServiceSpec[InventoryUnitOfWork]:
    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=InventoryUnitOfWork,
        build_handlers=lambda runtime: events.build(runtime.cache, valuation_currency(runtime.settings)),
        near_cache=True,
    )
