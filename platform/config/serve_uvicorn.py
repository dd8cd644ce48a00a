"""One uvicorn process (WEB_SERVER=uvicorn), stopping as the relay expects.

On a listening TCP socket it inherited (several WEB_PROCESSES): uvicorn's own `--fd` adopts the descriptor as a UNIX
socket, so its connections go without TCP_NODELAY and every small answer waits on the client's delayed ACK (about
40 ms); here the socket is adopted as what it is. Or on HOST PORT (one process).

A request's application starts once the read that brought its head is parsed (its body, when it came along, is
there already), and its first step runs then, in that turn of the event loop (`relay.eager`), as under Daphne
(`config.daphne_http`). A request followed in the same read by bytes uvicorn refuses (its 400 closes the connection)
is not started: its answer could not be delivered.

Told to stop (SIGTERM, SIGINT), it stops accepting, lets calls in flight finish within RELAY_SHUTDOWN_GRACE_SECONDS,
then ends the streams still open (billed for what was sent), and exits once their rows are written.
Usage: python -m config.serve_uvicorn FD | HOST PORT
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from types import FrameType

import contextvars
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from config.web_processes import APPLICATION, UVICORN_SETTINGS
from relay.eager import eager_task

STREAMS_END_SECONDS = 5  # after the grace: for streams told to end to send their last event


class EagerHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools connection, its requests' applications started eagerly once a read is parsed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading = False
        self.ready: tuple[Any, Any] | None = None  # a request whose head this read brought, to start after it

    def data_received(self, data: bytes) -> None:
        self.reading = True
        try:
            super().data_received(data)
        finally:
            self.reading = False
            ready, self.ready = self.ready, None
            if ready is not None and not self.transport.is_closing():
                self._start_now(*ready)

    def _start_asgi_task(self, cycle: Any, app: Any) -> None:
        if self.reading:
            self.ready = (cycle, app)
        else:  # a pipelined request, its turn come: on the next turn (a chain of answers given at once must not nest)
            super()._start_asgi_task(cycle, app)

    def _start_now(self, cycle: Any, app: Any) -> None:
        context = contextvars.Context() if self.config.reset_contextvars else None
        task = eager_task(cycle.run_asgi(app), loop=self.loop, context=context)
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)


class Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._winding_down: asyncio.Future | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit and sig in (signal.SIGTERM, signal.SIGINT):
            try:
                asyncio.get_running_loop().call_soon_threadsafe(self._wind_down)
            except RuntimeError:  # not serving yet: nothing in flight
                pass
        super().handle_exit(sig, frame)

    def _wind_down(self) -> None:
        from config.asgi import relay_app

        self._winding_down = asyncio.ensure_future(relay_app.wind_down())

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's stop (it waits for the calls in flight, see `serve`), then the rows of what was answered."""
        from django.conf import settings

        from config.asgi import relay_app
        from relay.realtime.consumer import SESSIONS_END_SECONDS, sessions_end_for_restart

        await sessions_end_for_restart(SESSIONS_END_SECONDS)  # before uvicorn closes their sockets with a bare 1012
        await super().shutdown(sockets)
        if self._winding_down is not None:
            self._winding_down.cancel()
        await relay_app.books_drained(settings.RELAY_SHUTDOWN_GRACE_SECONDS)


def serve(argv: list[str]) -> None:
    from django.conf import settings

    import config.asgi  # noqa: F401  (Django's set-up, before its settings are read)

    options = dict(UVICORN_SETTINGS, http=EagerHttpToolsProtocol, access_log=settings.ACCESS_LOG,
                   timeout_graceful_shutdown=settings.RELAY_SHUTDOWN_GRACE_SECONDS + STREAMS_END_SECONDS)
    if len(argv) == 1 and argv[0].isdigit():
        listener = socket.socket(fileno=int(argv[0]))  # family and type read from the descriptor
        Server(uvicorn.Config(APPLICATION, **options)).run(sockets=[listener])
    elif len(argv) == 2 and argv[1].isdigit():
        Server(uvicorn.Config(APPLICATION, host=argv[0], port=int(argv[1]), **options)).run()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    serve(sys.argv[1:])
