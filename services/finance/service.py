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
from mesh.service import Runtime, ServiceSpec
from mesh.settings import Settings
from services import topology
from services.finance import events
from services.finance.adapters import FinanceUnitOfWork
from services.finance.domain import FinanceConfig
from services.finance.grpc_api import FinanceServicer

NAME = "finance"


def config(settings: Settings) -> FinanceConfig:
    return FinanceConfig.parse(
        tax_rate=settings.variables.text("ERP_FINANCE_TAX_RATE", "0.20"),
        default_payment_terms_days=settings.variables.text("ERP_FINANCE_DEFAULT_PAYMENT_TERMS_DAYS", "30"),
        currency=settings.variables.text("ERP_FINANCE_CURRENCY", "EUR"),
        bill_quantity_tolerance=settings.variables.text("ERP_FINANCE_BILL_QUANTITY_TOLERANCE", "0"),
        bill_price_tolerance=settings.variables.text("ERP_FINANCE_BILL_PRICE_TOLERANCE", "0.02"),
    )


def add_servicers(server, runtime: Runtime) -> None:
    finance_pb2_grpc.add_FinanceServiceServicer_to_server(FinanceServicer(runtime, config(runtime.settings)), server)


def spec() -> ServiceSpec:
    return ServiceSpec(
        name=NAME,
        migrations_dir=Path(__file__).parent / "migrations",
        grpc_services=(finance_pb2.DESCRIPTOR.services_by_name["FinanceService"].full_name,),
        add_servicers=add_servicers,
        consumers=topology.consumers,
        uow_class=FinanceUnitOfWork,
        build_handlers=lambda runtime: events.build(config(runtime.settings)),
    )
