"""Reconciliation: each service compares the projections it keeps of other services' events
with their sources, reports the drift, and repairs it where the repair is unambiguous.

A check (services/<name>/reconcile.py) reads its own service's tables, the projection side,
with that service's settings (its own database URL and schema, as the service itself would),
and reads the sources only through the other services' gRPC APIs. A repair goes through the
service's own handler of the event that was lost (inventory's release of a closed order's
reservation, crm's closing of a rejected order's exposure), under the same aggregate lock, so
it is what the event would have done and is harmless if the event comes after all.

Events in flight look like drift for a moment. So the checks run twice, `settle` seconds
apart, and only what both passes found counts (and is repaired); each pass reads a projection
before its source, so anything the source created since is not mistaken for a gap.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import grpc
import sqlalchemy as sa

from erp.common.v1 import paging_pb2

if TYPE_CHECKING:
    from erp.finance.v1 import finance_pb2
    from erp.orders.v1 import orders_pb2
    from erp_client.client import ErpClient

T = TypeVar("T")

PAGE_SIZE = 500  # the most a List call returns (mesh.paging)


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str  # e.g. "inventory.reservations"
    kind: str  # what is wrong, e.g. "held by a closed order"
    key: str  # which record, e.g. "order 8d3f"
    detail: str  # the two sides' figures
    # Puts it right and says what it did; None when no repair is unambiguous.
    repair: Callable[[], str] | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.check, self.kind, self.key


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    what: str  # one line: the projection and its source
    find: Callable[[Sources], list[Finding]]


@dataclasses.dataclass
class Owner:
    """A service's own side: its database (its schema), units of work, and what its handlers need."""

    service: str
    engine: sa.Engine
    uow: Callable[[], Any]
    extras: dict[str, Any]

    def rows(self, sql: str, **params: object) -> Sequence[sa.Row[Any]]:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(sql), params).all()

    def close(self) -> None:
        self.engine.dispose()
        for extra in self.extras.values():
            getattr(extra, "close", lambda: None)()


class Sources:
    """What checks read: `client` (an erp_client.ErpClient) for the sources, `owner(service)`
    for a service's own side, and listings read once per pass (`listing`)."""

    def __init__(self, client: ErpClient, open_owner: Callable[[str], Owner]) -> None:
        self.client = client
        self._open_owner = open_owner
        self._owners: dict[str, Owner] = {}
        self._listings: dict[str, Any] = {}

    def owner(self, service: str) -> Owner:
        if service not in self._owners:
            self._owners[service] = self._open_owner(service)
        return self._owners[service]

    def listing(self, name: str, read: Callable[[], T]) -> T:
        """read()'s result, read once per pass (several checks read all orders)."""
        if name not in self._listings:
            self._listings[name] = read()
        return cast(T, self._listings[name])  # what read() returned, under its name

    def orders(self) -> dict[str, orders_pb2.Order]:
        """Every sales order, by id (orders' ListOrders)."""
        from erp.orders.v1 import orders_pb2

        return self.listing("orders", lambda: {o.order_id: o for o in paged(
            self.client.orders.ListOrders, orders_pb2.ListOrdersRequest(), "orders")})

    def invoices(self) -> list[finance_pb2.Invoice]:
        """Every customer invoice (finance's ListInvoices)."""
        from erp.finance.v1 import finance_pb2

        return self.listing("invoices", lambda: list(paged(
            self.client.finance.ListInvoices, finance_pb2.ListInvoicesRequest(), "invoices")))

    def next_pass(self) -> None:
        self._listings.clear()

    def close(self) -> None:
        for owner in self._owners.values():
            owner.close()


def paged(call: Callable[..., Any], request: Any, field: str) -> Iterator[Any]:
    """Every item of a paged List call (PageRequest in `page`, next_page_token in the answer)."""
    token = ""
    while True:
        request.page.CopyFrom(paging_pb2.PageRequest(page_size=PAGE_SIZE, page_token=token))
        answer = call(request)
        yield from getattr(answer, field)
        token = answer.next_page_token
        if not token:
            return



