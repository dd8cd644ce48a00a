"""Server-side request forgery: callback URLs (Midjourney's notifyHook and the other hook fields) may not reach
private, loopback, link-local, unspecified or multicast addresses, in any IPv4 or IPv6 spelling, before or after DNS
resolution; the connection goes to the address that was checked; redirects are not followed. Image URLs in chat and
task requests are handed to the upstream, never fetched by the relay."""

from __future__ import annotations

import socket
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from billing.groups import group_default
from billing.models import ModelPrice
from relay.media_tasks import notify
from relay.media_tasks.models import MediaTask
from relay.media_tasks.notify import hook_allowed_literal, hook_target, media_task_notifications_deliver
from relay.media_tasks.poller import media_tasks_poll
from relay.upstreams import upstream_save
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini
from tests.security.checks import Books, error_shaped, protocol_of
from tests.security.receiver import Receiver

HOOK_HOST = "hooks.example.test"  # never resolvable for real: every test says what it resolves to
REAL_GETADDRINFO = socket.getaddrinfo
NOT_PUBLIC = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.250", "192.0.0.8", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",  # IPv4-mapped
    "::127.0.0.1", "::10.0.0.1",  # IPv4-compatible
    "::ffff:0:127.0.0.1",  # IPv4-translated
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::1",  # NAT64, well-known and local-use
    "2002:7f00:1::1", "2002:a9fe:a9fe::1",  # 6to4 around 127.0.0.1 and 169.254.169.254
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
SUBMITS = [  # (path, body, the hook field it sends)
    ("/mj/submit/imagine", {"prompt": "a fox"}, "notifyHook"),
    ("/mj-fast/mj/submit/imagine", {"prompt": "a fox"}, "notify_hook"),
    ("/suno/submit/music", {"gpt_description_prompt": "a song"}, "notify_hook"),
    ("/suno/submit/lyrics", {"prompt": "rain"}, "callback_url"),
    ("/v1/video/generations", {"model": "demo-video", "prompt": "a fox"}, "callback_url"),
    ("/v1/videos", {"model": "demo-video", "prompt": "a fox"}, "notifyHook"),
    ("/v1/music/generations", {"model": "demo-music", "prompt": "a song"}, "notify_hook"),
    ("/v1/audio/generations", {"model": "demo-audio", "prompt": "rain"}, "notifyHook"),
]


def _url(address: str, port: int | None = None, path: str = "/cb") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}{f':{port}' if port else ''}{path}"


def resolving(monkeypatch, answers: Callable[[], list[str]]) -> list[str]:
    """Make HOOK_HOST resolve to `answers()` (asked afresh on every lookup); other names resolve as usual. Returns
    the list of lookups of HOOK_HOST made, one entry each."""
    lookups: list[str] = []

    def getaddrinfo(host, port, *args, **kwargs):
        if host != HOOK_HOST:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        lookups.append(host)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 80))
                for a in answers()]

    monkeypatch.setattr(notify.socket, "getaddrinfo", getaddrinfo)
    return lookups


def counting_as_public(monkeypatch, address: str) -> None:
    """Let one loopback address stand in for a public host (the only kind of host a test can run)."""
    real = notify._public
    monkeypatch.setattr(notify, "_public", lambda a: a == address or real(a))


