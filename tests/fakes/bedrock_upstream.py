"""A fake Amazon Bedrock runtime for Claude models: InvokeModel and InvokeModelWithResponseStream over real HTTP.

``with FakeBedrock(secrets={"AKID": "secret"}) as br: br.behave("anthropic.claude-x", output_tokens=9); ...``

- ``POST /model/{modelId}/invoke`` and ``/invoke-with-response-stream``: Anthropic's Messages body without
  ``model`` and ``stream``, with ``anthropic_version`` ``bedrock-2023-05-31``; answered by FakeAnthropicApp.
- SigV4 is checked with botocore's own signer over the request as it arrived (the raw path, the signed headers,
  the body); Bedrock API keys as ``Authorization: Bearer``. Errors in Bedrock's shape (``{"message"}`` and
  ``x-amzn-ErrorType``).
- ``POST /model/{modelId}/converse`` and ``/converse-stream`` for the other models (bedrock_converse.py).
- Streams are AWS event streams built here frame by frame: each ``chunk`` carries one of FakeAnthropicApp's stream
  events base64-encoded, the last with Bedrock's invocation metrics; a stream error becomes an exception frame.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import zlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes.anthropic_upstream import Behaviour, FakeAnthropicApp, FakeUpstream
from tests.fakes.bedrock_converse import converse_answer, converse_events, converse_problem
from tests.fakes.openai_upstream import FakeOpenAIApp, RecordedRequest, Send, _header_list

PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<action>invoke|invoke-with-response-stream|converse|converse-stream)$")
AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/"
                  r"aws4_request, SignedHeaders=(?P<names>[a-z0-9;-]+), Signature=(?P<signature>[0-9a-f]{64})$")
BEDROCK_VERSION = "bedrock-2023-05-31"
# Anthropic stream error types -> the Bedrock exception a stream carries instead
EXCEPTIONS = {"overloaded_error": "serviceUnavailableException", "rate_limit_error": "throttlingException"}


def event_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message with string headers: prelude, its CRC32, headers, payload, message CRC32."""
    encoded = b"".join(len(name).to_bytes(1, "big") + name.encode() + b"\x07" + len(value.encode()).to_bytes(2, "big")
                       + value.encode() for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def chunk_frame(event: dict[str, Any]) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(event).encode()).decode()}).encode()
    return event_frame({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload)


def exception_frame(kind: str, message: str) -> bytes:
    return event_frame({":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"},
                       json.dumps({"message": message}).encode())


async def _error(send: Send, status: int, kind: str, message: str) -> None:
    headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", f"{kind}:http://internal.amazon.com/".encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"message": message}).encode()})


class EventStreamSend:
    """Wraps the ASGI send of FakeAnthropicApp's SSE stream and writes event-stream frames instead."""

    def __init__(self, send: Send) -> None:
        self.send, self.buffer, self.output_tokens, self.input_tokens = send, b"", 0, 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = {"content-type": "application/vnd.amazon.eventstream"}
            return await self.send({**message, "headers": _header_list(headers)})
        self.buffer += message.get("body", b"")
        frames = b""
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            data = json.loads(next(line[6:] for line in block.split(b"\n") if line.startswith(b"data: ")))
            frames += self._frame(data)
        await self.send({"type": "http.response.body", "body": frames, "more_body": message.get("more_body", False)})

    def _frame(self, data: dict[str, Any]) -> bytes:
        if data["type"] == "error":
            error = data["error"]
            return exception_frame(EXCEPTIONS.get(error["type"], "internalServerException"), error["message"])
        if data["type"] == "message_start":
            self.input_tokens = data["message"]["usage"]["input_tokens"]
        if data["type"] == "message_delta":
            self.output_tokens = data["usage"]["output_tokens"]
        if data["type"] == "message_stop":
            data = {**data, "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": self.input_tokens, "outputTokenCount": self.output_tokens,
                "invocationLatency": 10, "firstByteLatency": 5}}
        return chunk_frame(data)


