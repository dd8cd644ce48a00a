"""The adapter interface: one small class per upstream family; each overrides only what it supports."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Mapping, Protocol

import httpx

from relay.overrides import headers_with_overrides
from relay.upstream_client import post_request
from relay.snapshots import UpstreamInfo


@dataclass
class Call:
    """One attempt at one upstream: the body is already what the upstream should receive."""

    upstream: UpstreamInfo
    key: str
    operation: str  # "chat/completions", "completions", "embeddings", "moderations"
    body: dict[str, Any]
    stream: bool
    model: str = ""  # the upstream's model name (Gemini puts it in the path, not the body)
    content_type: str = "application/json"  # multipart uploads keep their own, boundary included
    client_headers: Mapping[str, str] = field(default_factory=dict)  # the caller's, for the few an adapter passes on


class UpstreamResponse(Protocol):
    status_code: int
    headers: Mapping[str, str]

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Adapter:
    family = ""
    supports_stream_usage = True  # accepts stream_options.include_usage

    def url(self, call: Call) -> str:
        raise NotImplementedError

    def headers(self, call: Call) -> dict[str, str]:
        return {"content-type": call.content_type}

    async def send(self, client: httpx.AsyncClient, call: Call, content: bytes | AsyncIterator[bytes],
                   length: int | None = None) -> UpstreamResponse:
        """Open the upstream response (headers read, body not yet). A streamed body is sent with its `length`."""
        return await self.post(client, call, self.url(call), self.headers(call), content, length)

    async def post(self, client: httpx.AsyncClient, call: Call, url: str, own_headers: dict[str, str],
                   content: bytes | AsyncIterator[bytes], length: int | None = None) -> UpstreamResponse:
        """POST to `url` with the adapter's headers, the operator's header overrides and the upstream's timeouts."""
        upstream = call.upstream
        timeout = {"connect": upstream.connect_timeout, "read": upstream.first_byte_timeout,
                   "write": upstream.first_byte_timeout, "pool": upstream.connect_timeout}
        headers = dict(client.headers.items())
        headers.update(own_headers)
        headers = headers_with_overrides(headers, upstream.header_override, call.key)
        if length is not None:
            headers["content-length"] = str(length)
        # Built here rather than by client.build_request, which parses the URL and merges headers anew each time.
        return await client.send(post_request(parsed_url(url), headers, content, timeout), stream=True)


@functools.lru_cache(maxsize=4096)
def parsed_url(url: str) -> httpx.URL:
    """An upstream URL, parsed once (they are few: an upstream's base URL and an operation's path)."""
    return httpx.URL(url)


def refusal(status: int, message: str) -> httpx.Response:
    """An answer made up in place of the upstream's, for what fails before it is asked (its credentials, its
    settings): the attempt loop treats it as the upstream's own (401: disabled with the reason; 5xx: next upstream)."""
    return httpx.Response(status, json={"error": {"message": message}})
