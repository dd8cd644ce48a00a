"""One Daphne process (WEB_SERVER=daphne, the default), on uvloop.

Daphne runs Twisted on an asyncio event loop it makes when imported; made here under uvloop's policy, that loop is
uvloop's, so the relay's own work in it (upstream connections, Redis, timers) runs on uvloop as it does under uvicorn.
Twisted's reactor only asks the loop to watch sockets and call it back, which uvloop does. Everything else is Daphne's
command line, unchanged.
Usage: python -m config.serve_daphne [Daphne's arguments]
"""

from __future__ import annotations

import asyncio

import uvloop


def use_uvloop() -> None:
    """Make the loops made from here on uvloop's (before Daphne's server module is imported)."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    use_uvloop()
    from daphne.cli import CommandLineInterface  # imports Daphne's server, which makes its loop

    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