class FakeBedrockApp(FakeOpenAIApp):
    def __init__(self, *, secrets: dict[str, str], api_key: str | None, region: str) -> None:
        super().__init__(api_key=None, prefix="")
        self.secrets, self.bedrock_key, self.region = secrets, api_key, region
        self.claude = FakeAnthropicApp(api_key=None, record=False)

    @staticmethod
    def _recorded(scope: dict[str, Any], raw: bytes) -> RecordedRequest:
        """As sent: the raw path (SigV4 signs it percent-encoded)."""
        request = FakeOpenAIApp._recorded(scope, raw)
        return replace(request, path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"))

    async def _dispatch(self, request: RecordedRequest, send: Send, stop: asyncio.Event) -> None:
        match = PATH.match(request.path)
        if match is None or request.method != "POST":
            return await _error(send, 404, "UnknownOperationException", "Unknown operation")
        problem = self._auth_problem(request)
        if problem:
            return await _error(send, 403, *problem)
        body = request.body
        if match["action"].startswith("converse"):
            return await self._converse(send, unquote(match["model"]), body, match["action"] == "converse-stream")
        if not isinstance(body, dict) or "model" in body or "stream" in body:
            return await _error(send, 400, "ValidationException", "Malformed input request: extraneous key")
        if body.get("anthropic_version") != BEDROCK_VERSION:
            return await _error(send, 400, "ValidationException", "Invalid API version")
        stream = match["action"] == "invoke-with-response-stream"
        inner = replace(request, path="/v1/messages", body={**body, "model": unquote(match["model"]), "stream": stream},
                        headers={"anthropic-version": "2023-06-01", "content-type": "application/json"})
        await self.claude._dispatch(inner, EventStreamSend(send) if stream else send, stop)

    async def _converse(self, send: Send, model: str, body: Any, stream: bool) -> None:
        problem = converse_problem(body)
        if problem:
            return await _error(send, 400, "ValidationException", problem)
        b = self.claude.behaviour(model)
        if b.status is not None:
            return await _error(send, b.status, "ThrottlingException" if b.status == 429 else "InternalServerException",
                                b.error_message or "fake failure")
        if not stream:
            raw = json.dumps(converse_answer(model, b)).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            return await send({"type": "http.response.body", "body": raw})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/vnd.amazon.eventstream")]})
        for sent, (kind, payload) in enumerate(converse_events(model, b)):
            if b.error_after_chunks is not None and sent >= b.error_after_chunks:
                frame = exception_frame(EXCEPTIONS.get(b.stream_error_type, "internalServerException"),
                                        b.error_message or "Overloaded")
                return await send({"type": "http.response.body", "body": frame, "more_body": False})
            frame = event_frame({":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
                                json.dumps(payload).encode())
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def _auth_problem(self, request: RecordedRequest) -> tuple[str, str] | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer "):
            if header[7:] != self.bedrock_key:
                return "UnrecognizedClientException", "Invalid API Key format or value"
            return None
        match = AUTH.match(header)
        if match is None:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        secret = self.secrets.get(match["key"])
        if secret is None:
            return "UnrecognizedClientException", "The security token included in the request is invalid."
        if match["region"] != self.region or match["service"] != "bedrock":
            return "InvalidSignatureException", "Credential should be scoped to a valid region and service."
        amz_date = request.headers.get("x-amz-date", "")
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        if abs(datetime.now(timezone.utc) - when) > timedelta(minutes=5) or amz_date[:8] != match["date"]:
            return "InvalidSignatureException", "Signature expired."
        names = match["names"].split(";")
        if "host" not in names or "x-amz-date" not in names:
            return "InvalidSignatureException", "host and x-amz-date must be signed."
        signed = AWSRequest(method="POST", url=f"http://{request.headers['host']}{request.path}", data=request.raw,
                            headers={name: request.headers.get(name, "") for name in names})
        signed.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(match["key"], secret, request.headers.get("x-amz-security-token")), "bedrock",
                           self.region)
        expected = signer.signature(signer.string_to_sign(signed, signer.canonical_request(signed)), signed)
        if expected != match["signature"]:
            return "InvalidSignatureException", ("The request signature we calculated does not match the signature "
                                                 "you provided.")
        return None


class FakeBedrock(FakeUpstream):
    behaviour_class = Behaviour

    def __init__(self, *, secrets: dict[str, str] | None = None, api_key: str | None = "bedrock-api-key",
                 region: str = "us-east-1") -> None:
        super().__init__(api_key=None)
        self.app = FakeBedrockApp(secrets=secrets or {}, api_key=api_key, region=region)

    def behave(self, model: str = "*", **fields: Any) -> Behaviour:
        behaviour = Behaviour(**fields)
        self.app.claude.behaviours[model] = behaviour
        return behaviour

    def reset(self) -> None:
        self.app.claude.behaviours.clear()
        self.app.requests.clear()
