"""Headers across the relay: an upstream gets only what its provider needs (its own key, never ours, nor the client's
cookies, proxy headers or Host), and a client gets none of the upstream's cookies, server details, account or rate
headers, or hop-by-hop headers; lengths and chunking are the relay's own."""

from __future__ import annotations

import asyncio
import gzip
import re
from decimal import Decimal
from typing import Any

import httpx
import pytest

from billing.groups import group_default
from billing.models import ModelPrice
from relay.media_tasks.poller import media_tasks_poll
from relay.upstream_client import upstream_client
from relay.upstreams import upstream_save
from tests.fakes import task_upstreams
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.fakes.task_upstreams import FakeTasks

OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY = "sk-upstream-hdr", "sk-ant-upstream-hdr", "g-upstream-hdr"
CHAT = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 16}
# What the client sends besides its key: none of it is the provider's business.
CLIENT_EXTRAS = {
    "cookie": "sessionid=client-session; csrftoken=client-csrf", "x-forwarded-for": "203.0.113.9",
    "x-forwarded-host": "evil.example", "x-forwarded-proto": "https", "x-real-ip": "203.0.113.9",
    "forwarded": "for=203.0.113.9;host=evil.example", "proxy-authorization": "Basic Y2xpZW50OnNlY3JldA==",
    "x-internal-debug": "client-debug", "host": "evil.example",
}
CLIENT_VALUES = ("client-session", "client-csrf", "203.0.113.9", "evil.example", "Y2xpZW50OnNlY3JldA==", "client-debug")
# What a provider may receive: transport headers, the payload's type and length, and its own credentials.
UPSTREAM_ALLOWED = {"host", "content-type", "content-length", "transfer-encoding", "accept", "accept-encoding",
                    "user-agent", "connection", "authorization", "x-api-key", "anthropic-version", "x-goog-api-key",
                    "mj-api-secret"}
# What an upstream answers with besides its payload: none of it is the client's business.
UPSTREAM_EXTRAS = {
    "set-cookie": "upstream_session=secret; Path=/; HttpOnly", "server": "upstream-gateway/9.9",
    "x-powered-by": "upstream-internals", "via": "1.1 upstream-edge", "x-internal-trace": "trace-secret",
    "openai-organization": "org-upstream-secret", "openai-project": "proj-upstream-secret",
    "anthropic-organization-id": "org-upstream-secret", "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-limit-tokens": "2000000", "cf-ray": "8c0ffee-SJC", "alt-svc": 'h3=":443"',
    "strict-transport-security": "max-age=31536000", "x-request-id": "req_upstream_secret",
    "connection": "keep-alive, x-hop-secret", "x-hop-secret": "hop", "keep-alive": "timeout=5",
}
UPSTREAM_VALUES = ("upstream_session", "upstream-gateway", "upstream-internals", "upstream-edge", "trace-secret",
                   "org-upstream-secret", "proj-upstream-secret", "8c0ffee", "req_upstream_secret", "4999")
RELAY_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def fakes():
    with (FakeOpenAI(api_key=OPENAI_KEY) as oai, FakeAnthropic(api_key=ANTHROPIC_KEY) as claude,
          FakeGemini(api_key=GEMINI_KEY) as gemini):
        yield {"openai": oai, "anthropic": claude, "gemini": gemini}


@pytest.fixture
def upstreams(live, fakes, funded_key) -> str:
    """One upstream per family, each answering with every header a client should not see; the caller's key."""
    for family, fake in fakes.items():
        fake.reset()
        fake.behave("*", headers=UPSTREAM_EXTRAS)
        model = f"{family}-hdr"
        ModelPrice.objects.create(model=model, model_ratio=Decimal(1), completion_ratio=Decimal(1))
        upstream_save(name=family, type=family, base_url=fake.url, served_models=[model],
                      keys={"openai": OPENAI_KEY, "anthropic": ANTHROPIC_KEY, "gemini": GEMINI_KEY}[family],
                      groups=[group_default().name])
    _user, key = funded_key()
    return key


