"""Reading an OpenAI chat/completions stream as it passes: usage, text produced so far, errors."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from relay.protocols.sse import frame_parse
from relay.usage import Usage, usage_from_openai


@dataclass
class StreamMeter:
    """Watches frames; decides which to forward; keeps what billing needs if usage never arrives."""

    client_wants_usage: bool
    usage: Usage | None = None
    text_parts: list[str | bytes] = field(default_factory=list)  # bytes: a content frame not read yet
    error: str = ""
    done: bool = False
    finished: bool = False  # a choice reached finish_reason

    def frame(self, raw: bytes) -> bytes | None:
        """The bytes to send the client for this frame (None to drop it)."""
        if _is_plain_delta(raw):
            self.text_parts.append(raw)  # its text matters only if usage never comes: read then
            return raw
        parsed = frame_parse(raw)
        if parsed.is_comment_only:
            return None  # keep-alives such as ": OPENROUTER PROCESSING" break strict clients
        data = parsed.data.strip()
        if data == "[DONE]":
            self.done = True
            return raw
        try:
            chunk = json.loads(data)
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


def _is_plain_delta(raw: bytes) -> bool:
    """A one-line frame that, read, could only add text: it has choices and a delta, no error, and usage and finish
    reason null if present. Read as bytes: a JSON string cannot hold an unescaped quote, so `"usage"` there is a key
    or a value equal to the name, which only sends the frame the long way."""
    return (raw.startswith(b"data: {") and raw.endswith(b"}\n\n") and raw.find(b"\n") == len(raw) - 2
            and b'"delta":' in raw and b'"choices":[{' in raw and b'"error"' not in raw
            and raw.count(b'"usage"') == raw.count(b'"usage":null')
            and raw.count(b'"finish_reason"') == raw.count(b'"finish_reason":null'))


def _delta_text(raw: bytes) -> str:
    try:
        chunk = json.loads(raw[6:])
    except ValueError:
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
