"""How long an uploaded audio file plays, read from its headers (mp3, m4a, wav, flac, ogg, webm/opus ...).

Transcription priced per minute is billed from the duration the upstream reports; when it reports none (the
`text`, `srt` and `vtt` formats), from this. The file is read in place, never copied.
"""

from __future__ import annotations

import io
import logging

import mutagen

logger = logging.getLogger("relay")

FALLBACK_BITS_PER_SECOND = 128_000  # when the format is unknown: a typical mp3 bitrate, for an estimate


class _ViewReader(io.RawIOBase):
    """A read-only, seekable file over a memoryview (BytesIO would copy the upload)."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.position = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), max(len(self.view) - self.position, 0))
        buffer[:size] = self.view[self.position:self.position + size]
        self.position += size
        return size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: len(self.view)}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def tell(self) -> int:
        return self.position


def audio_seconds(data: memoryview) -> float | None:
    """The playing time in seconds, or None when the headers do not say."""
    try:
        parsed = mutagen.File(io.BufferedReader(_ViewReader(data)))
    except Exception:  # mutagen raises many kinds on damaged or unknown files
        logger.debug("audio duration unreadable", exc_info=True)
        return None
    length = getattr(getattr(parsed, "info", None), "length", None)
    return float(length) if isinstance(length, (int, float)) and length > 0 else None


def audio_seconds_estimate(data: memoryview) -> tuple[float, bool]:
    """(seconds, estimated): from the headers, else from the size at a typical bitrate."""
    seconds = audio_seconds(data)
    if seconds is not None:
        return seconds, False
    return len(data) * 8 / FALLBACK_BITS_PER_SECOND, True