def client_headers(key: str) -> dict[str, str]:
    """Our key in every header a client might put it in, plus the client's own extras."""
    return {"authorization": f"Bearer {key}", "x-api-key": key, "x-goog-api-key": key, "mj-api-secret": key,
            **CLIENT_EXTRAS}


def assert_upstream_got_only_what_it_needs(headers: dict[str, str], raw: bytes, target: str, key: str,
                                           credentials: dict[str, str], where: str = "") -> None:
    """Only allowed header names, the upstream's own credentials and Host, and nothing of ours or the client's."""
    # a `cookie` the relay's own client kept from an earlier answer is test_upstream_cookies_are_never_sent_back's
    assert set(headers) - {"cookie"} <= UPSTREAM_ALLOWED, set(headers) - UPSTREAM_ALLOWED
    for name, value in credentials.items():
        assert headers.get(name) == value, (name, headers.get(name))
    assert headers["host"] == target
    seen = " ".join(headers.values()) + raw.decode("latin-1") + where
    assert key not in seen  # our key went nowhere: not in a header, the body, the path or the query
    assert not any(value in seen for value in CLIENT_VALUES), seen[:500]


def assert_client_got_no_upstream_headers(response: httpx.Response) -> None:
    """None of UPSTREAM_EXTRAS by name or value; our own request id and rate headers; consistent framing."""
    names = {name.lower() for name in response.headers}
    assert not names & {"set-cookie", "x-powered-by", "via", "x-internal-trace", "openai-organization",
                        "openai-project", "anthropic-organization-id", "cf-ray", "alt-svc", "x-hop-secret",
                        "keep-alive", "strict-transport-security"}, names
    assert not names & {"x-ratelimit-remaining-requests", "x-ratelimit-limit-tokens"}, names  # theirs; ours pass
    assert RELAY_ID.match(response.headers["x-request-id"]), response.headers["x-request-id"]  # ours, not theirs
    shown = " ".join(f"{k}: {v}" for k, v in response.headers.multi_items())
    assert not any(value in shown for value in UPSTREAM_VALUES), shown
    if "content-length" in response.headers:  # the relay's own framing: a length that is the body's, or chunks
        assert "transfer-encoding" not in response.headers
        assert int(response.headers["content-length"]) == len(response.content)


def _host(fake: Any) -> str:
    """The Host header a request to this fake carries."""
    return fake.url.removeprefix("http://")


@pytest.mark.parametrize("stream", [False, True])
def test_openai_chat_forwards_only_the_upstreams_own_key(live, fakes, upstreams, stream):
    key = upstreams
    response = httpx.post(f"{live.url}/v1/chat/completions", headers=client_headers(key), timeout=30,
                          json={"model": "openai-hdr", "stream": stream, **CHAT})
    assert response.status_code == 200, response.text[:300]
    assert ("data: " in response.text) == stream
    sent = fakes["openai"].requests[-1]
    assert_upstream_got_only_what_it_needs(sent.headers, sent.raw, _host(fakes["openai"]), key,
                                           {"authorization": f"Bearer {OPENAI_KEY}"}, sent.path + str(sent.query))
    assert_client_got_no_upstream_headers(response)


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages_forward_only_the_upstreams_own_key(live, fakes, upstreams, stream):
    key = upstreams
    response = httpx.post(f"{live.url}/v1/messages", headers=client_headers(key), timeout=30,
                          json={"model": "anthropic-hdr", "stream": stream, **CHAT})
    assert response.status_code == 200, response.text[:300]
    sent = fakes["anthropic"].requests[-1]
    assert_upstream_got_only_what_it_needs(sent.headers, sent.raw, _host(fakes["anthropic"]), key,
                                           {"x-api-key": ANTHROPIC_KEY}, sent.path + str(sent.query))
    assert "authorization" not in sent.headers
    assert_client_got_no_upstream_headers(response)


