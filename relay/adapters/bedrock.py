"""Amazon Bedrock's runtime API for Claude models: InvokeModel and InvokeModelWithResponseStream.

Bodies are Anthropic's Messages with the model in the path, `anthropic_version` (`bedrock-2023-05-31`) and
`anthropic_beta` in the body, and no `stream`; streams come back as AWS event streams whose `chunk` events carry
Anthropic's stream events, which reach the relay as the Server-Sent Events Anthropic itself sends. Keys are
`ACCESS_KEY|SECRET_KEY|REGION` (optionally `|SESSION_TOKEN`), signed with SigV4, or Bedrock API keys (Bearer).
Upstream settings (`extras`): `region` (default: the key's, else us-east-1), `anthropic_version`.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Mapping
from urllib.parse import quote

import httpx

from relay.adapters.anthropic import BETA_NAMES, AnthropicAdapter
from relay.adapters.aws_eventstream import EventMessage, EventStreamDecoder, EventStreamError
from relay.adapters.aws_sigv4 import AwsCredentials, sigv4_headers
from relay.adapters.base import Call, UpstreamResponse
from relay.http import json_bytes

ANTHROPIC_VERSION = "bedrock-2023-05-31"
DEFAULT_REGION = "us-east-1"
SIGNING_NAME = "bedrock"  # bedrock-runtime signs as "bedrock"
# Bedrock's stream exceptions, as the Anthropic error types a client of the Messages API knows
EXCEPTION_TYPES = {
    "throttlingException": "rate_limit_error", "serviceUnavailableException": "overloaded_error",
    "modelNotReadyException": "overloaded_error", "validationException": "invalid_request_error",
}


def aws_credentials(key: str) -> AwsCredentials | None:
    """`ACCESS_KEY|SECRET_KEY|REGION[|SESSION_TOKEN]`; None for a Bedrock API key."""
    parts = [part.strip() for part in key.split("|")]
    if len(parts) < 2 or not parts[0] or not parts[1]:
        return None
    return AwsCredentials(parts[0], parts[1], parts[2] if len(parts) > 2 else "", parts[3] if len(parts) > 3 else "")


def bedrock_region(call: Call) -> str:
    credentials = aws_credentials(call.key)
    return str(call.upstream.extras.get("region") or (credentials and credentials.region) or DEFAULT_REGION)


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def event_as_sse(message: EventMessage) -> bytes:
    """One event-stream message as the Anthropic stream event it carries (an exception as an `error` event)."""
    headers = message.headers
    if headers.get(":message-type") == "event":
        if headers.get(":event-type") != "chunk":
            return b""
        try:
            data = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise EventStreamError("unreadable chunk") from exc
        return _sse(str(data.get("type") or "message"), data) if isinstance(data, dict) else b""
    name = str(headers.get(":exception-type") or headers.get(":error-code") or "internalServerException")
    try:
        text = json.loads(message.payload).get("message") or name
    except (ValueError, AttributeError):
        text = str(headers.get(":error-message") or name)
    error = {"type": EXCEPTION_TYPES.get(name, "api_error"), "message": str(text)}
    return _sse("error", {"type": "error", "error": error})


class EventStreamAsSSE:
    """A Bedrock stream, read as Server-Sent Events (what the Anthropic stream reader takes)."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.headers = httpx.Headers({**response.headers, "content-type": "text/event-stream"})

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        decoder = EventStreamDecoder()
        try:
            async for chunk in self._response.aiter_raw():
                events = b"".join(event_as_sse(message) for message in decoder.feed(chunk))
                if events:
                    yield events
        except EventStreamError as exc:
            raise httpx.RemoteProtocolError(f"Bedrock event stream: {exc}") from exc
        if decoder.pending:
            raise httpx.RemoteProtocolError("Bedrock event stream ended inside a message")

    async def aread(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_raw()])

    async def aclose(self) -> None:
        await self._response.aclose()


class BedrockAdapter(AnthropicAdapter):
    family = "anthropic"  # the wire format: Anthropic's Messages

    def body(self, call: Call) -> dict[str, Any]:
        body = {k: v for k, v in call.body.items() if k not in ("model", "stream")}
        body.setdefault("anthropic_version", call.upstream.extras.get("anthropic_version") or ANTHROPIC_VERSION)
        beta = call.client_headers.get("anthropic-beta", "")
        if beta and BETA_NAMES.fullmatch(beta):  # Bedrock takes the caller's opt-in features in the body
            body.setdefault("anthropic_beta", [name.strip() for name in beta.split(",")])
        return body

    def url(self, call: Call) -> str:
        base = call.upstream.base_url.replace("{region}", bedrock_region(call))
        action = "invoke-with-response-stream" if call.stream else "invoke"
        return f"{base}/model/{quote(call.model, safe='')}/{action}"

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        response = await self.signed_post(client, call, self.url(call), json_bytes(self.body(call)))
        if call.stream and response.status_code == 200 and isinstance(response, httpx.Response):
            return EventStreamAsSSE(response)
        return response

    async def signed_post(self, client: httpx.AsyncClient, call: Call, url: str, body: bytes) -> UpstreamResponse:
        """POST `body` with SigV4 (an access-key pair) or as a Bearer (a Bedrock API key)."""
        headers = {"content-type": "application/json",
                   "accept": "application/vnd.amazon.eventstream" if call.stream else "application/json"}
        credentials = aws_credentials(call.key)
        if credentials is None:
            headers["authorization"] = f"Bearer {call.key}"
        else:
            headers |= sigv4_headers(method="POST", url=url, headers=headers, body=body, credentials=credentials,
                                     region=bedrock_region(call), service=SIGNING_NAME, now=datetime.now(timezone.utc))
        return await self.post(client, call, url, headers, body)


BEDROCK = BedrockAdapter()
