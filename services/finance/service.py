"""Wiring: the finance service as the mesh runs it.

Settings of its own (README's configuration table):
- ERP_FINANCE_TAX_RATE (default "0.20"): tax rate on invoice subtotals, a decimal 0-1;
- ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS (default 30): days to pay when the customer's
  terms are not known (no CustomerUpdated received yet);
- ERP_FINANCE_CURRENCY (default "EUR"): currency of the trial balance and aging reports
  when a request names none;
- ERP_FINANCE_BILL_QUANTITY_TOLERANCE (default "0"): how far, as a fraction, the quantity
  billed may go over the quantity received and ordered (0.05: 5%);
- ERP_FINANCE_BILL_PRICE_TOLERANCE (default "0.02"): how far, as a fraction, a billed unit
  price may differ from the purchase order's, either way.
"""
from __future__ import annotations

from pathlib import Path

from erp.finance.v1 import finance_pb2, finance_pb2_grpc
from mesh.interceptors import HandlerRegistry
from mesh.service import Runtime, ServiceSpec
from services import PORTS, topology
from services.finance import events
from services.finance.adapters import FinanceUnitOfWork
from services.finance.grpc_api import FinanceServicer
from services.finance.ledger.domain import FinanceConfig

NAME = "finance"


def add_servicers(server: HandlerRegistry, runtime: Runtime[FinanceUnitOfWork]) -> None:
    finance_pb2_grpc.add_FinanceServiceServicer_to_server(
        FinanceServicer(runtime, FinanceConfig.from_settings(runtime.settings)), server)


def spec() -> ServiceSpec[FinanceUnitOfWork]:
    return ServiceSpec(
        name=NAME,
        port=PORTS[NAME],
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(finance_pb2.DESCRIPTOR.services_by_name["FinanceService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=FinanceUnitOfWork,
        build_handlers=lambda runtime: events.build(FinanceConfig.from_settings(runtime.settings)),
    )
