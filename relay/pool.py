"""The relay's upstream connection pool: httpcore's, with its bookkeeping made linear in the number of connections.

httpcore (1.0) re-examines every pooled connection whenever a request starts or ends, and for each one also counts
the whole pool again, so each request costs O(connections²) calls, and asks every idle connection whether the server
closed it (a system call each): at 64 concurrent upstream calls that was a fifth of the relay's CPU. This pool makes
the same decisions in one pass, and asks an idle connection only when about to reuse it (and every connection once a
second, so unused ones are still closed).
"""

from __future__ import annotations

import time
from typing import Any

import httpcore
import httpx


class LinearConnectionPool(httpcore.AsyncConnectionPool):
    """httpcore's pool with `_assign_requests_to_connections` in one pass over the connections. Whether an idle
    connection has expired (its keep-alive ran out, or the server closed it: a system call per connection) is asked
    when it is about to be reused, and of every connection at most once per SWEEP_SECONDS."""

    SWEEP_SECONDS = 1.0
    _next_sweep = 0.0

    def _assign_requests_to_connections(self) -> list[httpcore.AsyncConnectionInterface]:
        closing: list[httpcore.AsyncConnectionInterface] = []
        kept: list[httpcore.AsyncConnectionInterface] = []
        now = time.monotonic()
        sweep = now >= self._next_sweep
        if sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
        remaining = len(self._connections)
        for connection in self._connections:
            if connection.is_closed():
                remaining -= 1
            elif (sweep and connection.has_expired()) or (
                    connection.is_idle() and remaining > self._max_keepalive_connections):
                # httpcore drops an idle connection while the pool holds more connections than the keep-alive limit
                remaining -= 1
                closing.append(connection)
            else:
                kept.append(connection)
        self._connections = kept

        for pool_request in self._requests:
            if not pool_request.is_queued():
                continue
            origin = pool_request.request.url.origin
            reusable = self._reusable(origin, closing)
            if reusable is not None:
                pool_request.assign_to_connection(reusable)
                continue
            if len(kept) >= self._max_connections:
                idle = next((c for c in kept if c.is_idle()), None)
                if idle is None:
                    continue  # stays queued until a connection frees up
                kept.remove(idle)
                closing.append(idle)
            connection = self.create_connection(origin)
            kept.append(connection)
            pool_request.assign_to_connection(connection)
        return closing

    def _reusable(self, origin: httpcore.Origin, closing: list[httpcore.AsyncConnectionInterface]) -> Any:
        """The first connection to `origin` that can take a request now; expired idle ones met on the way are
        closed."""
        for connection in list(self._connections):
            if not (connection.can_handle_request(origin) and connection.is_available()):
                continue
            if connection.is_idle() and connection.has_expired():
                self._connections.remove(connection)
                closing.append(connection)
                continue
            return connection
        return None


def upstream_transport(*, max_connections: int, max_keepalive: int) -> httpx.AsyncHTTPTransport:
    """httpx's transport (TLS, timeouts and errors as usual) on the linear pool."""
    transport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive),
        trust_env=False,
    )
    if type(transport._pool) is not httpcore.AsyncConnectionPool:  # a proxy pool: keep httpcore's own
        return transport
    transport._pool.__class__ = LinearConnectionPool
    return transport
