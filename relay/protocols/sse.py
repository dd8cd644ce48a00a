"""Server-sent events: split a byte stream into frames and read their `event:` and `data:` fields."""

from __future__ import annotations

from dataclasses import dataclass


class FrameSplitter:
    """Feed bytes, get whole frames (the bytes up to and including the blank line that ends each)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        if not self._buffer and b"\r" not in chunk:  # as most pieces come: whole frames, plain newlines
            *frames, self._buffer = chunk.split(b"\n\n")
            if len(frames) == 1 and not self._buffer:
                return [chunk]  # one frame: the piece itself, not a copy
            return [frame + b"\n\n" for frame in frames]
        if chunk.startswith(b"\n") and self._buffer.endswith(b"\r"):  # a "\r\n" split between two pieces
            self._buffer = self._buffer[:-1]
        searched = max(len(self._buffer) - 1, 0)  # a frame's end may start in the buffer's last byte
        self._buffer += chunk.replace(b"\r\n", b"\n")
        if self._buffer.find(b"\n\n", searched) < 0:
            return []
        *frames, self._buffer = self._buffer.split(b"\n\n")
        return [frame + b"\n\n" for frame in frames]

    def rest(self) -> bytes:
        """Bytes after the last complete frame (a stream that ended without a blank line)."""
        rest, self._buffer = self._buffer, b""
        return rest


@dataclass
class Frame:
    event: str
    data: str
    is_comment_only: bool


def frame_parse(raw: bytes) -> Frame:
    if raw.startswith(b"data: ") and raw.find(b"\n") == len(raw) - 2 and raw.endswith(b"\n\n"):
        # one data line, as nearly every frame of a model's stream: read without splitting it into lines
        return Frame(event="", data=raw[6:-2].decode("utf-8", errors="replace"), is_comment_only=False)
    return _frame_parse_lines(raw)


def _frame_parse_lines(raw: bytes) -> Frame:
    event, data_lines, other = "", [], False
    for line in raw.decode("utf-8", errors="replace").split("\n"):
        if not line or line.startswith(":"):
            continue
        other = True
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            data_lines.append(value)
        elif name == "event":
            event = value
    return Frame(event=event, data="\n".join(data_lines), is_comment_only=not other)


def frame_build(data: str, event: str = "") -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {data}\n\n".encode()
