"""JSON read and written on the relay's path: orjson where it gives what the standard library gives, else the
standard library.

orjson reads and writes in C several times faster (a chat request's body: 6.6 -> 1.0 us to read, 5.9 -> 0.3 us to
write; long prompts in proportion). Where the two would differ, the standard library decides:
- reading: what orjson refuses (NaN and Infinity, numbers past a double, lone surrogate escapes, UTF-16 and UTF-32
  bodies, nesting past orjson's limit) is read by `json`, which accepts or refuses it as before; so is a text with a
  run of 19 digits (as every integer orjson would read as a float has: below -2**63, past 2**64), or with more than
  SHALLOW brackets (nesting `json` may refuse where orjson reads it).
- writing: what orjson refuses (integers past 64 bits, keys that are not strings, strings with a lone surrogate)
  is written by `json`, a lone surrogate as "?". A float NaN or infinity is written as null (`json` wrote `NaN`,
  which is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_DIGITS = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))  # every digit "0", the rest " "
_LONG_NUMBER = b"0" * 19
# orjson reads 1,023 levels of nesting; `json` refuses at the recursion limit less the caller's depth (about 950 in
# the relay): a text with more brackets than this, which may nest deeper, is left to `json`, which decides
SHALLOW = 500


def loads(raw: bytes | str) -> Any:
    """As `json.loads(raw)`: the same value, or the same ValueError or RecursionError."""
    try:
        if _as_orjson_reads(raw):
            return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    return json.loads(raw)


def _as_orjson_reads(raw: bytes | str) -> bool:
    """Whether orjson reads the text as `json` does, if at all: no run of 19 digits, no more than SHALLOW brackets
    (2 ns a byte; a regular expression for the digits took ten times that)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return data.count(b"[") + data.count(b"{") <= SHALLOW and _LONG_NUMBER not in data.translate(_DIGITS)


def dumps(data: Any) -> bytes:
    """Compact UTF-8 JSON; an unpaired surrogate (which JSON may carry in, and a message may echo) becomes "?"."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
