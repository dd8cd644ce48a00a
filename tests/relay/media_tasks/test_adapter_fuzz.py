"""Property tests: every generation-task adapter copes with any upstream answer.

`submit` must return a `Submitted` or raise `SubmitRefused` (anything else becomes an HTTP 500 in
`relay/media_tasks/submit.py`), and `fetch` must return `{upstream_task_id: Snapshot}` or raise `httpx.HTTPError`
(anything else leaves every task of that upstream unpolled, see `relay/media_tasks/poller.py`), whatever JSON (or
non-JSON) body and status the upstream answers. The calls are built the way `relay/media_tasks/intake.py` builds them.

No database and no network: each adapter talks to an `httpx.MockTransport` that answers every request alike.
"""

from __future__ import annotations

import asyncio
import json
import os
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from relay.media_tasks.adapters import BY_FAMILY, BY_TYPE, adapter_for
from relay.media_tasks.adapters.base import (
    TASK_ID_MAX, Snapshot, SubmitRefused, Submitted, TaskCall, TaskRef, Upload,
)
from relay.media_tasks.models import TaskKind, TaskStatus
from relay.providers import PROVIDERS
from relay.snapshots import UpstreamInfo

EXAMPLES = int(os.environ.get("ADAPTER_FUZZ_EXAMPLES", "15"))  # raise it to explore
# No shrinking: a failure stays quick, and the minimal answers found so far are the KNOWN_* cases at the end.
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

STATUSES = (200, 201, 400, 401, 404, 429, 500, 503)
BASE_URLS = {"openai": "https://api.openai.com"}
KEYS = {"midjourney": "mj-secret", "suno": "sk-suno-test", "kling": "ak-test-1234|sk-test-5678",
        "jimeng": "AKLTtestaccess|c2VjcmV0LXRlc3Q=", "openai": "sk-test-openai"}
STATUS_VALUES = {s.value if hasattr(s, "value") else s for s in TaskStatus}

PNG = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJ"
       "RU5ErkJggg==")
IMAGE = Upload(name="input_reference", filename="ref.png", content_type="image/png", data=b"\x89PNG\r\n\x1a\nfake")


def _upstream(kind: str) -> UpstreamInfo:
    return UpstreamInfo(id=1, name=kind, type=kind, provider=PROVIDERS[kind],
                        base_url=BASE_URLS.get(kind, f"https://{kind}.upstream.example"), keys=(KEYS[kind],),
                        models=frozenset({"m"}), model_mapping={}, groups=frozenset({"default"}), priority=0,
                        weight=1, connect_timeout=5, first_byte_timeout=5, total_timeout=5, extras={})


