"""A throttled TCP relay between a client and a real server.

The fault tests put it between paramiko and the real sshd, so that a 15 MB transfer
takes seconds instead of a tenth of one: a fault injected once the transfer is
under way then lands in its middle every time, not only when the scheduler is kind.
The relay only paces bytes; the SSH session is the real one, end to end, and when
the server's side closes (a killed sshd) the client's side is closed at once.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

__all__ = ["ThrottledRelay"]

_CHUNK = 16 << 10


class ThrottledRelay:
    """Accepts on a free loopback port and relays each connection to ``upstream``.

    Args:
        upstream_port: the server's port on 127.0.0.1.
        bytes_per_second: the pace of each direction of each connection.

    Attributes:
        port: the port to connect to instead of the server's.
        sent_down: bytes relayed from the server to clients, all connections.
        sent_up: bytes relayed from clients to the server, all connections.
    """

    def __init__(self, upstream_port: int, bytes_per_second: int) -> None:
        self.upstream_port = upstream_port
        self.rate = bytes_per_second
        self.sent_down = 0
        self.sent_up = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        # A closed listener does not wake a blocked accept(): look up now and then.
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="relay-accept", daemon=True)

    def __enter__(self) -> ThrottledRelay:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and cut every open connection."""
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
            except OSError:
                _shut(client)  # the server is down: the client sees the door close
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            for source, target, down in ((server, client, True), (client, server, False)):
                threading.Thread(
                    target=self._pump, args=(source, target, down), name="relay-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, target: socket.socket, down: bool) -> None:
        start, sent = time.monotonic(), 0
        try:
            while data := source.recv(_CHUNK):
                target.sendall(data)
                sent += len(data)
                if down:
                    self.sent_down += len(data)
                else:
                    self.sent_up += len(data)
                # Pace: never ahead of ``rate`` bytes a second since the start.
                ahead = start + sent / self.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
        except OSError:
            pass
        # One side ended (or was killed): end the other, as a broken link would.
        _shut(source)
        _shut(target)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
