"""Property-based bad input on every task route (Midjourney, Suno, music, audio and video generations): whatever the
body, id or query, the answer is never a 5xx, every error comes in the route's own protocol's shape, and a refused
request moves no money (no ledger row, the same ledger sum and balance). The `live` fixture checks the books again
at the end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from accounts.models import User
from billing.groups import group_default
from relay.upstreams import upstream_save
from tests.security.checks import Books, accepted, error_shaped, protocol_of

MJ_MODELS = ["mj_imagine", "mj_upscale", "mj_variation", "mj_reroll", "mj_blend", "mj_describe", "mj_modal",
             "mj_action", "mj_zoom", "mj_pan", "mj_shorten", "swap_face", "mj_upload"]
IMAGE = "data:image/png;base64,iVBORw0KGgo="
MINE = "<the caller's Midjourney task>"  # replaced by its id, so a change can be taken as well as refused
SUBMITS = [  # (path, a valid body that the fuzzer mutates one field at a time)
    ("/mj/submit/imagine", {"prompt": "a fox", "state": "s", "botType": "MID_JOURNEY"}),
    ("/mj/submit/change", {"taskId": MINE, "action": "UPSCALE", "index": 1}),
    ("/mj/submit/action", {"taskId": MINE, "customId": "MJ::JOB::upsample::2::abc"}),
    ("/mj/submit/modal", {"taskId": MINE, "prompt": "p"}),
    ("/mj/submit/blend", {"base64Array": [IMAGE, IMAGE], "dimensions": "SQUARE"}),
    ("/mj/submit/describe", {"base64": IMAGE}),
    ("/mj/submit/simple-change", {"content": MINE + " U2", "state": "s"}),
    ("/mj/submit/shorten", {"prompt": "a fox"}),
    ("/mj/insight-face/swap", {"sourceBase64": IMAGE, "targetBase64": IMAGE}),
    ("/mj/submit/upload-discord-images", {"base64Array": [IMAGE]}),
    ("/mj-fast/mj/submit/imagine", {"prompt": "a fox"}),
    ("/mj/task/list-by-condition", {"ids": [MINE, "1730621826053455"]}),
    ("/suno/submit/music", {"gpt_description_prompt": "a song", "make_instrumental": False, "mv": "chirp-v3-5"}),
    ("/suno/submit/lyrics", {"prompt": "rain"}),
    ("/suno/submit/video", {"prompt": "rain"}),  # not an action: a clean 400
    ("/suno/fetch", {"ids": ["task_0"], "action": "MUSIC"}),
    ("/v1/music/generations", {"model": "demo-music", "prompt": "a song", "lyrics": "la la", "tags": "pop"}),
    ("/v1/audio/generations", {"model": "demo-audio", "prompt": "rain", "duration": 5, "format": "mp3"}),
    ("/v1/video/generations", {"model": "demo-video", "prompt": "a fox", "duration": 5, "size": "1280x720",
                               "image": "https://example.com/a.png", "metadata": {"seed": 1}}),
    ("/v1/videos", {"model": "demo-video", "prompt": "a fox", "seconds": "4", "size": "720x1280"}),
    ("/kling/v1/videos/text2video", {"model_name": "demo-video", "prompt": "a fox", "duration": "5", "mode": "std",
                                     "external_task_id": "x1", "callback_url": "https://x.y/h"}),
    ("/kling/v1/videos/image2video", {"model_name": "demo-video", "image": "https://example.com/a.png",
                                      "image_tail": "https://example.com/b.png", "duration": "10"}),
]
NOT_OFFERED = {"/suno/submit/video"}
FETCHES = ["/mj/task/{id}/fetch", "/mj/task/{id}/image-seed", "/mj-relax/mj/task/{id}/fetch", "/suno/fetch/{id}",
           "/v1/music/generations/{id}", "/v1/audio/generations/{id}", "/v1/video/generations/{id}",
           "/v1/videos/{id}", "/v1/videos/{id}/content", "/kling/v1/videos/text2video/{id}"]
FIELDS = ["model", "model_name", "external_task_id", "prompt", "content", "sourceBase64", "targetBase64", "taskId",
          "action", "index", "customId", "base64Array", "base64", "ids", "state", "notifyHook", "notify_hook",
          "callback_url", "botType", "gpt_description_prompt", "make_instrumental", "mv", "task_id",
          "continue_clip_id", "continue_at", "lyrics", "tags", "title", "duration", "seconds", "size", "resolution",
          "mode", "format", "image", "image_url", "images", "input_reference", "metadata", "aspect_ratio",
          "cfg_scale", "camera_control", "negative_prompt", "image_tail"]
ODD_STRINGS = [
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u202e\u200fevil", "\ufeff", "😀" * 50, "a" * 10_000,
    "demo-video", "demo-music", "demo-audio", "demo-chat", "gpt-9", "mj_imagine", "suno_music", "sora-2", "../x",
    "UPSCALE", "VARIATION", "REROLL", "MJ::JOB::variation::1::x", "MJ::", "1730621826053455", "task_0", "mp3", "wav",
    "10", "-1", "1e309", "NaN", "²", "١٢", "http://127.0.0.1/hook", "http://[::1", "http://a:99999/",
    "https://x.y/h", "http://user:pw@example.com/h", "http://\x00.example/", "ftp://x/",
]
SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.sampled_from([0, -1, 1, 4, 5, 10**12, -(10**12), 2**63, 2**64 + 1])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=40) | st.sampled_from(ODD_STRINGS))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4), max_leaves=10)
BODIES = st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=8)
RAW = st.one_of(BODIES.map(lambda b: json.dumps(b, allow_nan=True).encode()), st.binary(max_size=64),
                st.sampled_from([b"", b"[]", b"null", b"{", b'"x"', b"1e999999", b'{"prompt": "a"', b'{"a":NaN}',
                                 b'{"prompt": "\xff\xfe"}', b'{"prompt": "x", "prompt": 1}', b"\x00" * 16]))
ODD_IDS = ["0", "-1", "1" * 400, "%2e%2e", ".%2e", "..%2F..%2Fv1%2Fmodels", "%00", "a%00b", "%ff", "%ED%A0%80",
           "%E2%80%AE", "task_" + "0" * 24, "1730621826053455", "%20", "null", "%25", "a;b", "a?b=c"]
QUERIES = st.fixed_dictionaries({}, optional={
    "limit": st.sampled_from(["0", "1", "100", "101", "-1", "abc", "²", "١٢", "", "9" * 40, "%00"]),
    "after": st.sampled_from(["", "task_0", "\x00", "%00", "x" * 300, "\u202e"]) | st.text(max_size=20),
    "order": st.sampled_from(["asc", "desc", "", "\x00"]),
    "variant": st.sampled_from(["video", "thumbnail", "x", ""]),
})
FUZZ = settings(max_examples=25, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def mutated(valid: dict) -> st.SearchStrategy[bytes]:
    """The valid body with one field replaced (or added) by any value."""
    return st.tuples(st.sampled_from(sorted(set(valid) | set(FIELDS))), VALUES).map(
        lambda change: json.dumps({**valid, change[0]: change[1]}, allow_nan=True).encode())


def multipart(fields: dict[str, object]) -> tuple[bytes, str]:
    """A multipart body with the fields as text and, sometimes, an empty or tiny `input_reference` file."""
    files = {"input_reference": ("ref.png", b"" if len(fields) % 2 else b"\x89PNG", "image/png")}
    request = httpx.Request("POST", "http://x/", data={k: v if isinstance(v, str) else json.dumps(v)
                                                        for k, v in fields.items()}, files=files)
    return request.read(), request.headers["content-type"]


@dataclass
class TaskEnv:
    user: User
    client: httpx.Client  # the caller's key in every request
    theirs: list[str]  # ids of another user's tasks (Midjourney, video)
    mine: str  # the id of one of the caller's Midjourney tasks

    def filled(self, body: dict[str, Any]) -> dict[str, Any]:
        """`body` with MINE replaced by the caller's task id."""
        return json.loads(json.dumps(body).replace(json.dumps(MINE)[1:-1], self.mine))


