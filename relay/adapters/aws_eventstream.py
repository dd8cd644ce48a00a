"""AWS event streams (`application/vnd.amazon.eventstream`), read frame by frame as they arrive.

A frame: total length, headers length (both uint32, big-endian), the CRC32 of those eight bytes, the headers (name
length, name, value type, value), the payload, and the CRC32 of everything before it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PRELUDE = 12
MAX_FRAME = 16 * 1024 * 1024  # AWS caps a message at 16 MiB
# value type -> fixed size (None: a uint16 length first); types 0 and 1 are true and false with no value
FIXED_SIZES: dict[int, int | None] = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 6: None, 7: None, 8: 8, 9: 16}


class EventStreamError(ValueError):
    """A frame that is not one (a wrong checksum or length): the stream cannot be trusted past it."""


@dataclass(frozen=True)
class EventMessage:
    headers: dict[str, str | int | bool | bytes]
    payload: bytes


def _headers(raw: bytes) -> dict[str, str | int | bool | bytes]:
    headers: dict[str, str | int | bool | bytes] = {}
    at = 0
    while at < len(raw):
        size = raw[at]
        name = raw[at + 1:at + 1 + size].decode()
        kind = raw[at + 1 + size]
        at += 2 + size
        if kind not in FIXED_SIZES:
            raise EventStreamError(f"unknown header value type {kind}")
        fixed = FIXED_SIZES[kind]
        if fixed is None:
            (length,) = struct.unpack_from(">H", raw, at)
            value = raw[at + 2:at + 2 + length]
            headers[name] = value.decode() if kind == 7 else value
            at += 2 + length
        elif kind in (0, 1):
            headers[name] = kind == 0
        elif kind == 9:  # a UUID
            headers[name] = raw[at:at + fixed]
            at += fixed
        else:  # byte, short, integer, long, timestamp
            headers[name] = int.from_bytes(raw[at:at + fixed], "big", signed=True)
            at += fixed
    return headers


class EventStreamDecoder:
    """Feed bytes as they come; complete messages come out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[EventMessage]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= PRELUDE:
            total, header_size, prelude_crc = struct.unpack_from(">III", self._buffer)
            if zlib.crc32(self._buffer[:8]) != prelude_crc or not PRELUDE + 4 <= total <= MAX_FRAME:
                raise EventStreamError("corrupt event stream prelude")
            if len(self._buffer) < total:
                break
            frame = bytes(self._buffer[:total])
            del self._buffer[:total]
            (message_crc,) = struct.unpack_from(">I", frame, total - 4)
            if zlib.crc32(frame[:-4]) != message_crc:
                raise EventStreamError("corrupt event stream message")
            headers = _headers(frame[PRELUDE:PRELUDE + header_size])
            messages.append(EventMessage(headers, frame[PRELUDE + header_size:-4]))
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)