# (upstream type, kind, action, operation, upstream model, body after intake, files): as intake.py builds them.
SUBMITS: dict[str, tuple[str, str, str, str, str, dict[str, Any], list[Upload]]] = {
    "mj-imagine": ("midjourney", TaskKind.MIDJOURNEY, "IMAGINE", "imagine", "mj_imagine",
                   {"prompt": "a lighthouse at dawn --ar 16:9 --v 6", "base64Array": [PNG]}, []),
    "mj-change": ("midjourney", TaskKind.MIDJOURNEY, "UPSCALE", "change", "mj_upscale",
                  {"taskId": "1712345678901234", "action": "UPSCALE", "index": 2}, []),
    "mj-simple-change": ("midjourney", TaskKind.MIDJOURNEY, "REROLL", "change", "mj_reroll",
                         {"taskId": "1712345678901234", "action": "REROLL"}, []),
    "mj-action": ("midjourney", TaskKind.MIDJOURNEY, "VARIATION", "action", "mj_variation",
                  {"taskId": "1712345678901234", "customId": "MJ::JOB::variation::1::3f2c9a"}, []),
    "mj-action-inpaint": ("midjourney", TaskKind.MIDJOURNEY, "INPAINT", "action", "mj_inpaint",
                          {"taskId": "1712345678901234", "customId": "MJ::Inpaint::1::3f2c9a::SOLO"}, []),
    "mj-modal": ("midjourney", TaskKind.MIDJOURNEY, "MODAL", "modal", "mj_modal",
                 {"taskId": "1712345678901234", "prompt": "a red hat", "maskBase64": PNG}, []),
    "mj-blend": ("midjourney", TaskKind.MIDJOURNEY, "BLEND", "blend", "mj_blend",
                 {"base64Array": [PNG, PNG], "dimensions": "SQUARE"}, []),
    "mj-upload": ("midjourney", TaskKind.MIDJOURNEY, "UPLOAD", "upload-discord-images", "mj_upload",
                  {"base64Array": [PNG]}, []),
    "mj-describe": ("midjourney", TaskKind.MIDJOURNEY, "DESCRIBE", "describe", "mj_describe", {"base64": PNG}, []),
    "mj-shorten": ("midjourney", TaskKind.MIDJOURNEY, "SHORTEN", "shorten", "mj_shorten",
                   {"prompt": "a very long prompt about a lighthouse"}, []),
    "mj-swap-face": ("midjourney", TaskKind.MIDJOURNEY, "SWAP_FACE", "swap_face", "swap_face",
                     {"sourceBase64": PNG, "targetBase64": PNG}, []),
    "suno-lyrics": ("suno", TaskKind.MUSIC, "LYRICS", "lyrics", "suno_lyrics", {"prompt": "a song about rain"}, []),
    "suno-music": ("suno", TaskKind.MUSIC, "MUSIC", "music", "chirp-v3-5",
                   {"prompt": "[Verse]\nrain again", "tags": "lofi", "title": "Rain", "make_instrumental": False}, []),
    "suno-continue": ("suno", TaskKind.MUSIC, "MUSIC", "music", "suno_music",
                      {"prompt": "more", "mv": "chirp-v3-5", "task_id": "up-task-1", "continue_clip_id": "clip-1",
                       "continue_at": 80}, []),
    "suno-music-generations": ("suno", TaskKind.MUSIC, "MUSIC", "music", "suno_music",
                               {"prompt": "calm piano", "make_instrumental": True,
                                "gpt_description_prompt": "calm piano"}, []),
    "suno-audio": ("suno", TaskKind.AUDIO, "GENERATE", "audio", "suno_music",
                   {"prompt": "rain on a roof", "seconds": 30, "format": "mp3"}, []),
    "kling-text2video": ("kling", TaskKind.VIDEO, "text2video", "text2video", "kling-v1",
                         {"prompt": "an astronaut walking", "seconds": 5, "mode": "std", "aspect_ratio": "16:9",
                          "camera_control": {"type": "simple", "config": {"zoom": 5}}}, []),
    "kling-image2video": ("kling", TaskKind.VIDEO, "image2video", "image2video", "kling-v1",
                          {"prompt": "", "seconds": 10, "image": PNG, "image_tail": "https://img.example/end.png",
                           "metadata": {"cfg_scale": 0.5}}, []),
    "kling-image2video-file": ("kling", TaskKind.VIDEO, "image2video", "image2video", "kling-v1",
                               {"prompt": "move", "seconds": 5}, [IMAGE]),
    "jimeng-text2video": ("jimeng", TaskKind.VIDEO, "text2video", "text2video", "jimeng-v1",
                          {"prompt": "a cat surfing", "seconds": 5, "aspect_ratio": "16:9"}, []),
    "jimeng-req-key": ("jimeng", TaskKind.VIDEO, "image2video", "image2video", "jimeng_vgfm_i2v_l20",
                       {"prompt": "a cat surfing", "seconds": 10, "image": "https://img.example/cat.png",
                        "metadata": {"req_key": "jimeng_vgfm_i2v_l20"}}, []),
    "jimeng-image2video-file": ("jimeng", TaskKind.VIDEO, "image2video", "image2video", "jimeng-v1",
                                {"prompt": "a cat", "seconds": 5}, [IMAGE]),
    "openai-text2video": ("openai", TaskKind.VIDEO, "text2video", "text2video", "sora-2",
                          {"prompt": "a paper boat", "seconds": 4, "size": "1280x720"}, []),
    "openai-image2video": ("openai", TaskKind.VIDEO, "image2video", "image2video", "sora-2",
                           {"prompt": "a paper boat", "seconds": 8}, [IMAGE]),
    "openai-remix": ("openai", TaskKind.VIDEO, "remix", "remix", "sora-2",
                     {"prompt": "at night", "seconds": 4, "video_id": "video_68d7512d",
                      "remixed_from_video_id": "task_abc", "size": "1280x720"}, []),
}

