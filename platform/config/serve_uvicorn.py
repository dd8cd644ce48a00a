"""One uvicorn process on a listening TCP socket it inherited (WEB_SERVER=uvicorn with several WEB_PROCESSES).

uvicorn's own `--fd` adopts the descriptor as a UNIX socket, so its connections go without TCP_NODELAY and every
small answer waits on the client's delayed ACK (about 40 ms); here the socket is adopted as what it is.
Usage: python -m config.serve_uvicorn FD
"""

from __future__ import annotations

import socket
import sys

import uvicorn

from config.web_processes import APPLICATION, UVICORN_SETTINGS


def main(argv: list[str]) -> None:
    if len(argv) != 1 or not argv[0].isdigit():
        sys.exit(__doc__)
    listener = socket.socket(fileno=int(argv[0]))  # family and type read from the descriptor
    uvicorn.Server(uvicorn.Config(APPLICATION, **UVICORN_SETTINGS)).run(sockets=[listener])


if __name__ == "__main__":
    main(sys.argv[1:])