@pytest.mark.parametrize("action", ["generateContent", "streamGenerateContent"])
def test_gemini_forwards_only_the_upstreams_own_key_even_when_ours_came_in_the_query(live, fakes, upstreams, action):
    key = upstreams
    headers = {k: v for k, v in client_headers(key).items() if k not in ("authorization", "x-api-key")}
    response = httpx.post(f"{live.url}/v1beta/models/gemini-hdr:{action}", params={"key": key, "alt": "sse"},
                          headers=headers, timeout=30, json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    assert response.status_code == 200, response.text[:300]
    sent = fakes["gemini"].requests[-1]
    assert "key" not in sent.query
    assert_upstream_got_only_what_it_needs(sent.headers, sent.raw, _host(fakes["gemini"]), key,
                                           {"x-goog-api-key": GEMINI_KEY}, sent.path + str(sent.query))
    assert_client_got_no_upstream_headers(response)




def test_upstream_cookies_are_never_sent_back(live, fakes, upstreams):
    key = upstreams
    for _ in range(2):
        response = httpx.post(f"{live.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                              json={"model": "openai-hdr", **CHAT}, timeout=30)
        assert response.status_code == 200
    assert "cookie" not in fakes["openai"].requests[-1].headers, fakes["openai"].requests[-1].headers["cookie"]


def test_a_polling_round_keeps_no_upstream_cookies():
    """The poller's client refuses to store cookies, so none is sent to the next upstream request of the round."""
    sent: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request.headers.get("cookie"))
        return httpx.Response(200, headers={"set-cookie": "upstream_session=secret; Path=/"}, json={})

    async def two_requests() -> None:
        async with upstream_client(transport=httpx.MockTransport(upstream)) as client:
            for _ in range(2):
                await client.post("https://tasks.example/mj/task/list-by-condition", json={"ids": []})

    asyncio.run(two_requests())
    assert sent == [None, None]


def test_upstream_errors_pass_no_upstream_headers_either(live, fakes, upstreams):
    key = upstreams
    fakes["openai"].behave("*", status=400, headers=UPSTREAM_EXTRAS, error_message="bad request upstream")
    response = httpx.post(f"{live.url}/v1/chat/completions", headers=client_headers(key), timeout=30,
                          json={"model": "openai-hdr", **CHAT})
    assert response.status_code == 400 and "bad request upstream" in response.json()["error"]["message"]
    assert_client_got_no_upstream_headers(response)


def gzipping(inner: Any) -> Any:
    """An ASGI app answering like `inner`, gzipped whenever the request accepts gzip (as CDNs in front of APIs do)."""

    async def app(scope: dict, receive: Any, send: Any) -> None:
        accepts = dict(scope.get("headers", [])).get(b"accept-encoding", b"")
        if b"gzip" not in accepts:
            return await inner(scope, receive, send)
        start: dict[str, Any] = {}
        body = bytearray()

        async def compressing(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                packed = gzip.compress(bytes(body))
                headers = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"]
                await send({**start, "headers": [*headers, (b"content-encoding", b"gzip"),
                                                 (b"content-length", str(len(packed)).encode())]})
                await send({"type": "http.response.body", "body": packed})

        await inner(scope, receive, compressing)

    return app


class GzipOpenAI(FakeOpenAI):
    """The OpenAI fake behind a compressing front."""

    def start(self) -> GzipOpenAI:
        inner = self.app
        self.app = gzipping(inner)  # what the server is built with; the recording app stays self.app
        try:
            super().start()
        finally:
            self.app = inner
        return self




@pytest.mark.parametrize("stream", [False, True])
def test_a_compressing_upstream_reaches_the_client_decoded_and_without_its_encoding(live, funded_key, stream):
    """Content-Encoding is the upstream hop's: the client gets plain bytes with no stale encoding header."""
    with GzipOpenAI(api_key=OPENAI_KEY) as fake:
        ModelPrice.objects.create(model="gzip-hdr", model_ratio=Decimal(1), completion_ratio=Decimal(1))
        upstream_save(name="gzip", type="openai", base_url=fake.url, keys=OPENAI_KEY, served_models=["gzip-hdr"],
                      groups=[group_default().name])
        _user, key = funded_key()
        response = httpx.post(f"{live.url}/v1/chat/completions", timeout=30, headers={"authorization": f"Bearer {key}"},
                              json={"model": "gzip-hdr", "stream": stream, **CHAT})
    assert response.status_code == 200, response.text[:300]
    assert "content-encoding" not in response.headers
    assert "Hello" in response.text, response.text[:300]


class LeakyTasks(FakeTasks):
    """The task fake, answering every request with the headers a client should not see."""

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        async def leaky(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [(k.encode(), v.encode()) for k, v in UPSTREAM_EXTRAS.items()]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await super().app(scope, receive, leaky)


@pytest.fixture(scope="module")
def tasks_fake():
    with LeakyTasks() as fake:
        yield fake


@pytest.fixture
def task_key(live, tasks_fake, funded_key, settings) -> str:
    """Midjourney, Suno and OpenAI-videos upstreams on the leaky task fake; the caller's key."""
    tasks_fake.reset()
    settings.TASK_POLL_SECONDS = 0
    for model in ("mj_imagine", "suno_music", "sora-2"):
        ModelPrice.objects.create(model=model, price_per_call=Decimal("0.1"))
    for kind, key, models in [("midjourney", task_upstreams.MJ_SECRET, ["mj_imagine"]),
                              ("suno", task_upstreams.SUNO_KEY, ["suno_music"]),
                              ("openai", task_upstreams.OPENAI_KEY, ["sora-2"])]:
        upstream_save(name=kind, type=kind, base_url=tasks_fake.url, keys=key, served_models=models,
                      groups=[group_default().name])
    _user, key = funded_key()
    return key


@pytest.mark.parametrize(("path", "body", "credentials"), [
    ("/mj/submit/imagine", {"prompt": "a fox"}, {"mj-api-secret": task_upstreams.MJ_SECRET}),
    ("/mj-relax/mj/submit/imagine", {"prompt": "a fox"}, {"mj-api-secret": task_upstreams.MJ_SECRET}),
    ("/suno/submit/music", {"gpt_description_prompt": "a song"},
     {"authorization": f"Bearer {task_upstreams.SUNO_KEY}"}),
    ("/v1/videos", {"model": "sora-2", "prompt": "a fox"}, {"authorization": f"Bearer {task_upstreams.OPENAI_KEY}"}),
])
def test_task_submits_forward_only_the_upstreams_own_key(live, tasks_fake, task_key, path, body, credentials):
    key = task_key
    response = httpx.post(live.url + path, headers=client_headers(key), json=body, timeout=30)
    assert response.status_code == 200, response.text[:300]
    sent = tasks_fake.requests[-1]
    raw = sent["body"] if isinstance(sent["body"], bytes) else str(sent["body"]).encode()
    assert_upstream_got_only_what_it_needs(sent["headers"], raw, tasks_fake.url.removeprefix("http://"), key,
                                           credentials, sent["path"] + sent["query"])
    assert_client_got_no_upstream_headers(response)


def test_video_content_streams_without_the_upstreams_headers(live, tasks_fake, task_key):
    key = task_key
    auth = {"authorization": f"Bearer {key}"}
    video = httpx.post(f"{live.url}/v1/videos", headers=auth, json={"model": "sora-2", "prompt": "a fox"},
                       timeout=30).json()
    media_tasks_poll()
    media_tasks_poll()
    response = httpx.get(f"{live.url}/v1/videos/{video['id']}/content", headers=client_headers(key), timeout=30)
    assert response.status_code == 200 and response.content == task_upstreams.VIDEO_BYTES
    assert response.headers["content-type"] == "video/mp4"
    sent = tasks_fake.requests[-1]
    assert sent["path"].endswith("/content")
    assert_upstream_got_only_what_it_needs(sent["headers"], b"", tasks_fake.url.removeprefix("http://"), key,
                                           {"authorization": f"Bearer {task_upstreams.OPENAI_KEY}"},
                                           sent["path"] + sent["query"])
    assert_client_got_no_upstream_headers(response)
