"""The saga finishes (DESIGN decision 12): a PENDING order whose answers were lost is driven
again, then concluded, never left PENDING.

Every ERP_ORDER_PENDING_SWEEP_SECONDS each replica looks for orders still PENDING
ERP_ORDER_PENDING_DEADLINE_SECONDS after their placement (or their last drive) and hands each
to handlers.drive_past_deadline: its OrderPlaced is published again through the outbox, and
after ERP_ORDER_PENDING_MAX_DRIVES drives it is rejected, which compensates.

Two replicas sweep at once, with no leader: each order is handled in its own transaction that
first tries the order's advisory lock (the one every consumer of its answers takes) without
waiting, then looks at the order again under it. A busy order (its answer being applied, or the
other replica driving it) is skipped until the next round, and one driven a moment ago is no
longer past its deadline, so an order is driven once per deadline whichever replica gets it.
Why not a leader: the work spreads over the replicas, and a leader stuck on a dead connection
would stop every sweep until its lock was released.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable

from mesh import faults, metrics
from mesh.service import Runtime
from mesh.settings import Settings
from services.orders import handlers
from services.orders.adapters import OrdersUnitOfWork

log = logging.getLogger("services.orders.deadline")
BATCH = 200  # orders read per query while sweeping


@dataclasses.dataclass(frozen=True)
class Deadline:
    after: dt.timedelta  # ERP_ORDER_PENDING_DEADLINE_SECONDS
    max_drives: int  # ERP_ORDER_PENDING_MAX_DRIVES
    sweep_seconds: float  # ERP_ORDER_PENDING_SWEEP_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Deadline:
        v = settings.variables
        return cls(after=dt.timedelta(seconds=v.number("ERP_ORDER_PENDING_DEADLINE_SECONDS", 300.0, least=0.0)),
                   max_drives=v.integer("ERP_ORDER_PENDING_MAX_DRIVES", 3, least=0),
                   sweep_seconds=v.number("ERP_ORDER_PENDING_SWEEP_SECONDS", 30.0, least=0.05))


@dataclasses.dataclass
class Swept:
    driven: int = 0
    rejected: int = 0
    skipped: int = 0  # answered or driven meanwhile, or busy: looked at again next round


def sweep(uow_factory: Callable[[], OrdersUnitOfWork], deadline: Deadline,
          stop: threading.Event | None = None) -> Swept:
    """One round over every order past its deadline, oldest first."""
    swept, after = Swept(), None
    while stop is None or not stop.is_set():
        with uow_factory() as uow:
            due = uow.orders.past_deadline(deadline.after, after, BATCH)
        for _, order_id in due:
            if stop is not None and stop.is_set():
                break  # shutting down: the rest waits for a replica's next round
            outcome = _drive(uow_factory, order_id, deadline)
            if outcome == handlers.DRIVEN:
                swept.driven += 1
                metrics.ORDERS_DRIVEN_AGAIN.inc()
            elif outcome == handlers.REJECTED:
                swept.rejected += 1
                metrics.ORDERS_REJECTED_BY_DEADLINE.inc()
            else:
                swept.skipped += 1
        if len(due) < BATCH:
            break
        after = due[-1]
    return swept


def _drive(uow_factory: Callable[[], OrdersUnitOfWork], order_id: str, deadline: Deadline) -> str | None:
    try:
        return handlers.drive_past_deadline(uow_factory(), order_id, deadline.after, deadline.max_drives)
    except Exception as exc:
        if faults.is_infrastructure(exc):
            raise  # the database went away: the round stops, the next one starts over
        log.exception("saga deadline: order %s could not be driven; next round tries again", order_id)
        return None


def run(runtime: Runtime[OrdersUnitOfWork], stop: threading.Event) -> None:
    """The orders service's background thread (ServiceSpec.background): a sweep every
    ERP_ORDER_PENDING_SWEEP_SECONDS until stop; a database that does not answer is tried
    again next round."""
    deadline = Deadline.from_settings(runtime.settings)
    while not stop.wait(deadline.sweep_seconds):
        try:
            swept = sweep(runtime.uow, deadline, stop)
        except Exception as exc:  # noqa: BLE001 - an outage: the orders wait for the next round
            log.warning("saga deadline sweep failed (%s: %s); next round in %gs", exc.__class__.__name__, exc,
                        deadline.sweep_seconds)
            continue
        if swept.driven or swept.rejected:
            log.info("saga deadline: %d pending orders driven again, %d rejected (%d skipped until next round)",
                     swept.driven, swept.rejected, swept.skipped)
