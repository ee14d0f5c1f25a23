"""A TCP proxy a test owns, that can black-hole the server behind it.

While black-holed it still accepts connections and takes what clients send, but forwards
nothing and answers nothing: to a client the server is there and silent, which is what a
dropped network path looks like to anything that waits for an answer (a connection's
start-up, a query). Only the proxy's own port is affected, never the shared server.
"""
from __future__ import annotations

import socket
import threading


class BlackHoleProxy:
    """Listens on a TCP port of 127.0.0.1 and forwards to target_host:target_port, or, given
    `unix_path`, to the server's Unix socket there (an embedded PostgreSQL listens on one only)."""

    def __init__(self, target_host: str = "", target_port: int = 0, unix_path: str | None = None) -> None:
        self.target = (target_host, target_port)
        self.unix_path = unix_path
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.silent = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def black_hole(self) -> None:
        """From now on nothing passes, either way, on old connections and new ones."""
        self.silent.set()

    def heal(self) -> None:
        """New connections pass again; the ones cut while silent are closed (as a router's
        lost state would leave them), so their clients see an error instead of waiting."""
        self.silent.clear()
        with self._lock:
            cut, self._sockets = self._sockets, []
        for s in cut:
            # shutdown, not only close: a pump thread blocked in recv() on the socket keeps it open
            # (no FIN) after a close() from another thread, and its client would wait for ever.
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.heal()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = None
            if not self.silent.is_set():
                try:
                    upstream = self._connect()
                except OSError:
                    client.close()
                    continue
            with self._lock:
                self._sockets += [client] + ([upstream] if upstream else [])
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _connect(self) -> socket.socket:
        if self.unix_path is None:
            upstream = socket.create_connection(self.target, timeout=5)
        else:
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.settimeout(5)
            try:
                upstream.connect(self.unix_path)
            except OSError:
                upstream.close()
                raise
        upstream.settimeout(None)  # the timeout was for connecting: an idle link is fine
        return upstream

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        try:
            while data := source.recv(65536):
                if sink is not None and not self.silent.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        for s in (source, sink):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def main() -> None:
    """`python -m chaos.blackhole TARGET_PORT`: serves the proxy in a process of its own (so its
    pumping never competes with the caller for a GIL), prints its port, then black-holes on SIGUSR1
    and heals on SIGUSR2 until SIGTERM."""
    import signal
    import sys

    proxy = BlackHoleProxy("127.0.0.1", int(sys.argv[1]))
    signal.signal(signal.SIGUSR1, lambda *_: proxy.black_hole())
    signal.signal(signal.SIGUSR2, lambda *_: proxy.heal())
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(proxy.port, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