@dataclasses.dataclass
class Result:
    checks: list[Check]
    drift: list[Finding]  # found by both passes
    repaired: dict[tuple[str, str, str], str]  # finding identity -> what the repair did
    failed: dict[tuple[str, str, str], str]  # finding identity -> why its repair failed
    errors: dict[str, str] = dataclasses.field(default_factory=dict)  # check -> why it could not run

    @property
    def clean(self) -> bool:
        return not self.drift and not self.errors

    def count(self, check: str) -> int:
        return sum(1 for f in self.drift if f.check == check)


def run(checks: list[Check], sources: Sources, *, repair: bool, settle: float,
        sleep: Callable[[float], None] = time.sleep) -> Result:
    """Both passes, then the repairs of what both found (when `repair`). A check that cannot
    read a side (a service down) is an error of that check; the others still run."""
    errors: dict[str, str] = {}
    first = {f.identity for f in _pass(checks, sources, errors)}
    drift: list[Finding] = []
    if first:
        sleep(settle)
        sources.next_pass()
        drift = [f for f in _pass(checks, sources, errors) if f.identity in first]
    result = Result(checks, drift, {}, {}, errors)
    for finding in drift:
        if repair and finding.repair is not None:
            try:
                result.repaired[finding.identity] = finding.repair()
            except Exception as exc:  # noqa: BLE001 - reported; the other repairs still run
                result.failed[finding.identity] = f"{exc.__class__.__name__}: {exc}"
    return result


def _pass(checks: list[Check], sources: Sources, errors: dict[str, str]) -> list[Finding]:
    findings = []
    for check in checks:
        try:
            findings += check.find(sources)
        except Exception as exc:  # noqa: BLE001 - reported as the check's error (exit 1)
            errors[check.name] = _error(exc)
    return findings


def _error(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"a service answered {exc.code().name}: {exc.details()}"
    return f"{exc.__class__.__name__}: {exc}"


def report(result: Result, *, repair: bool) -> str:
    """The report: one line per check, then each drift with its repair, if any."""
    lines = [f"{'check':<24} {'drift':>5}  what is compared"]
    for check in result.checks:
        count = "ERROR" if check.name in result.errors else result.count(check.name)
        lines.append(f"{check.name:<24} {count:>5}  {check.what}")
    for name, error in result.errors.items():
        lines.append(f"\n{name}: could not be checked: {error}")
    for finding in result.drift:
        lines.append(f"\n{finding.check}: {finding.kind}: {finding.key}\n    {finding.detail}")
        if finding.identity in result.repaired:
            lines.append(f"    REPAIRED: {result.repaired[finding.identity]}")
        elif finding.identity in result.failed:
            lines.append(f"    repair FAILED: {result.failed[finding.identity]}")
        elif finding.repair is not None and not repair:
            lines.append("    repairable: run without --dry-run to repair it")
        else:
            lines.append("    not repaired: no unambiguous repair; look into it")
    total, fixed = len(result.drift), len(result.repaired)
    if total:
        lines.append(f"\n{total} drift{'s' if total != 1 else ''} found, {fixed} repaired")
    elif result.errors:
        lines.append(f"\nno drift in the {len(result.checks) - len(result.errors)} checks that ran")
    else:
        lines.append("\nno drift: every projection agrees with its source")
    return "\n".join(lines)


def write_metrics(result: Result, path: str) -> None:
    """The drift as Prometheus metrics in a text file (for node_exporter's textfile collector)."""
    from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

    registry = CollectorRegistry()
    drift = Gauge("erp_reconcile_drift", "records whose projection disagrees with its source, at the last run",
                  ["check"], registry=registry)
    repaired = Gauge("erp_reconcile_repaired", "drifting records repaired by the last run", ["check"],
                     registry=registry)
    last = Gauge("erp_reconcile_last_run_timestamp_seconds", "when reconciliation last ran", registry=registry)
    for check in result.checks:
        drift.labels(check.name).set(result.count(check.name))
        repaired.labels(check.name).set(sum(1 for key in result.repaired if key[0] == check.name))
    last.set_to_current_time()
    write_to_textfile(path, registry)
