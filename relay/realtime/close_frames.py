"""What a WebSocket close frame may carry (RFC 6455 7.4): the codes an endpoint may send, a reason of at most 123
bytes of UTF-8. Shared by the realtime relay, which passes codes and reasons between its two sockets, and by the
Daphne tuning, which writes the frame."""

from __future__ import annotations

from typing import Any

SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def sendable(code: int) -> bool:
    """Whether a close frame may carry `code` (1005, 1006 and 1015 only report what happened; the rest is unassigned)."""
    return code in SENDABLE_CODES or 3000 <= code <= 4999


def close_reason(text: str) -> str:
    """`text` cut to 123 bytes of UTF-8 on a character boundary."""
    return text.encode()[:123].decode(errors="ignore")


def close_frame(code: Any, reason: Any) -> tuple[int | None, bytes | None]:
    """The code and reason bytes of the frame closing with ASGI's `code` (default 1000) and `reason`; a code no frame
    may carry closes with none."""
    code = 1000 if code is None else code
    if not isinstance(code, int) or not sendable(code):
        return None, None
    text = close_reason(reason).encode() if isinstance(reason, str) else b""
    return code, text or None