# (upstream type, refs as the poller builds them: operation = action.lower())
FETCHES: dict[str, tuple[str, list[tuple[str, str, str, str, dict[str, Any]]]]] = {
    "midjourney": ("midjourney", [("1712345678901234", TaskKind.MIDJOURNEY, "IMAGINE", "mj_imagine", {"prompt": "x"}),
                                  ("1712345678905678", TaskKind.MIDJOURNEY, "UPSCALE", "mj_upscale", {})]),
    "suno": ("suno", [("suno-task-1", TaskKind.MUSIC, "MUSIC", "chirp-v3-5", {"prompt": "x"}),
                      ("suno-task-2", TaskKind.MUSIC, "LYRICS", "suno_lyrics", {})]),
    "kling": ("kling", [("kling-task-1", TaskKind.VIDEO, "text2video", "kling-v1", {"prompt": "x", "seconds": 5}),
                        ("kling-task-2", TaskKind.VIDEO, "image2video", "kling-v1", {"seconds": 10})]),
    "jimeng": ("jimeng", [("jimeng-task-1", TaskKind.VIDEO, "text2video", "jimeng-v1", {"prompt": "x"}),
                          ("jimeng-task-2", TaskKind.VIDEO, "image2video", "jimeng-v1",
                           {"metadata": {"req_key": "jimeng_vgfm_i2v_l20"}})]),
    "openai": ("openai", [("video_1", TaskKind.VIDEO, "text2video", "sora-2", {"prompt": "x"}),
                          ("video_2", TaskKind.VIDEO, "remix", "sora-2", {"video_id": "video_1"})]),
}


def _call(case: str) -> tuple[Any, TaskCall]:
    kind_of_upstream, kind, action, operation, model, body, files = SUBMITS[case]
    upstream = _upstream(kind_of_upstream)
    adapter = adapter_for(upstream, kind)
    assert adapter is not None, case
    call = TaskCall(upstream=upstream, key=KEYS[kind_of_upstream], kind=kind, action=action, operation=operation,
                    model=model, body=json.loads(json.dumps(body)), public_id="task_fuzz0001", files=list(files))
    return adapter, call


def _refs(case: str) -> tuple[Any, UpstreamInfo, list[TaskRef]]:
    kind_of_upstream, rows = FETCHES[case]
    upstream = _upstream(kind_of_upstream)
    refs = [TaskRef(upstream_task_id=tid, kind=kind, action=action, operation=action.lower(), model=model,
                    request=request, submitted_ts=1_700_000_000.0) for tid, kind, action, model, request in rows]
    adapter = adapter_for(upstream, refs[0].kind)
    assert adapter is not None, case
    return adapter, upstream, refs


def _client(status: int, content: bytes) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content, headers={"content-type": "application/json"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def _encode(answer: Any) -> bytes:
    """Python's json writes NaN/Infinity, which the adapters' json.loads reads back, as an upstream could send."""
    return answer if isinstance(answer, bytes) else json.dumps(answer).encode()


async def _submit(case: str, status: int, content: bytes) -> Any:
    adapter, call = _call(case)
    async with _client(status, content) as client:
        try:
            return await adapter.submit(client, call)
        except SubmitRefused as refusal:
            return refusal


async def _fetch(case: str, status: int, content: bytes) -> Any:
    adapter, upstream, refs = _refs(case)
    async with _client(status, content) as client:
        try:
            return await adapter.fetch(client, upstream, KEYS[upstream.type], refs)
        except httpx.HTTPError as exc:
            return exc


def check_submit(case: str, status: int, content: bytes) -> None:
    outcome = asyncio.run(_submit(case, status, content))
    assert isinstance(outcome, (Submitted, SubmitRefused)), outcome
    if isinstance(outcome, Submitted):
        assert isinstance(outcome.upstream_task_id, str) and isinstance(outcome.properties, dict)
        assert isinstance(outcome.code, int)
        if outcome.done is not None:
            check_snapshot(outcome.done)
        else:  # an accepted task is polled by this id: "" or "None" (a null id) would be polled forever
            assert outcome.upstream_task_id not in ("", "None"), outcome
            assert len(outcome.upstream_task_id) <= TASK_ID_MAX and "\x00" not in outcome.upstream_task_id
    else:
        assert isinstance(outcome.message, str) and isinstance(outcome.status, int)


def check_fetch(case: str, status: int, content: bytes) -> None:
    outcome = asyncio.run(_fetch(case, status, content))
    if isinstance(outcome, httpx.HTTPError):
        return
    assert isinstance(outcome, dict), outcome
    asked = {ref.upstream_task_id for ref in _refs(case)[2]}
    for task_id, snapshot in outcome.items():
        assert isinstance(task_id, str)
        # only tasks asked about matter to the poller; others are ignored, so not asserted here
        if task_id in asked:
            check_snapshot(snapshot)


def check_snapshot(snapshot: Snapshot) -> None:
    assert isinstance(snapshot, Snapshot), snapshot
    assert snapshot.status in STATUS_VALUES, snapshot.status
    assert isinstance(snapshot.progress, int) and 0 <= snapshot.progress <= 100, snapshot.progress
    assert isinstance(snapshot.result_url, str) and isinstance(snapshot.fail_reason, str)
    assert isinstance(snapshot.result, dict)
    assert snapshot.seconds is None or (isinstance(snapshot.seconds, Decimal) and snapshot.seconds.is_finite()
                                        and snapshot.seconds > 0)


# --- answer strategies ---------------------------------------------------------------------------------------------

READ_KEYS = ("code", "result", "description", "status", "progress", "imageUrl", "properties", "data", "task_id",
             "task_status", "task_status_msg", "task_result", "error", "message", "msg", "detail", "fail_reason",
             "failReason", "id", "videos", "url", "audio_url", "clips", "metadata", "duration", "seconds",
             "video_url", "size", "expires_at", "action", "customId", "buttons", "prompt", "request_id")
WORDS = ("success", "SUCCESS", "FAILURE", "FAILED", "IN_PROGRESS", "SUBMITTED", "NOT_START", "MODAL", "CANCEL",
         "QUEUED", "submitted", "processing", "succeed", "failed", "in_queue", "generating", "done", "not_found",
         "expired", "queued", "in_progress", "completed", "45%", "0.5", "100%", "%", "", " ", "inf", "-inf", "nan",
         "Infinity", "1e999", "5.0", "-3", "https://cdn.example/v.mp4", "task-1", "1712345678901234", "video_1",
         "kling-task-1", "suno-task-1", "jimeng-task-1")
NUMBERS = (0, 1, 2, 3, 4, 21, 22, 23, 24, -1, 100, 200, 404, 1100, 1102, 1301, 5000, 10000, 50000, 0.45, 1.5,
           True, False, 10 ** 400, -(10 ** 400), 1e300)

scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(NUMBERS), st.sampled_from(WORDS),
    st.integers(), st.integers(min_value=10 ** 300, max_value=10 ** 1000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
)
keys = st.one_of(st.sampled_from(READ_KEYS), st.text(max_size=4))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=6)), max_leaves=24)


