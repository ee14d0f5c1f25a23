"""Gauges read from a service's own database when Prometheus scrapes: the outbox's backlog and
the dead letters of every service, and whatever a service adds (orders: orders by status).

Read on scrape, not kept up to date by the code that writes the rows, so they are right after a
restart, across replicas and whatever wrote the rows (a migration, `erp deadletters`). One
collector per process holds every service the process runs; a query that fails or runs past
SAMPLE_TIMEOUT_MS leaves that service's gauges out of the scrape and counts
erp_metrics_sample_errors_total, so an outage shows as missing data, not as zeros."""
from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from prometheus_client import REGISTRY, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("mesh.metrics")

SAMPLE_TIMEOUT_MS = 2000
SAMPLE_ERRORS = Counter("erp_metrics_sample_errors_total",
                        "scrapes whose database-derived gauges could not be read", ["service"])


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    help: str
    labels: tuple[str, ...] = ("service",)


OUTBOX_PENDING = Family("erp_outbox_pending",
                        "outbox rows not yet published, of types a queue takes (unrouted and parked ones left out)")
OUTBOX_OLDEST_AGE = Family("erp_outbox_oldest_pending_age_seconds",
                           "age of the oldest of erp_outbox_pending's rows; 0 when none waits")
OUTBOX_UNROUTED = Family("erp_outbox_unrouted",
                         "unpublished outbox rows of types no queue takes yet, parked after ERP_UNROUTABLE_GRACE_SECONDS")
OUTBOX_PARKED = Family("erp_outbox_parked", "outbox rows parked because no queue took them (erp deadletters)")
DEAD_LETTERS = Family("erp_dead_letters", "deliveries dead-lettered and held for replay or discard (erp deadletters)")

# A sampler reads one service's database and yields (family, label values after "service", value).
Sample = tuple[Family, tuple[str, ...], float]
Sampler = Callable[[sa.Connection], Iterable[Sample]]

# A type the relay found no queue for (it marks the type's first row "no queue bound to ...") is
# held back until a consumer appears or the grace period parks it: counted apart, so that the lag
# alert on the oldest pending row is not set off by the event types nobody consumes.
_BACKLOG = sa.text("""
    WITH unsent AS (SELECT event_type, created_at, last_error FROM outbox WHERE published_at IS NULL),
         unrouted AS (SELECT DISTINCT event_type FROM unsent WHERE last_error LIKE 'no queue bound to %')
    SELECT count(*) FILTER (WHERE NOT held) AS pending,
           coalesce(extract(epoch FROM now() - min(created_at) FILTER (WHERE NOT held)), 0) AS oldest,
           count(*) FILTER (WHERE held) AS unrouted,
           (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL) AS parked,
           (SELECT count(*) FROM dead_letters) AS dead
    FROM (SELECT created_at, event_type IN (SELECT event_type FROM unrouted) AS held FROM unsent) AS rows""")


def backlog(conn: sa.Connection) -> Iterable[Sample]:
    row = conn.execute(_BACKLOG).one()
    yield OUTBOX_PENDING, (), float(row.pending)
    yield OUTBOX_OLDEST_AGE, (), float(row.oldest)
    yield OUTBOX_UNROUTED, (), float(row.unrouted)
    yield OUTBOX_PARKED, (), float(row.parked)
    yield DEAD_LETTERS, (), float(row.dead)


@dataclasses.dataclass(frozen=True)
class Gauges:
    """A service's own sampled gauges (ServiceSpec.gauges): the families, and what reads them."""

    families: tuple[Family, ...]
    samplers: tuple[Sampler, ...]


@dataclasses.dataclass(frozen=True)
class _Watched:
    service: str
    engine: sa.Engine
    samplers: tuple[Sampler, ...]
    families: tuple[Family, ...]


class _DatabaseGauges(Collector):
    def __init__(self) -> None:
        self._watched: dict[int, _Watched] = {}
        self._lock = threading.Lock()

    def watch(self, watched: _Watched) -> Callable[[], None]:
        with self._lock:
            self._watched[id(watched)] = watched
        return lambda: self._forget(id(watched))

    def _forget(self, key: int) -> None:
        with self._lock:
            self._watched.pop(key, None)

    def describe(self) -> list[Metric]:
        return []  # registered once; its names are not checked against the other collectors'

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            watched = list(self._watched.values())
        families: dict[str, GaugeMetricFamily] = {}
        for one in {w.service: w for w in reversed(watched)}.values():  # replicas in one process: the first
            for family in one.families:
                families.setdefault(family.name, GaugeMetricFamily(family.name, family.help, labels=family.labels))
            for family, labels, value in _read(one):
                families[family.name].add_metric((one.service, *labels), value)
        yield from families.values()


def _read(watched: _Watched) -> list[Sample]:
    try:
        with watched.engine.begin() as conn:
            conn.execute(sa.text(f"SET LOCAL statement_timeout = {SAMPLE_TIMEOUT_MS}"))
            return [sample for sampler in watched.samplers for sample in sampler(conn)]
    except Exception as exc:  # noqa: BLE001 - a scrape never fails for one service's database
        log.debug("gauges of %s not read: %s", watched.service, exc.__class__.__name__)
        SAMPLE_ERRORS.labels(watched.service).inc()
        return []


_COLLECTOR = _DatabaseGauges()
REGISTRY.register(_COLLECTOR)


def watch(service: str, engine: sa.Engine, own: Gauges | None = None) -> Callable[[], None]:
    """Serves the backlog's gauges, and `own`, for `service` from now on; returns the call that stops it."""
    own = own or Gauges((), ())
    SAMPLE_ERRORS.labels(service)  # the series exists at 0 from the start
    return _COLLECTOR.watch(_Watched(service, engine, (backlog, *own.samplers),
                                     (OUTBOX_PENDING, OUTBOX_OLDEST_AGE, OUTBOX_UNROUTED, OUTBOX_PARKED, DEAD_LETTERS,
                                      *own.families)))
