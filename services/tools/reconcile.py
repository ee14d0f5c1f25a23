"""Reconciliation (`make reconcile`, `erp reconcile`): compare each service's projections with
their sources, report the drift, repair what is unambiguous (mesh/reconcile.py).

    python -m services.tools.reconcile [CHECK ...] [--dry-run] [--settle SECONDS] [--metrics-file PATH]

The checks (all by default): inventory.reservations, inventory.receipts, crm.exposure,
finance.invoices (services/<name>/reconcile.py say what each compares and repairs). Uses the
services' own ERP_* settings: each service's database URL for its own side, ERP_<SERVICE>_TARGET
for the others' gRPC APIs (with an internal token when ERP_INTERNAL_AUTH is on).
Exit status: 0 no drift, 1 drift found (repaired or not: the report says which) or a check that
could not run (a service or database unreachable: the others still run), 2 a usage error.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from erp_client.channel import DEFAULT_TIMEOUT_SECONDS
from erp_client.client import ErpClient
from mesh import db, reconcile
from mesh.cache import Cache
from mesh.interceptors import ClientInterceptor
from mesh.service import database_url, redis_url
from mesh.settings import load
from services import local_targets
from services.crm import reconcile as crm
from services.finance import reconcile as finance
from services.inventory import reconcile as inventory

CHECKS = {check.name: check for check in [*inventory.CHECKS, *crm.CHECKS, *finance.CHECKS]}
CALLER = "reconcile"  # the internal token's client id: service:reconcile


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Compare each service's projections with their sources; "
                                "report the drift, repair what is unambiguous. Exit 1 on drift.")
    p.add_argument("checks", nargs="*", metavar="CHECK", help=f"default: all ({', '.join(CHECKS)})")
    p.add_argument("--dry-run", action="store_true", help="report only, repair nothing")
    p.add_argument("--settle", type=float, default=5.0, metavar="SECONDS",
                   help="wait between the two passes; only drift both find counts (events in flight settle)")
    p.add_argument("--metrics-file", metavar="PATH",
                   help="also write the drift as Prometheus metrics (erp_reconcile_drift{check}) to this file")
    return p


def open_owner(service: str) -> reconcile.Owner:
    """A service's own side, with its own settings: its database, units of work and cache."""
    spec = importlib.import_module(f"services.{service}.service").spec()
    settings = load(service)
    engine = db.create_engine(database_url(settings), schema=settings.schema, pool_size=2,
                              timeouts=db.Timeouts.from_env(settings.env))
    cache = Cache(redis_url(settings), prefix=f"{settings.cache_prefix}:{service}",
                  ttl_seconds=settings.cache_ttl_seconds)
    return reconcile.Owner(service, engine, lambda: spec.uow_class(engine, service), {"cache": cache})


def client() -> ErpClient:
    settings = load(CALLER)
    secret = settings.internal_token_secret if settings.internal_auth else ""
    interceptor = ClientInterceptor(DEFAULT_TIMEOUT_SECONDS, internal_secret=secret, service=CALLER)
    targets = {**local_targets(), **settings.targets}  # make run's addresses unless told otherwise
    return ErpClient(inventory_target=targets["inventory"], orders_target=targets["orders"],
                     crm_target=targets["crm"], finance_target=targets["finance"],
                     notification_target=targets["notification"], procurement_target=targets["procurement"],
                     interceptors=(interceptor,))


def main(argv: list[str] | None = None, prog: str = "python -m services.tools.reconcile") -> int:
    args = parser(prog).parse_args(argv)
    unknown = sorted(set(args.checks) - set(CHECKS))
    if unknown:
        print(f"error: unknown checks: {', '.join(unknown)} (known: {', '.join(CHECKS)})", file=sys.stderr)
        return 2
    checks = [CHECKS[name] for name in args.checks or CHECKS]
    try:
        with client() as erp:
            sources = reconcile.Sources(erp, open_owner)
            try:
                result = reconcile.run(checks, sources, repair=not args.dry_run, settle=args.settle)
            finally:
                sources.close()
    except Exception as exc:  # noqa: BLE001 - a setting wrong, and the like: say so, exit 1
        print(f"error: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    print(reconcile.report(result, repair=not args.dry_run))
    if args.metrics_file:
        reconcile.write_metrics(result, args.metrics_file)
    return 0 if result.clean else 1


if __name__ == "__main__":
    sys.exit(main())
