"""Wiring: the crm service as the mesh runs it."""
from __future__ import annotations

from pathlib import Path

from erp.crm.v1 import crm_pb2, crm_pb2_grpc
from mesh.service import Runtime, ServiceSpec
from services import PORTS, topology
from services.crm import events
from services.crm.adapters import CrmUnitOfWork
from services.crm.grpc_api import CustomerServicer

NAME = "crm"


def add_servicers(server, runtime: Runtime[CrmUnitOfWork]) -> None:
    crm_pb2_grpc.add_CustomerServiceServicer_to_server(CustomerServicer(runtime), server)


def spec() -> ServiceSpec[CrmUnitOfWork]:
    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(crm_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=CrmUnitOfWork,
        build_handlers=lambda runtime: events.build(),
    )