def obj(required: dict[str, Any] | None = None, **optional: Any) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with these keys present (`required`) or maybe present, each an odd value unless a strategy is given;
    plus odd extra keys."""
    fixed = st.fixed_dictionaries({k: v for k, v in (required or {}).items()},
                                  optional={k: (values if v is None else st.one_of(v, values))
                                            for k, v in optional.items()})
    return st.builds(lambda a, b: {**b, **a}, fixed, st.dictionaries(keys, values, max_size=2))


ids = st.sampled_from(["1712345678901234", "1712345678905678", "suno-task-1", "suno-task-2", "kling-task-1",
                       "video_1", "video_2"])
codes = st.one_of(st.sampled_from(NUMBERS), values)
numberish = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(WORDS), values)
mj_task = obj({"id": st.one_of(ids, values)}, status=st.sampled_from(WORDS), progress=numberish, imageUrl=None,
              failReason=None, properties=None, buttons=None, action=None, description=None)
suno_clip = obj(audio_url=None, metadata=st.one_of(obj(duration=numberish), values), id=None)
suno_task = obj({"task_id": st.one_of(ids, values)}, status=st.sampled_from(WORDS), progress=numberish,
                data=st.lists(st.one_of(suno_clip, values), max_size=3), fail_reason=None)
kling_video = obj(url=None, duration=numberish, id=None)
kling_data = obj(task_id=None, task_status=st.sampled_from(WORDS), task_status_msg=None,
                 task_result=st.one_of(obj(videos=st.one_of(st.lists(st.one_of(kling_video, values), max_size=2),
                                                            values)), values))
jimeng_data = obj(task_id=None, status=st.sampled_from(WORDS), video_url=None)
openai_video = obj(id=st.one_of(ids, values), status=st.sampled_from(WORDS), progress=numberish, seconds=numberish,
                   size=None, error=st.one_of(obj(message=None, code=None), values), expires_at=None)

SHAPED: dict[str, st.SearchStrategy[Any]] = {
    "midjourney": st.one_of(obj({"code": codes}, result=None, description=None, properties=obj()),
                            st.lists(st.one_of(mj_task, values), max_size=3)),
    "suno": obj({"code": st.sampled_from(["success", "error", 0, None])},
                data=st.one_of(st.lists(st.one_of(suno_task, values), max_size=3), values), message=None),
    "kling": obj({"code": codes}, data=st.one_of(kling_data, values), message=None, request_id=None),
    "jimeng": obj({"code": codes}, data=st.one_of(jimeng_data, values), message=None, request_id=None),
    "openai": st.one_of(openai_video, obj(error=obj(message=None, code=None, type=None))),
}
ODD_BODIES = (b"", b"<html>502 Bad Gateway</html>", b"null", b"\xff\xfe\x00garbage", b'{"code": 1, "result": ',
              b"1e400", b"NaN", b"[" * 100_000)  # the last: nesting deeper than json.loads recurses



def answers(family: str) -> st.SearchStrategy[bytes]:
    return st.one_of(SHAPED[family].map(_encode), values.map(_encode), st.sampled_from(ODD_BODIES[:-1]))


# --- the properties ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(SUBMITS))
def test_submit_takes_any_answer(case):
    family = SUBMITS[case][0]

    @FUZZ
    @given(status=st.sampled_from(STATUSES), content=answers(family))
    def prop(status, content):
        check_submit(case, status, content)

    prop()


@pytest.mark.parametrize("case", sorted(FETCHES))
def test_fetch_takes_any_answer(case):
    @FUZZ
    @given(status=st.sampled_from(STATUSES), content=answers(FETCHES[case][0]))
    def prop(status, content):
        check_fetch(case, status, content)

    prop()


def test_every_task_adapter_is_covered():
    covered = {SUBMITS[c][0] for c in SUBMITS} | {FETCHES[c][0] for c in FETCHES}
    assert set(BY_TYPE) - {"demo"} <= covered and {"openai"} <= covered
    assert set(BY_FAMILY) <= {PROVIDERS[t].family for t in covered}


@pytest.mark.parametrize("case", ["mj-imagine", "mj-upload", "suno-music", "kling-text2video", "jimeng-text2video",
                                  "openai-text2video", "openai-remix"])
@pytest.mark.parametrize("content", ODD_BODIES, ids=lambda c: repr(c[:12]))
def test_submit_takes_non_json_answers(case, content):
    for status in (200, 400, 503):
        check_submit(case, status, content)


@pytest.mark.parametrize("case", sorted(FETCHES))
@pytest.mark.parametrize("content", ODD_BODIES, ids=lambda c: repr(c[:12]))
def test_fetch_takes_non_json_answers(case, content):
    for status in (200, 404, 503):
        check_fetch(case, status, content)


# Minimal answers that the fuzzing above found to break an adapter: fixed here so they fail every run, not by luck.
KNOWN_SUBMITS = [
    ("mj-imagine", 200, {"code": [1], "result": "1"}),  # `code in ACCEPTED`: unhashable code
    ("mj-imagine", 400, {"code": {}}),
    ("kling-text2video", 200, {"code": 0, "data": {}}),  # data["data"]["task_id"] missing
    ("jimeng-text2video", 200, {"code": 10000, "data": {}}),
    ("kling-text2video", 200, {"code": 0, "data": {"task_id": None}}),  # accepted as task "None"
    ("jimeng-text2video", 200, {"code": 10000, "data": {"task_id": None}}),
    ("mj-imagine", 200, {"code": 1, "result": {"a": 1}}),  # accepted as task "{'a': 1}"
    ("suno-music", 200, {"code": "success", "data": "x" * 200}),  # longer than the column that keeps it
    ("openai-text2video", 200, {"id": "video\u0000"}),  # a NUL PostgreSQL cannot keep
]
KNOWN_FETCHES = [
    ("midjourney", 200, b'[{"id": "1712345678901234", "progress": 1e400}]'),  # progress_of: int(inf)
    ("midjourney", 200, [{"id": "1712345678901234", "progress": "inf"}]),
    ("midjourney", 200, [{"id": "1712345678901234", "progress": 10 ** 400}]),  # float(huge int)
    ("midjourney", 200, [{"id": "1712345678901234", "progress": "nan"}]),  # int(nan): ValueError
    ("openai", 200, {"id": "video_1", "progress": "inf"}),  # escapes fetch_each (OverflowError)
    ("suno", 200, {"code": "success", "data": [{"task_id": "suno-task-1", "progress": "inf"}]}),
    ("suno", 200, {"code": "success", "data": [{"task_id": "suno-task-1", "data": [{"metadata": "x"}]}]}),
    ("kling", 200, {"code": 0, "data": "x"}),  # snapshot_of(non-dict data)
    ("jimeng", 200, []),  # snapshot_of(non-dict answer)
]


@pytest.mark.parametrize(("case", "status", "answer"), KNOWN_SUBMITS, ids=lambda v: str(v)[:40])
def test_known_submit_answers(case, status, answer):
    check_submit(case, status, _encode(answer))


@pytest.mark.parametrize(("case", "status", "answer"), KNOWN_FETCHES, ids=lambda v: str(v)[:40])
def test_known_fetch_answers(case, status, answer):
    check_fetch(case, status, _encode(answer))
