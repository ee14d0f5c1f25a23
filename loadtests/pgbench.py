"""pgbench's TPC-B (its default script) on the benchmark's PostgreSQL, in a database of its own.

The reference the order throughput is compared with: what this PostgreSQL does, on this machine at this
moment, with simple read-write transactions (3 UPDATEs, a SELECT and an INSERT each).
"""
from __future__ import annotations

import subprocess

from loadtests.accounting import parse_pgbench_tps


def tpc_b(server_url: str, database: str, scale: int, clients: int, seconds: float) -> dict:
    """{'tps', 'scale', 'clients', 'seconds'} or {'failed': why}; the database is dropped afterwards."""
    import psycopg

    url = server_url.rsplit("/", 1)[0] + "/" + database
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        init = subprocess.run(["pgbench", "-i", "-q", "-s", str(scale), url], capture_output=True, text=True,
                              timeout=600)
        if init.returncode:
            return {"failed": "pgbench -i: " + init.stderr.strip()[-300:]}
        run = subprocess.run(["pgbench", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), url],
                             capture_output=True, text=True, timeout=seconds + 120)
        tps = parse_pgbench_tps(run.stdout)
        if run.returncode or tps is None:
            return {"failed": "pgbench: " + (run.stderr or run.stdout).strip()[-300:]}
        return {"tps": tps, "scale": scale, "clients": clients, "seconds": seconds}
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
