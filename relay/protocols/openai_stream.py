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
    text_parts: list[str] = field(default_factory=list)
    error: str = ""
    done: bool = False
    finished: bool = False  # a choice reached finish_reason

    def frame(self, raw: bytes) -> bytes | None:
        """The bytes to send the client for this frame (None to drop it)."""
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
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict):
                continue
            if choice.get("finish_reason"):
                self.finished = True
            delta = choice.get("delta")
            if isinstance(delta, dict):
                for key in ("content", "reasoning_content", "reasoning"):
                    if isinstance(delta.get(key), str):
                        self.text_parts.append(delta[key])
                for call in delta.get("tool_calls") or []:
                    if isinstance(call, dict) and isinstance(call.get("function"), dict):
                        self.text_parts.append(str(call["function"].get("arguments") or ""))
            elif isinstance(choice.get("text"), str):
                self.text_parts.append(choice["text"])
        if usage is not None and not choices and not self.client_wants_usage:
            return None  # the usage-only chunk we asked for on the client's behalf
        if usage is None and isinstance(choices, list) and not choices:
            return None  # Azure's prompt-filter chunks: no choices, no usage; clients reading choices[0] break
        return raw

    @property
    def text(self) -> str:
        return "".join(self.text_parts)
