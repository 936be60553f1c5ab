"""The Docker daemon's socket, connected as root before the drop.

A daemon socket is usually root's (``0660 root:docker`` or ``0600``). Upstream's phases connect to
it once while still root and keep that connection for the rest of the run; a unix socket checks
permissions only when connecting, so an open connection keeps working after ``setuid``.

Here the phase opens a few connections (:data:`CONNECTIONS`) and sends each one ``GET /_ping``
right away, as root; the ping also tells the daemon's API version, so the client needs no request
of its own to negotiate it. The daemon client (``lifecycle/image/daemon_socket.py``) borrows one
connection per request and gives it back when the answer was read to the end; a connection left
mid-answer is closed and never used again. A daemon closes a connection that waits too long for
its next request (dockerd 20.10 did within 400 seconds, and a build can take longer), so once the
client is in use a thread pings the connections not lent out every :data:`KEEPALIVE` seconds.
With no connection left, the client connects as the CNB user, which works when that user may use
the socket. The sockets are not inherited by buildpack processes (Python creates them
close-on-exec).
"""

from __future__ import annotations

import contextlib
import select
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # imported when a daemon is connected: a layout or registry phase never loads it
    import socket

DEFAULT_SOCKET = "/var/run/docker.sock"
CONNECTIONS = 4  # one serves a run whose answers are all read through; spares for abandoned streams
KEEPALIVE = 60.0
_PING = b"GET /_ping HTTP/1.1\r\nHost: docker\r\nUser-Agent: lifecycle\r\n\r\n"
_PING_TIMEOUT = 30.0


@dataclass(eq=False)
class DaemonSockets:
    """Idle connections to the daemon socket at ``path``, opened and pinged as root."""

    path: str
    api_version: str
    _idle: list[socket.socket] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pinger: threading.Thread | None = field(default=None, repr=False)

    def take(self) -> socket.socket | None:
        """An idle connection the daemon has not closed (the last one given back first), or None."""
        with self._lock:
            while self._idle:
                sock = self._idle.pop()
                if _still_open(sock):
                    return sock
                sock.close()
            return None

    def give_back(self, sock: socket.socket) -> None:
        """Return a connection whose last answer was read to the end."""
        with self._lock:
            self._idle.append(sock)

    def left(self) -> int:
        """How many idle connections there are."""
        with self._lock:
            return len(self._idle)

    def keep_alive(self, interval: float = KEEPALIVE) -> None:
        """Ping the idle connections every ``interval`` seconds from a daemon thread (started once;
        call it after the drop: no thread runs before it)."""
        with self._lock:
            if self._pinger is not None:
                return
            self._pinger = threading.Thread(target=self._ping_loop, args=(interval,), name="daemon-keepalive",
                                            daemon=True)
        self._pinger.start()

    def _ping_loop(self, interval: float) -> None:
        stop = threading.Event()
        while not stop.wait(interval):
            with self._lock:
                alive = []
                for sock in self._idle:
                    try:
                        _ping(sock)
                        alive.append(sock)
                    except OSError:
                        sock.close()
                self._idle[:] = alive

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            for sock in self._idle:
                sock.close()
            self._idle.clear()


def socket_path(host: str) -> str | None:
    """The unix socket path of a ``DOCKER_HOST`` value (empty: the default socket); None for
    other transports (``tcp://`` and the like need no root to connect)."""
    if not host:
        return DEFAULT_SOCKET
    if not host.startswith("unix://"):
        return None
    path = urlsplit(host).path or host[len("unix://"):]
    return path or DEFAULT_SOCKET


def connect_daemon(host: str, count: int = CONNECTIONS) -> DaemonSockets | None:
    """Open ``count`` connections to the daemon socket named by ``host`` (``DOCKER_HOST``) and ping
    each. None when ``host`` is not a unix socket or the daemon cannot be reached: the daemon store
    then connects on its own when used and reports what goes wrong there, as it would unprivileged."""
    path = socket_path(host)
    if path is None:
        return None
    import socket

    sockets: list[socket.socket] = []
    version = ""
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.settimeout(_PING_TIMEOUT)
            sock.connect(path)
            version = _ping(sock) or version
    except OSError:
        for sock in sockets:
            sock.close()
        return None
    return DaemonSockets(path, version, sockets)


def _still_open(sock: socket.socket) -> bool:
    """An idle connection has nothing to read; readable means the daemon closed it (or broke the
    protocol)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


class BadPing(OSError):
    """The daemon's answer to ``GET /_ping`` was not one a kept connection can follow."""


def _ping(sock: socket.socket) -> str:
    """Send ``GET /_ping`` and read the whole answer (so the connection is idle again); return the
    ``Api-Version`` header. An unusable answer is :class:`BadPing`."""
    # Imported here: http.client loads ssl (5 MiB), which a build without a daemon never needs.
    import http.client

    sock.settimeout(_PING_TIMEOUT)
    sock.sendall(_PING)
    response = http.client.HTTPResponse(sock)
    try:
        response.begin()
        if response.will_close or (response.length is None and not response.chunked):
            # no way to tell where the answer ends, or no second request on this connection
            raise BadPing("the daemon does not keep the connection open")
        response.read()
        if response.status != 200:
            raise BadPing(f"ping answered {response.status}")
        return (response.getheader("Api-Version") or "").strip()
    except http.client.HTTPException as exc:
        raise BadPing(str(exc) or type(exc).__name__) from None
    finally:
        with contextlib.suppress(Exception):
            response.close()
