"""Wiring: the orders service as the mesh runs it."""
from __future__ import annotations

from pathlib import Path

from erp.orders.v1 import orders_pb2, orders_pb2_grpc
from mesh.events.consumer import EventHandlers
from mesh.service import Runtime, ServiceSpec
from services import PORTS, topology
from services.orders import deadline, events, gauges
from services.orders.adapters import OrdersUnitOfWork
from services.orders.domain import OrdersConfig
from services.orders.grpc_api import OrderServicer

NAME = "orders"


def add_servicers(server, runtime: Runtime[OrdersUnitOfWork]) -> None:
    orders_pb2_grpc.add_OrderServiceServicer_to_server(OrderServicer(runtime, OrdersConfig.from_settings(runtime.settings)), server)


def build_handlers(runtime: Runtime[OrdersUnitOfWork]) -> EventHandlers:
    deadline.Deadline.from_settings(runtime.settings)  # bad settings fail the start-up, not the sweeper's thread
    return events.build()


def spec() -> ServiceSpec[OrdersUnitOfWork]:
    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(orders_pb2.DESCRIPTOR.services_by_name["OrderService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=OrdersUnitOfWork,
        build_handlers=build_handlers,
        background=deadline.run,  # the saga's deadline: PENDING orders driven again, then concluded
        gauges=gauges.build,
    )