@pytest.fixture
def tasks(live, bootstrap_demo, funded_key, settings):
    """Demo upstreams for every task route, hooks checked (the default), and a funded caller: (user, client)."""
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    settings.TASK_NOTIFY_BACKOFF_SECONDS = 0
    upstream_save(name="demo mj and suno", type="demo", served_models=["mj_imagine", "suno_music", "suno_lyrics"],
                  groups=[group_default().name])
    user, key = funded_key()
    with httpx.Client(base_url=live.url, timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
        yield user, client


def _submit(client: httpx.Client, path: str, body: dict, field: str, hook: str) -> httpx.Response:
    return client.post(path, json={**body, field: hook})


def _task_of(response: httpx.Response) -> MediaTask:
    data = response.json()
    return MediaTask.objects.get(public_id=data.get("result") or data.get("id") or data.get("data"))


# --- refused at submit ---

def test_literal_non_public_hooks_are_refused_at_submit_on_every_route_and_field(tasks):
    user, client = tasks
    before = Books.of(user)
    hooks = [_url(a) for a in NOT_PUBLIC] + ["http://localhost/cb", "http://LOCALHOST:8080/cb",
                                             "http://api.localhost/cb", "https://user:pw@127.0.0.1/cb"]
    for path, body, field in SUBMITS:
        for hook in hooks:
            response = _submit(client, path, body, field, hook)
            assert response.status_code == 400, (path, hook, response.text[:300])
            assert error_shaped(protocol_of(path), response.json()), (path, hook, response.text[:300])
    assert not MediaTask.objects.exists() and Books.of(user) == before


def test_a_public_hook_is_taken_on_every_route_and_field(tasks):
    """The refusal above is about the address, not the field: a public hook is accepted everywhere."""
    _user, client = tasks
    for path, body, field in SUBMITS:
        response = _submit(client, path, body, field, "https://hooks.example.com/cb")
        assert response.status_code == 200, (path, response.text[:300])
        assert _task_of(response).notify_hook == "https://hooks.example.com/cb"


def test_a_callback_url_in_video_metadata_is_refused(tasks):
    """metadata is merged into the vendor's payload (Kling takes `callback_url`): a way round the hook checks."""
    user, client = tasks
    before = Books.of(user)
    for hook in ("http://127.0.0.1/cb", "https://hooks.example.com/cb"):
        response = client.post("/v1/video/generations", json={"model": "demo-video", "prompt": "x",
                                                                "metadata": {"callback_url": hook}})
        assert response.status_code == 400 and response.json()["error"]["param"] == "metadata", response.text
    assert not MediaTask.objects.exists() and Books.of(user) == before


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_every_non_public_form_is_refused_both_at_submit_and_at_delivery(settings, monkeypatch, address):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    assert not hook_allowed_literal(_url(address))
    with pytest.raises(ValueError):
        hook_target(_url(address))
    resolving(monkeypatch, lambda: [address])
    assert hook_allowed_literal(_url(HOOK_HOST))  # a name is checked once resolved, at delivery
    with pytest.raises(ValueError):
        hook_target(_url(HOOK_HOST))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(settings, monkeypatch, address):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    assert hook_allowed_literal(_url(address))
    resolving(monkeypatch, lambda: [address])
    target, headers, _extensions = hook_target(_url(HOOK_HOST, 8443))
    assert address in target and headers == {"host": f"{HOOK_HOST}:8443"}


def test_one_non_public_answer_among_public_ones_refuses_the_name(settings, monkeypatch):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    resolving(monkeypatch, lambda: ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(ValueError):
        hook_target(_url(HOOK_HOST))


@pytest.mark.parametrize("host", ["localhost", "localhost.", "127.1", "2130706433", "0x7f000001", "0177.0.0.1"])
def test_other_spellings_of_loopback_are_refused_once_resolved(settings, host):
    """Names and numeric forms the literal check cannot read are resolved by the system resolver at delivery."""
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    with pytest.raises(ValueError):
        hook_target(f"http://{host}/cb")


def test_the_host_header_never_carries_the_urls_credentials(settings, monkeypatch):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    resolving(monkeypatch, lambda: ["93.184.216.34"])
    target, headers, _extensions = hook_target(f"https://user:secret@{HOOK_HOST}/cb")
    assert headers == {"host": HOOK_HOST} and target.startswith("https://user:secret@93.184.216.34/")


# --- delivery, over real sockets ---

@pytest.mark.parametrize("allow_private", [False, True])
def test_a_hook_name_resolving_to_loopback_is_contacted_only_when_the_operator_allows_it(
        tasks, monkeypatch, settings, allow_private):
    _user, client = tasks
    with Receiver("127.0.0.1") as tripwire:
        resolving(monkeypatch, lambda: ["127.0.0.1"])
        response = _submit(client, "/mj/submit/imagine", {"prompt": "a fox"}, "notifyHook",
                           _url(HOOK_HOST, tripwire.port))
        assert response.status_code == 200 and response.json()["code"] == 1
        settings.TASK_NOTIFY_ALLOW_PRIVATE = allow_private
        media_task_notifications_deliver()
    task = _task_of(response)
    if allow_private:
        assert [h.path for h in tripwire.hits] == ["/cb"] and task.notify_error == ""
        assert tripwire.hits[0].headers["host"] == f"{HOOK_HOST}:{tripwire.port}"
    else:
        assert tripwire.hits == [] and "private" in task.notify_error and task.notify_after is None


@pytest.mark.parametrize("allow_private", [False, True])
def test_a_redirect_from_the_hook_is_not_followed(tasks, monkeypatch, settings, allow_private):
    """A public-looking hook that answers 302 to a loopback address: the delivery fails, the target is untouched."""
    _user, client = tasks
    with Receiver("127.0.0.1") as tripwire, Receiver("127.0.0.2") as hook:
        hook.redirect_to = f"{tripwire.url}/stolen"
        counting_as_public(monkeypatch, "127.0.0.2")
        resolving(monkeypatch, lambda: ["127.0.0.2"])
        settings.TASK_NOTIFY_ALLOW_PRIVATE = allow_private
        response = _submit(client, "/v1/video/generations", {"model": "demo-video", "prompt": "x"}, "callback_url",
                           _url(HOOK_HOST, hook.port))
        assert response.status_code == 200, response.text
        media_task_notifications_deliver()
    assert len(hook.hits) == 1 and hook.hits[0].method == "POST"
    assert tripwire.hits == []
    assert _task_of(response).notify_error == "HTTP 302"


def test_the_connection_goes_to_the_address_that_was_checked(tasks, monkeypatch):
    """DNS rebinding: the name resolves to a public address once, to loopback afterwards. One lookup is made per
    delivery and the connection goes to the address checked, with the name kept in Host."""
    _user, client = tasks
    with Receiver("127.0.0.2") as hook:
        with Receiver.on_port("127.0.0.1", hook.port) as tripwire:
            counting_as_public(monkeypatch, "127.0.0.2")
            answers = iter([["127.0.0.2"]])
            lookups = resolving(monkeypatch, lambda: next(answers, ["127.0.0.1"]))
            response = _submit(client, "/suno/submit/music", {"gpt_description_prompt": "x"}, "notifyHook",
                               _url(HOOK_HOST, hook.port))
            assert response.status_code == 200, response.text
            media_task_notifications_deliver()
    assert len(lookups) == 1
    assert len(hook.hits) == 1 and hook.hits[0].headers["host"] == f"{HOOK_HOST}:{hook.port}"
    assert tripwire.hits == [] and _task_of(response).notify_error == ""


# --- user-supplied URLs the relay passes on but never fetches ---

@pytest.fixture(scope="module")
def providers():
    with FakeAnthropic(api_key="sk-ant-ssrf") as claude, FakeGemini(api_key="g-ssrf") as gemini:
        yield claude, gemini


@pytest.fixture
def chat_upstreams(live, providers):
    claude, gemini = providers
    for fake in providers:
        fake.reset()
    for model in ("claude-ssrf", "gemini-ssrf"):
        ModelPrice.objects.create(model=model, model_ratio=Decimal(1), completion_ratio=Decimal(1))
    upstream_save(name="claude", type="anthropic", base_url=claude.url, keys="sk-ant-ssrf",
                  served_models=["claude-ssrf"], groups=[group_default().name])
    upstream_save(name="gemini", type="gemini", base_url=gemini.url, keys="g-ssrf", served_models=["gemini-ssrf"],
                  groups=[group_default().name])
    return claude, gemini


def test_image_urls_in_chat_are_passed_to_the_provider_not_fetched(live, chat_upstreams, funded_key):
    claude, gemini = chat_upstreams
    _user, key = funded_key()
    with Receiver("127.0.0.1") as tripwire:
        image = f"{tripwire.url}/secret.png"
        for model in ("claude-ssrf", "gemini-ssrf"):
            body = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {"url": image}}]}]}
            response = httpx.post(f"{live.url}/v1/chat/completions", json=body, timeout=30,
                                  headers={"authorization": f"Bearer {key}"})
            assert response.status_code == 200, response.text[:300]
    assert tripwire.hits == []
    assert image in claude.requests[-1].raw.decode() and image in gemini.requests[-1].raw.decode()


def test_image_urls_in_task_requests_are_never_fetched(tasks):
    _user, client = tasks
    with Receiver("127.0.0.1") as tripwire:
        image = f"{tripwire.url}/secret.png"
        for path, body in [("/v1/video/generations", {"model": "demo-video", "prompt": "x", "image": image}),
                           ("/v1/videos", {"model": "demo-video", "prompt": "x", "image_url": image,
                                           "images": [image]}),
                           ("/mj/submit/imagine", {"prompt": f"{image} a fox", "base64Array": [image]})]:
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text[:300])
        media_tasks_poll()
        media_task_notifications_deliver()
    assert tripwire.hits == []
    assert MediaTask.objects.filter(action="image2video").count() == 2
