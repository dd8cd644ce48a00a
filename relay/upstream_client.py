"""The relay's client for asking upstreams: httpx's, without what a gateway must not do or need not pay for.

No proxies from the environment, no redirects, no cookies kept; requests that need none of httpx's send loop go
straight to the transport (`relay.transport.UpstreamTransport` in the relay).
"""

from __future__ import annotations

from http.cookiejar import CookieJar
from typing import Any

import httpx
from httpx import ByteStream


def upstream_client(**options: Any) -> httpx.AsyncClient:
    """A client for asking upstreams: no proxies from the environment, no redirects, and no cookies kept (a cookie an
    upstream sets while answering one user must not ride along with everyone's later requests)."""
    return UpstreamClient(trust_env=False, follow_redirects=False, cookies=_NoCookies(), **options)


class UpstreamClient(httpx.AsyncClient):
    """An httpx client whose requests go straight to its transport: with no redirects to follow, no authentication
    and no cookies to keep, httpx's send loop (its auth and redirect steps, the cookie jar's look at every answer
    through urllib's request and response types, the response's extra wrapper) was a tenth of the relay's event
    loop. Asked to authenticate (or given a URL with credentials), follow redirects or run event hooks, it sends as
    httpx does. Its responses carry no `elapsed`."""

    async def send(self, request: httpx.Request, *, stream: bool = False,
                   auth: Any = httpx.USE_CLIENT_DEFAULT, follow_redirects: Any = httpx.USE_CLIENT_DEFAULT) -> httpx.Response:
        redirects = self.follow_redirects if follow_redirects is httpx.USE_CLIENT_DEFAULT else follow_redirects
        plain = (auth is httpx.USE_CLIENT_DEFAULT and self.auth is None and not request.url.userinfo
                 and not redirects and not any(self.event_hooks.values()))  # credentials in the URL: httpx sends them
        if not plain or self.is_closed:
            return await super().send(request, stream=stream, auth=auth, follow_redirects=follow_redirects)
        self._set_timeout(request)  # a request built without the client gets the client's timeouts, as in httpx
        try:
            response = await self._transport_for_url(request.url).handle_async_request(request)
        except httpx.RequestError as exc:
            try:
                exc.request
            except RuntimeError:  # raised while reading the answer's head: name the request, as httpx does
                exc.request = request
            raise
        response.request = request
        if not stream:
            try:
                await response.aread()
            except BaseException:
                await response.aclose()
                raise
        return response


def post_request(url: httpx.URL, headers: dict[str, str], content: bytes | Any, timeout: dict[str, float | None]
                 ) -> httpx.Request:
    """A POST for the relay's client. A body in memory is sent as httpx would send it (Host first and Content-Length
    last, unless the headers name them) without httpx's content encoding, which built the headers twice and read the
    body back from a stream: a fifth of the time it took. A streamed body (an async iterator), or one the headers say
    is chunked, is left to httpx."""
    extensions = {"timeout": timeout}
    named = {name.lower() for name in headers}
    if not isinstance(content, bytes) or "transfer-encoding" in named:
        return httpx.Request("POST", url, content=content, headers=headers, extensions=extensions)
    if "host" not in named:
        headers = {"Host": url.netloc.decode("ascii"), **headers}
    if "content-length" not in named:
        headers["Content-Length"] = str(len(content))
    request = httpx.Request("POST", url, headers=headers, stream=ByteStream(content), extensions=extensions)
    request.read()  # its content known, as for httpx's own bytes bodies
    return request


class _NoCookies(CookieJar):
    """Takes no cookies, without looking (for requests sent the way httpx sends them: see UpstreamClient)."""

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None
