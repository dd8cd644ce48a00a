"""Amazon Bedrock's Converse API for models other than Claude (Amazon Nova, Meta Llama, Mistral, DeepSeek ...),
presented to the relay as an Anthropic upstream: the Anthropic request the wires build is sent as a Converse
request, and Converse's answers and event streams come back as Anthropic's (relay/protocols/converse.py). Keys,
regions and signing are the Bedrock adapter's.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator
from urllib.parse import quote

import httpx

from relay.adapters.aws_eventstream import EventStreamDecoder, EventStreamError
from relay.adapters.base import Call, UpstreamResponse, refusal
from relay.adapters.bedrock import EXCEPTION_TYPES, BedrockAdapter, bedrock_region
from relay.http import json_bytes
from relay.protocols.converse import (
    ConverseToAnthropicStream,
    ConverseUnsupported,
    anthropic_to_converse,
    converse_to_anthropic,
)


class ConverseAnswer:
    """A Converse answer read as an Anthropic message (an unreadable one is passed on as it came)."""

    def __init__(self, response: httpx.Response, model: str) -> None:
        self._response, self.model = response, model
        self.status_code, self.headers = response.status_code, response.headers

    async def aread(self) -> bytes:
        raw = await self._response.aread()
        try:
            data = json.loads(raw)
        except ValueError:
            return raw
        return json_bytes(converse_to_anthropic(data, self.model)) if isinstance(data, dict) else raw

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        yield await self.aread()

    async def aclose(self) -> None:
        await self._response.aclose()


class ConverseStreamAsSSE:
    """A Converse event stream, read as Anthropic's Server-Sent Events."""

    def __init__(self, response: httpx.Response, model: str) -> None:
        self._response, self.model = response, model
        self.status_code = response.status_code
        self.headers = httpx.Headers({**response.headers, "content-type": "text/event-stream"})

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        decoder, converter = EventStreamDecoder(), ConverseToAnthropicStream(self.model)
        try:
            async for chunk in self._response.aiter_raw():
                frames: list[bytes] = []
                for message in decoder.feed(chunk):
                    headers = message.headers
                    try:
                        data: Any = json.loads(message.payload) if message.payload else {}
                    except ValueError as exc:
                        raise EventStreamError("unreadable event") from exc
                    if headers.get(":message-type") == "event":
                        frames += converter.feed(str(headers.get(":event-type") or ""), data if isinstance(data, dict)
                                                 else {})
                    else:
                        name = str(headers.get(":exception-type") or headers.get(":error-code") or "")
                        text = data.get("message") if isinstance(data, dict) else None
                        frames.append(converter.error(EXCEPTION_TYPES.get(name, "api_error"), str(text or name)))
                if frames:
                    yield b"".join(frames)
        except EventStreamError as exc:
            raise httpx.RemoteProtocolError(f"Bedrock event stream: {exc}") from exc
        tail = converter.finish()
        if tail:
            yield b"".join(tail)

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        await self._response.aclose()


class BedrockConverseAdapter(BedrockAdapter):
    family = "anthropic"  # the wire format the relay speaks to it

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.replace("{region}", bedrock_region(call))
        return f"{base}/model/{quote(call.model, safe='')}/{'converse-stream' if call.stream else 'converse'}"

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        try:
            body = anthropic_to_converse(call.body)
        except ConverseUnsupported as exc:
            return refusal(400, str(exc))
        response = await self.signed_post(client, call, self.url(call), json_bytes(body))
        if response.status_code != 200 or not isinstance(response, httpx.Response):
            return response
        return ConverseStreamAsSSE(response, call.model) if call.stream else ConverseAnswer(response, call.model)


def converse_model(model: str) -> bool:
    """Claude models are invoked in Anthropic's own format; every other Bedrock model through Converse."""
    name = model.lower()
    return "anthropic." not in name and not name.startswith("claude")


BEDROCK_CONVERSE = BedrockConverseAdapter()
