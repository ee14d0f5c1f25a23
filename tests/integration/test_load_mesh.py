"""The mesh the benchmark and load suites start (loadtests/localmesh.py): real service processes on
the embedded engines, and what a run leaves behind on the machine once it stops."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from loadtests import localmesh

ROOT = Path(__file__).resolve().parents[2]


def test_a_load_mesh_serves_and_leaves_no_mail_or_data_folder_behind(embedded_engines, tmp_path, monkeypatch):
    """Each run's SMTP sink keeps every email the mesh sends (about 35 MB for a bench's order rows);
    before, every run left its folder in /tmp."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where mkdtemp puts the run's folders
    engines = localmesh.Engines(embedded_engines.database_url, embedded_engines.redis_url, "", "embedded")
    with localmesh.mesh(engines, "erptest-loadmesh", services=("inventory",), sink=False) as targets:
        folders = list(tmp_path.glob("erp-load-mail-*"))
        assert folders, "the mail sink's folder is made in the temporary directory"
        (folders[0] / "kept-while-running.eml").write_bytes(b"Subject: a saved email\r\n\r\nbody\r\n")
        with grpc.insecure_channel(targets["inventory"]) as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert not list(tmp_path.glob("erp-load-mail-*")), "the run's emails and data outlived it"


def test_embedded_engines_of_a_run_are_stopped_and_removed_when_it_ends():
    """Without external engines, a run starts PostgreSQL and Redis in a folder of its own; before, the
    folder (a whole database cluster) stayed in /tmp after every run."""
    script = ("from loadtests import localmesh; import psycopg; e = localmesh.engines(); "
              "psycopg.connect(e.database_url).close(); print(e.description)")
    unreachable = {"LOAD_DATABASE_SERVER_URL": "postgresql://postgres@127.0.0.1:1/postgres",
                   "LOAD_REDIS_URL": "redis://127.0.0.1:1/0", "LOAD_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F"}
    # A short TMPDIR, not tmp_path: PostgreSQL's socket goes under it, and a Unix socket's path
    # has room for 107 bytes, which a pytest-xdist worker's tmp_path can pass.
    with tempfile.TemporaryDirectory(prefix="erp-t-") as tmp:
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("ERP_", "LOAD_"))}, **unreachable,
               "TMPDIR": tmp}
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.startswith("embedded PostgreSQL"), done.stdout
        assert not list(Path(tmp).glob("erp-load-*")), "the run's embedded engines outlived it"