@pytest.fixture
def task_env(live, bootstrap_demo, funded_key) -> Iterator[TaskEnv]:
    """A demo upstream for every task kind, a caller with a large balance and a task, and tasks of someone else's."""
    upstream_save(name="demo mj and suno", type="demo", served_models=MJ_MODELS + ["suno_music", "suno_lyrics"],
                  groups=[group_default().name])
    caller, key = funded_key("caller", balance=10**10)
    _other, other_key = funded_key("other")
    theirs = [httpx.post(live.url + path, json=body, headers={"authorization": f"Bearer {other_key}"},
                         timeout=10).json() for path, body in (
        ("/mj/submit/imagine", {"prompt": "theirs"}),
        ("/v1/video/generations", {"model": "demo-video", "prompt": "theirs"}))]
    ids = [theirs[0]["result"], theirs[1]["id"]]
    with httpx.Client(base_url=live.url, timeout=30, headers={"authorization": f"Bearer {key}"}) as client:
        mine = client.post("/mj/submit/imagine", json={"prompt": "mine"}).json()["result"]
        yield TaskEnv(caller, client, ids, mine)


def check_answer(user: User, client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request: never a 5xx, errors in the route's shape, and no money moved unless it was taken."""
    before = Books.of(user)
    response = client.request(method, path, **kwargs)
    after = Books.of(user)
    protocol = protocol_of(path)
    seen = (method, path, kwargs.get("content", b"")[:300], response.status_code, response.text[:400])
    assert response.status_code < 500, seen
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
    if response.status_code >= 400 or (method == "POST" and not accepted(protocol, response.status_code, body)):
        assert error_shaped(protocol, body), seen
        assert after == before, seen  # a refused request reserves nothing, refunds nothing, writes no row
    assert after.balanced(), seen
    if method == "GET":
        assert after == before, seen
    return response


@pytest.mark.parametrize(("path", "valid"), SUBMITS, ids=[p for p, _ in SUBMITS])
def test_no_submit_body_makes_a_server_error_or_moves_money(task_env, path, valid):
    user, client = task_env.user, task_env.client
    valid = task_env.filled(valid)
    baseline = check_answer(user, client, "POST", path, json=valid)  # the body the fuzzer starts from is taken
    assert accepted(protocol_of(path), baseline.status_code, baseline.json()) == (path not in NOT_OFFERED), \
        baseline.text[:300]

    @FUZZ
    @given(raw=st.one_of(RAW, mutated(valid)))
    def check(raw: bytes) -> None:
        check_answer(user, client, "POST", path, content=raw, headers={"content-type": "application/json"})

    check()


STORED_ODDITIES = ["a\x00b", "x\udfffy", "\u202e\u200f", "a" * 10_000, float("nan"), 10**40, "http://[::1",
                   "http://a:99999/"]


@pytest.mark.parametrize(("path", "valid"), SUBMITS, ids=[p for p, _ in SUBMITS])
def test_odd_values_in_every_field_are_stored_or_refused_cleanly(task_env, path, valid):
    """Each field of a valid body (and each callback field) in turn set to what PostgreSQL cannot store (NUL,
    unpaired surrogates, NaN) or what a parser chokes on: a clean answer every time."""
    user, client = task_env.user, task_env.client
    valid = task_env.filled(valid)
    for name in [*valid, "notifyHook", "state", "metadata"]:
        for odd in STORED_ODDITIES:
            raw = json.dumps({**valid, name: odd}, allow_nan=True).encode()
            check_answer(user, client, "POST", path, content=raw, headers={"content-type": "application/json"})


def test_no_multipart_video_submit_makes_a_server_error_or_moves_money(task_env):
    user, client = task_env.user, task_env.client

    @FUZZ
    @given(fields=st.one_of(BODIES, st.tuples(st.sampled_from(FIELDS), VALUES).map(
        lambda change: {"model": "demo-video", "prompt": "a fox", change[0]: change[1]})))
    def check(fields: dict) -> None:
        raw, content_type = multipart(fields)
        check_answer(user, client, "POST", "/v1/videos", content=raw, headers={"content-type": content_type})

    check()


@pytest.mark.parametrize("template", FETCHES)
def test_no_task_id_makes_a_server_error_or_shows_someone_elses_task(task_env, template):
    user, client, theirs = task_env.user, task_env.client, task_env.theirs

    @FUZZ
    @given(task_id=st.sampled_from(ODD_IDS + theirs) | st.text(min_size=1, max_size=30).map(
        lambda text: quote(text, safe="").replace(".", "%2E")))  # the client would resolve "." and ".." away
    def check(task_id: str) -> None:
        response = check_answer(user, client, "GET", template.format(id=task_id))
        if task_id in theirs:
            assert response.status_code == 404, response.text[:300]

    check()


def test_no_video_list_query_makes_a_server_error(task_env):
    user, client = task_env.user, task_env.client

    @FUZZ
    @given(query=QUERIES)
    def check(query: dict[str, str]) -> None:
        response = check_answer(user, client, "GET", "/v1/videos", params=query)
        if response.status_code == 200:
            assert response.json()["object"] == "list" and response.json()["data"] == []  # none of theirs

    check()


ODD_ID_LISTS = [["x"] * 501, [1, 2], "1730621826053455", [None], ["\x00"], ["\ud800"], [{"id": "1"}], ["a" * 100_000]]


@pytest.mark.parametrize("path", ["/mj/task/list-by-condition", "/suno/fetch"])
def test_list_routes_refuse_odd_id_lists_cleanly(task_env, path):
    user, client = task_env.user, task_env.client
    for ids in [*ODD_ID_LISTS, task_env.theirs]:
        response = check_answer(user, client, "POST", path, content=json.dumps({"ids": ids}).encode(),
                                headers={"content-type": "application/json"})
        assert response.status_code in (200, 400), (ids, response.text[:300])
        if response.status_code == 200:  # a list of the caller's own tasks: none of these ids are
            listed = response.json() if path.startswith("/mj/") else response.json()["data"]
            assert listed == [], ids


ELSEWHERE = [("GET", "/mj/submit/imagine"), ("PUT", "/mj/task/list-by-condition"), ("DELETE", "/suno/fetch"),
             ("PATCH", "/v1/videos"), ("POST", "/v1/videos/task_0"), ("GET", "/suno/submit/music"),
             ("POST", "/mj/nothing/here"), ("GET", "/suno/unknown"), ("POST", "/mj/task/1/fetch")]


def test_wrong_methods_and_unknown_task_paths_answer_in_the_routes_shape(task_env):
    for method, path in ELSEWHERE:
        response = check_answer(task_env.user, task_env.client, method, path, content=b"{}",
                                headers={"content-type": "application/json"})
        assert response.status_code in (404, 405), (method, path)
        assert error_shaped(protocol_of(path), response.json()), (method, path, response.text[:300])


NO_VALID_KEY = [{}, {"authorization": "Bearer sk-wrong"}, {"mj-api-secret": "sk-wrong"},
                {"x-api-key": "sk-" + "a" * 500}, {"authorization": "Bearer"}]


def test_calls_without_a_valid_key_are_refused_in_the_routes_shape(task_env):
    before = Books.of(task_env.user)
    base = str(task_env.client.base_url).rstrip("/")
    for path in ["/mj/submit/imagine", "/suno/submit/music", "/v1/video/generations", "/v1/videos/task_0"]:
        for headers in NO_VALID_KEY:
            method = "GET" if path.endswith("task_0") else "POST"
            response = httpx.request(method, base + path, headers=headers, json={"prompt": "x"}, timeout=10)
            assert response.status_code == 401, (path, headers)
            assert error_shaped(protocol_of(path), response.json()), response.text[:300]
    assert Books.of(task_env.user) == before


def test_video_metadata_cannot_change_what_is_billed(task_env):
    """metadata is merged verbatim into the vendor's payload (protocols.md 9.1): it may add vendor fields, but not
    override the model, length or mode the task is priced by (a 10 s pro video billed as 5 s std)."""
    user, client = task_env.user, task_env.client
    before = Books.of(user)
    for name, value in [("model_name", "kling-v2-master"), ("model", "kling-v2"), ("duration", "10"),
                        ("seconds", 10), ("frames", 241), ("mode", "pro"), ("external_task_id", "x")]:
        response = check_answer(user, client, "POST", "/v1/video/generations", json={
            "model": "demo-video", "prompt": "a fox", "duration": 5, "metadata": {name: value}})
        assert response.status_code == 400 and response.json()["error"]["param"] == "metadata", name
    assert Books.of(user) == before
    response = client.post("/v1/video/generations", json={"model": "demo-video", "prompt": "a fox",
                                                           "metadata": {"seed": 7, "negative_prompt": "rain"}})
    assert response.status_code == 200, response.text[:300]
