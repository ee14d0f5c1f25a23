"""services.devrun.free_ports: ports the servers of a local mesh, a test or a benchmark listen on."""
from __future__ import annotations

import socket

from services import devrun


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    ports = devrun.free_ports(20)
    assert len(set(ports)) == 20
    assert all(devrun._LOWEST_FREE_PORT <= port < devrun._first_ephemeral_port() for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_someone_listens_on_is_passed_over(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        picks = iter([busy, free])
        monkeypatch.setattr(devrun, "_first_ephemeral_port", lambda: 65536)
        monkeypatch.setattr(devrun._port_picks, "randrange", lambda _low, _high: next(picks))
        assert devrun.free_ports(1) == [free]


def test_with_no_room_below_the_ephemeral_range_the_kernel_picks(monkeypatch):
    monkeypatch.setattr(devrun, "_first_ephemeral_port", lambda: 1024)
    ports = devrun.free_ports(3)
    assert len(set(ports)) == 3 and all(port > 0 for port in ports)
