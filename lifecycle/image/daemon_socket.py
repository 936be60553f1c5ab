"""A Docker client over connections opened before the drop (``lifecycle/priv/daemon.py``).

After a phase drops to the CNB user it may no longer connect to a root-owned daemon socket, so
the client's transport borrows its connections from :class:`~lifecycle.priv.daemon.DaemonSockets`
instead of connecting. urllib3 hands a connection to one request at a time and puts it back only
when its answer was read to the end; then its socket goes back to the ``DaemonSockets`` (which
keeps idle ones alive), so the next request, or another client made from the same connections (a
creator's export step after its analyze step), reuses it. A connection left mid-answer (an
abandoned ``docker save`` stream, an error) is closed and never used again. With no pre-opened
connection left, a connection is made as the CNB user, which works when that user may use the
socket.
"""

from __future__ import annotations

import functools
from typing import Any

import docker
from docker.transport.unixconn import UnixHTTPAdapter, UnixHTTPConnection, UnixHTTPConnectionPool

from lifecycle.priv.daemon import DaemonSockets

# The oldest API docker-py accepts; only used when the ping did not name the daemon's version.
_FALLBACK_VERSION = "1.24"
_POOL_SIZE = 8  # connection objects kept; their sockets live in the DaemonSockets while idle


class _PreopenedConnection(UnixHTTPConnection):  # type: ignore[misc]
    """An HTTP connection whose socket is borrowed from the pre-opened ones while one is left."""

    def __init__(self, base_url: str, sockets: DaemonSockets, timeout: float) -> None:
        super().__init__(base_url, sockets.path, timeout)
        self._preopened = sockets

    def connect(self) -> None:
        sock = self._preopened.take()
        if sock is None:
            super().connect()  # as the current user: works only if it may use the socket
            return
        sock.settimeout(self.timeout)
        self.sock = sock


class _PreopenedPool(UnixHTTPConnectionPool):  # type: ignore[misc]
    def __init__(self, base_url: str, sockets: DaemonSockets, timeout: float) -> None:
        super().__init__(base_url, sockets.path, timeout, maxsize=_POOL_SIZE)
        self._preopened = sockets

    def _new_conn(self) -> _PreopenedConnection:
        return _PreopenedConnection(self.base_url, self._preopened, self.timeout)

    def _put_conn(self, conn: Any) -> None:
        # urllib3 puts a connection back only once its answer was read (an abandoned one was closed
        # first, so its socket is gone): its socket is idle and goes back to the shared ones.
        if conn is not None and conn.sock is not None:
            sock, conn.sock = conn.sock, None
            self._preopened.give_back(sock)
        super()._put_conn(conn)


class _PreopenedAdapter(UnixHTTPAdapter):  # type: ignore[misc]
    """One pool for every URL, never closed by a client: its connections could not be opened again."""

    def __init__(self, sockets: DaemonSockets, timeout: float) -> None:
        super().__init__(f"http+unix://{sockets.path}", timeout)
        self._pool = _PreopenedPool("http+docker://localhost", sockets, timeout)

    def get_connection(self, url: str, proxies: Any = None) -> _PreopenedPool:
        return self._pool

    def close(self) -> None:
        """Keep the pool: a closed client must not close connections another client still uses."""


@functools.cache
def _adapter(sockets: DaemonSockets, timeout: float) -> _PreopenedAdapter:
    return _PreopenedAdapter(sockets, timeout)


def preopened_client(host: str, sockets: DaemonSockets, timeout: int = 300) -> Any:
    """A ``docker.APIClient`` for the daemon at ``host`` that talks over ``sockets``; making it
    sends no request (the API version is the one the daemon named when pinged)."""
    api = docker.APIClient(base_url=host, version=sockets.api_version or _FALLBACK_VERSION, timeout=timeout)
    api.mount("http+docker://", _adapter(sockets, float(timeout)))
    sockets.keep_alive()
    return api
