"""Bodies over RELAY_MAX_BODY_BYTES get a 413 in the caller's protocol, whether the size is declared or only seen
while reading (chunked); broken multipart uploads and absurd output caps get clean 400s. Nothing is forwarded and no
money moves for any of them."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest

from billing.groups import group_default, price_save
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_media import tiny_wav
from tests.fakes.openai_upstream import FakeOpenAI
from tests.security.checks import Books, error_shaped, protocol_of
from tests.support import settled

LIMIT = 64 * 1024
UPSTREAM_KEY = "sk-upstream-oversized"


@dataclass
class Env:
    url: str
    fake: FakeOpenAI  # the OpenAI upstream for transcription and image edits; records what reached it


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(api_key=UPSTREAM_KEY) as up:
        yield up


@pytest.fixture
def env(live, bootstrap_demo, fake, settings) -> Env:
    """Transcription and image edits on a fake OpenAI upstream next to the demo upstream, the body limit lowered to
    LIMIT (the relay reads the setting per request), and the demo task models for Midjourney and Suno."""
    fake.reset()
    settings.RELAY_MAX_BODY_BYTES = LIMIT
    if not ModelPrice.objects.filter(model="whisper-1").exists():  # bootstrap seeds both on most installs
        price_save(model="whisper-1", category="audio", price_per_minute=Decimal("0.006"))
    if not ModelPrice.objects.filter(model="gpt-image-1").exists():
        price_save(model="gpt-image-1", category="image", model_ratio=Decimal("2.5"), completion_ratio=Decimal(8))
    upstream_save(name="media", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, groups=[group_default().name],
                  served_models=["whisper-1", "gpt-image-1"])
    upstream_save(name="demo tasks", type="demo", served_models=["mj_imagine", "suno_music"],
                  groups=[group_default().name])
    return Env(live.url, fake)


def _post(env: Env, path: str, key: str, content: bytes | Iterator[bytes], content_type: str) -> httpx.Response:
    return httpx.post(env.url + path, content=content, timeout=30,
                      headers={"authorization": f"Bearer {key}", "content-type": content_type})


def _multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/", data=fields, files=files)
    return request.read(), request.headers["content-type"]


def _request(path: str, padding: int) -> tuple[bytes, str]:
    """A valid request for `path`, padded with `padding` bytes of prompt or file."""
    filler = "x" * padding
    chat = {"model": "demo-chat", "messages": [{"role": "user", "content": filler or "hi"}], "max_tokens": 16}
    bodies = {
        "/v1/chat/completions": chat, "/v1/messages": chat,
        "/v1beta/models/demo-chat:generateContent": {"contents": [{"role": "user", "parts": [{"text": filler}]}]},
        "/mj/submit/imagine": {"prompt": filler or "a fox"},
        "/suno/submit/music": {"gpt_description_prompt": filler or "a song"},
    }
    if path in bodies:
        return json.dumps(bodies[path]).encode(), "application/json"
    if path == "/v1/audio/transcriptions":
        return _multipart({"model": "whisper-1"}, {"file": ("a.wav", tiny_wav(1) + b"\0" * padding, "audio/wav")})
    return _multipart({"model": "gpt-image-1", "prompt": "a hat"},
                      {"image": ("a.png", b"\x89PNG" + b"\0" * padding, "image/png")})


LIMITED = ["/v1/chat/completions", "/v1/messages", "/v1beta/models/demo-chat:generateContent", "/mj/submit/imagine",
           "/suno/submit/music", "/v1/audio/transcriptions", "/v1/images/edits"]
PATHS = LIMITED


def _too_large(response: httpx.Response, path: str) -> None:
    assert response.status_code == 413, (path, response.status_code, response.text[:300])
    assert error_shaped(protocol_of(path), response.json()), response.text[:300]


@pytest.mark.parametrize("path", PATHS)
def test_a_declared_body_over_the_limit_is_refused_in_the_callers_shape(env, funded_key, path):
    user, key = funded_key()
    before = Books.of(user)
    raw, content_type = _request(path, LIMIT)
    assert len(raw) > LIMIT
    _too_large(_post(env, path, key, raw, content_type), path)
    assert Books.of(user) == before and env.fake.requests == []


@pytest.mark.parametrize("path", PATHS)
def test_a_chunked_body_over_the_limit_is_refused_in_the_callers_shape(env, funded_key, path):
    user, key = funded_key()
    before = Books.of(user)
    raw, content_type = _request(path, LIMIT)

    def chunks() -> Iterator[bytes]:  # no Content-Length: httpx sends Transfer-Encoding: chunked
        for start in range(0, len(raw), 8192):
            yield raw[start:start + 8192]

    _too_large(_post(env, path, key, chunks(), content_type), path)
    assert Books.of(user) == before and env.fake.requests == []


@pytest.mark.parametrize("path", LIMITED)
def test_a_body_just_under_the_limit_is_served(env, funded_key, path):
    """The limit refuses what is over it, not everything: the same requests a little smaller are answered."""
    _user, key = funded_key()
    raw, content_type = _request(path, 0)
    raw, content_type = _request(path, LIMIT - len(raw) - 64)
    assert LIMIT - 128 <= len(raw) <= LIMIT
    response = _post(env, path, key, raw, content_type)
    assert response.status_code == 200, (path, response.text[:300])


def test_the_limit_is_enforced_while_reading_before_the_body_ends(env, funded_key):
    """A chunked body that passes the limit and never ends is answered 413 at once: the relay counts as it reads
    instead of waiting for the whole body (or trusting a header that is not there)."""
    _user, key = funded_key()
    host, port = env.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
                     "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"x" * 4096
        for _ in range(LIMIT // len(chunk) + 2):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:  # the final 0-chunk is never sent
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


# --- multipart edge cases ---

BOUNDARY = "b0undary"
MULTIPART_CASES = {  # name -> (body, content type, expected param or None)
    "no file part": (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{{model}}\r\n'
                     f"--{BOUNDARY}--\r\n", f"multipart/form-data; boundary={BOUNDARY}", "{file}"),
    "an empty file": (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{{model}}\r\n'
                      f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{{file}}"; filename="a.bin"\r\n'
                      f"Content-Type: application/octet-stream\r\n\r\n\r\n--{BOUNDARY}--\r\n",
                      f"multipart/form-data; boundary={BOUNDARY}", "{file}"),
    "no model field": (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\na hat\r\n'
                       f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{{file}}"; filename="a.wav"\r\n'
                       f"Content-Type: audio/wav\r\n\r\nRIFF....WAVE\r\n--{BOUNDARY}--\r\n",
                       f"multipart/form-data; boundary={BOUNDARY}", "model"),
    "a boundary that is not in the body": (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n'
                                           f"x\r\n--{BOUNDARY}--\r\n", "multipart/form-data; boundary=other", None),
    "no boundary": (f"--{BOUNDARY}--\r\n", "multipart/form-data", None),
    "an empty boundary": (f"--{BOUNDARY}--\r\n", 'multipart/form-data; boundary=""', None),
    "a huge boundary": ("--" + "b" * 5000 + "--\r\n", "multipart/form-data; boundary=" + "b" * 5000, None),
    "a truncated body": (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n{{model}}',
                         f"multipart/form-data; boundary={BOUNDARY}", None),
    "a part without a name": (f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{BOUNDARY}--\r\n",
                              f"multipart/form-data; boundary={BOUNDARY}", None),
    "garbage after the boundary": (f"--{BOUNDARY}XX\r\n", f"multipart/form-data; boundary={BOUNDARY}", None),
    "a JSON body": ('{"model": "{model}"}', "application/json", None),
    "no body": ("", f"multipart/form-data; boundary={BOUNDARY}", None),
}
UPLOADS = {"/v1/audio/transcriptions": ("whisper-1", "file"), "/v1/images/edits": ("gpt-image-1", "image")}


@pytest.mark.parametrize("case", MULTIPART_CASES)
@pytest.mark.parametrize("path", UPLOADS)
def test_broken_multipart_uploads_get_a_clean_400_and_cost_nothing(env, funded_key, path, case):
    user, key = funded_key()
    before = Books.of(user)
    model, file_field = UPLOADS[path]
    template, content_type, param = MULTIPART_CASES[case]
    raw = template.replace("{model}", model).replace("{file}", file_field).encode()
    response = _post(env, path, key, raw, content_type)
    assert response.status_code == 400, (case, response.status_code, response.text[:300])
    assert error_shaped("openai", response.json()), response.text[:300]
    if param is not None:
        assert response.json()["error"]["param"] == param.replace("{file}", file_field)
    assert Books.of(user) == before and env.fake.requests == []


@pytest.mark.parametrize("path", UPLOADS)
def test_a_well_formed_upload_is_relayed(env, funded_key, path):
    """The baseline the broken ones are measured against: the same route takes a proper upload."""
    _user, key = funded_key()
    raw, content_type = _request(path, 0)
    response = _post(env, path, key, raw, content_type)
    assert response.status_code == 200, response.text[:300]
    assert len(env.fake.requests) == 1


# --- absurd output caps ---

ABSURD = [-1, 0, 10**12, 10_000_001, 2**63, 10**400, "100", 1.5, 100.0, True, [16], {"n": 1}, float("nan")]


@pytest.mark.parametrize("value", ABSURD, ids=lambda v: repr(v)[:24])
@pytest.mark.parametrize(("path", "field"), [("/v1/chat/completions", "max_tokens"),
                                             ("/v1/chat/completions", "max_completion_tokens"),
                                             ("/v1/messages", "max_tokens"), ("/v1/responses", "max_output_tokens")])
def test_absurd_output_caps_get_a_clean_400_and_cost_nothing(env, funded_key, path, field, value):
    user, key = funded_key()
    before = Books.of(user)
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "input": "hi", field: value}
    if path == "/v1/responses":
        body.pop("messages")
    response = _post(env, path, key, json.dumps(body, allow_nan=True).encode(), "application/json")
    assert response.status_code == 400, (value, response.status_code, response.text[:300])
    assert error_shaped(protocol_of(path), response.json()), response.text[:300]
    assert Books.of(user) == before


def test_the_largest_cap_reserves_a_bounded_amount_and_refuses_what_the_balance_cannot_cover(env, funded_key):
    """max_tokens at the ceiling reserves its worst case: refused (403, nothing moved) on a trial balance, served
    and charged only what was used on a large one."""
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10_000_000}
    poor, poor_key = funded_key("poor", balance=0)
    before = Books.of(poor)
    response = _post(env, "/v1/chat/completions", poor_key, json.dumps(body).encode(), "application/json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "insufficient_quota"
    assert Books.of(poor) == before

    rich, rich_key = funded_key("rich", balance=10**9)
    before = Books.of(rich)
    response = _post(env, "/v1/chat/completions", rich_key, json.dumps(body).encode(), "application/json")
    assert response.status_code == 200, response.text[:300]
    assert settled(lambda: UsageLog.objects.filter(user=rich).exists())
    log = UsageLog.objects.get(user=rich)
    after = Books.of(rich)
    assert 0 < log.quota < 1_000 and before.quota - after.quota == log.quota and after.balanced()


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/mj/submit/imagine"])
def test_deeply_nested_json_gets_a_clean_400(env, funded_key, path):
    _user, key = funded_key()
    response = _post(env, path, key, b"[" * 10_000 + b"]" * 10_000, "application/json")  # well under LIMIT
    assert response.status_code == 400 and error_shaped(protocol_of(path), response.json())


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
def test_json_nested_past_what_the_relay_reads_gets_a_clean_400_inside_a_valid_body(env, funded_key, path):
    """A thousand levels: a JSON reader in C could take it, the relay refuses it before anything is charged."""
    user, key = funded_key()
    before = Books.of(user)
    body = (b'{"model":"demo-chat","max_tokens":16,"messages":[{"role":"user","content":"hi"}],"x":'
            + b"[" * 1_000 + b"]" * 1_000 + b"}")
    response = _post(env, path, key, body, "application/json")
    assert response.status_code == 400 and error_shaped(protocol_of(path), response.json())
    assert Books.of(user) == before


@pytest.mark.parametrize("model", ["\ud800", "demo\udfff", "a\x00b", "\u202edemo-chat"])
def test_odd_model_names_on_chat_get_a_clean_answer(env, funded_key, model):
    """An unpaired surrogate in a model name used to be echoed into the error message, which could not be encoded."""
    user, key = funded_key()
    before = Books.of(user)
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    response = _post(env, "/v1/chat/completions", key, json.dumps(body).encode(), "application/json")
    assert 400 <= response.status_code < 500, response.text[:300]
    assert error_shaped("openai", response.json()) and Books.of(user) == before


def test_an_odd_provider_pin_is_echoed_safely(env, funded_key):
    """The pin is quoted in the 400 that no upstream of it offers the model; an unpaired surrogate in it is replaced, not a crash."""
    user, key = funded_key()
    before = Books.of(user)
    body = {"model": "demo-chat", "messages": [{"role": "user", "content": "hi"}], "provider": "\ud800"}
    response = _post(env, "/v1/chat/completions", key, json.dumps(body).encode(), "application/json")
    assert response.status_code == 400 and error_shaped("openai", response.json()), response.text[:300]
    assert Books.of(user) == before
