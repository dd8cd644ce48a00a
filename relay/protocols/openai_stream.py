"""Reading an OpenAI chat/completions stream as it passes: usage, text produced so far, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from relay import jsonio
from relay.protocols.sse import frame_parse
from relay.usage import Usage, usage_from_openai


UNREAD_LIMIT = 512  # content frames kept unread per stream before they are read after all (memory stays bounded)


@dataclass
class StreamMeter:
    """Watches frames; decides which to forward; keeps what billing needs if usage never arrives."""

    client_wants_usage: bool
    usage: Usage | None = None
    text_parts: list[str | bytes] = field(default_factory=list)  # bytes: a content frame's choices, not read yet
    error: str = ""
    done: bool = False
    finished: bool = False  # a choice reached finish_reason
    unread: int = 0

    def frame(self, raw: bytes) -> bytes | None:
        """The bytes to send the client for this frame (None to drop it)."""
        choices = _plain_delta_choices(raw)
        if choices is not None:  # its text matters only if usage never comes: read then
            self.text_parts.append(choices)
            self.unread += 1
            if self.unread >= UNREAD_LIMIT:
                self.text_parts, self.unread = [self.text], 0
            return raw
        parsed = frame_parse(raw)
        if parsed.is_comment_only:
            return None  # keep-alives such as ": OPENROUTER PROCESSING" break strict clients
        data = parsed.data.strip()
        if data == "[DONE]":
            self.done = True
            return raw
        try:
            chunk = jsonio.loads(data)
        except ValueError:
            return raw
        if not isinstance(chunk, dict):
            return raw
        if "error" in chunk:
            err = chunk["error"]
            self.error = (err.get("message") if isinstance(err, dict) else str(err)) or "upstream error"
            return raw
        usage = usage_from_openai(chunk.get("usage"))
        choices = chunk.get("choices")
        if usage is not None:
            self.usage = usage
        self.finished = _choices_read(choices, self.text_parts) or self.finished
        if usage is not None and not choices and not self.client_wants_usage:
            return None  # the usage-only chunk we asked for on the client's behalf
        if usage is None and isinstance(choices, list) and not choices:
            return None  # Azure's prompt-filter chunks: no choices, no usage; clients reading choices[0] break
        return raw

    @property
    def text(self) -> str:
        return "".join(part if isinstance(part, str) else _delta_text(part) for part in self.text_parts)


def _plain_delta_choices(raw: bytes) -> bytes | None:
    """For a one-line frame that, read, could only add text, the bytes from its `"choices":` on; else None.

    Such a frame has one `"choices":` key, a list of objects, and a delta; no error; usage and finish reasons null if
    present; no `\\u00` escape (ASCII spelled escaped could hide a key). Read as bytes: a JSON string holds no
    unescaped quote, so `"usage"` there is a key, or a value equal to the name, which only sends the frame the long
    way. A `"choices":` nested in another object leaves its bytes unparseable alone: no text, as when read whole."""
    if not (raw.startswith(b"data: {") and raw.endswith(b"}\n\n") and raw.find(b"\n") == len(raw) - 2):
        return None
    start = raw.find(b'"choices":[{')
    if (start < 0 or b'"delta":' not in raw or b'"error"' in raw or b"\\u00" in raw
            or raw.count(b'"choices":') != 1
            or raw.count(b'"usage"') != raw.count(b'"usage":null')
            or raw.count(b'"finish_reason"') != raw.count(b'"finish_reason":null')):
        return None
    return raw[start:-2]


def _delta_text(choices: bytes) -> str:
    try:  # decoded as the frame itself would be
        chunk = json.loads("{" + choices.decode("utf-8", errors="replace"))
    except (ValueError, RecursionError):
        return ""
    parts: list[str | bytes] = []
    if isinstance(chunk, dict):
        _choices_read(chunk.get("choices"), parts)
    return "".join(part for part in parts if isinstance(part, str))


def _choices_read(choices: object, text_parts: list[str | bytes]) -> bool:
    """Appends the choices' text (content, reasoning, tool arguments); whether one of them finished."""
    finished = False
    for choice in choices if isinstance(choices, list) else []:
        if not isinstance(choice, dict):
            continue
        if choice.get("finish_reason"):
            finished = True
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in ("content", "reasoning_content", "reasoning"):
                if isinstance(delta.get(key), str):
                    text_parts.append(delta[key])
            for call in delta.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    text_parts.append(str(call["function"].get("arguments") or ""))
        elif isinstance(choice.get("text"), str):
            text_parts.append(choice["text"])
    return finished
