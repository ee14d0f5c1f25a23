"""In-process services for integration tests: the real servers, bound to free ports."""
from __future__ import annotations

import contextlib
import dataclasses
import importlib

import pytest

from erp_client import ErpClient
from mesh import db, service
from mesh.settings import load
from services import RUNNABLE
from tests import support


@contextlib.contextmanager
def running_mesh(engines: support.Engines, data_dir, services=RUNNABLE, replicas: int = 1, **overrides):
    """The services on the given engines; yields (client, {name: RunningService}).

    replicas > 1 runs that many copies of each service, as the chart does: they share the
    service's port (SO_REUSEPORT, so each new connection goes to one of them), compete for
    its events, and elect one relay; the dict holds the first copy of each."""
    started, copies = {}, []
    try:
        for name in services:
            spec = importlib.import_module(f"services.{name}.service").spec()
            # Each service reaches the ones started before it (procurement asks inventory).
            targets = {**load(spec.name).targets, **{n: f"127.0.0.1:{r.port}" for n, r in started.items()}}
            settings = support.settings_for(spec.name, engines, data_dir, **{"targets": targets, **overrides})
            started[spec.name] = service.start(spec, settings, reuse_port=replicas > 1)
            shared = dataclasses.replace(settings, grpc_port=started[spec.name].port)
            copies += [service.start(spec, shared, reuse_port=True) for _ in range(replicas - 1)]
        targets = {f"{name}_target": f"127.0.0.1:{running.port}" for name, running in started.items()}
        with ErpClient(**targets) as client:
            yield client, started
    finally:
        support.stop_all([*copies, *started.values()])


@pytest.fixture
def mesh(engines, tmp_path):
    with running_mesh(engines, tmp_path) as (client, started):
        yield client, started


@pytest.fixture
def embedded_engines(embedded_pg, embedded_redis):
    with support.fresh_database(embedded_pg) as url:
        yield support.Engines(url, embedded_redis, "postgres", namespace="erptest-embedded")


@pytest.fixture
def embedded_mesh(embedded_engines, tmp_path):
    """For tests of behaviour that does not depend on the engines (the gRPC contract)."""
    with running_mesh(embedded_engines, tmp_path, services=("inventory", "orders")) as (client, started):
        yield client, started


@pytest.fixture
def engine_for(postgres_server):
    """make(service): an engine on a fresh database, the service's schema migrated (repositories and
    handlers on real PostgreSQL, no running service)."""
    with support.fresh_database(postgres_server) as url:
        engines = []

        def make(name: str):
            engine = db.create_engine(url, schema=name, pool_size=2)
            engines.append(engine)
            db.migrate(engine, name, importlib.import_module(f"services.{name}.service").spec().migrations_dir)
            return engine

        yield make
        for engine in engines:
            engine.dispose()
