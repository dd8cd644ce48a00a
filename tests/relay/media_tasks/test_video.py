"""Video tasks: Kling (JWT), Jimeng (Volcengine signature), OpenAI's videos API through the official SDK, and the
new-api style `/v1/video/generations` envelope."""

from __future__ import annotations

import httpx
import openai
import pytest

from relay.media_tasks.models import MediaTask
from tests.fakes.task_upstreams import VIDEO_BYTES
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post


def _get(live, path: str, key: str) -> httpx.Response:
    return httpx.get(live.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_kling_video_is_charged_for_the_seconds_delivered(live, upstream, funded_key, tasks_env):
    upstream("kling")
    _user, key = funded_key()
    tasks_env.kling_seconds = "5.0"  # asked for 10, got 5
    r = post(live, "/v1/video/generations", key, {"model": "kling-v1", "prompt": "an astronaut walking",
                                                   "duration": 10, "mode": "pro", "aspect_ratio": "16:9",
                                                   "metadata": {"cfg_scale": 0.5}})
    assert r.status_code == 200
    created = r.json()
    assert created["object"] == "video" and created["status"] == "queued" and created["seconds"] == "10"
    sent = tasks_env.submits[-1]["body"]
    assert sent["model_name"] == "kling-v1" and sent["duration"] == "10" and sent["mode"] == "pro"
    assert sent["cfg_scale"] == 0.5 and sent["external_task_id"] == created["id"]
    task = MediaTask.objects.get(public_id=created["id"])
    assert task.quota_reserved == 245_000  # $0.049 per second in pro mode x 10 s
    poll(2)
    envelope = _get(live, f"/v1/video/generations/{created['id']}", key).json()
    assert envelope["code"] == "success"
    data = envelope["data"]
    assert data["status"] == "SUCCESS" and data["result_url"].startswith("https://kling.example/")
    assert data["progress"] == "100%" and data["fail_reason"] == ""
    assert_settled_once(task, charged=122_500)  # the 5 seconds delivered
    r = _get(live, f"/v1/videos/{created['id']}/content", key)
    assert r.status_code == 302 and r.headers["location"] == data["result_url"]


def test_kling_refusal_and_failure_are_refunded(live, upstream, funded_key, tasks_env):
    upstream("kling")
    user, key = funded_key()
    before = user.quota
    failing = post(live, "/v1/video/generations", key, {"model": "kling-v1", "prompt": "this will fail"}).json()
    poll(2)
    data = _get(live, f"/v1/video/generations/{failing['id']}", key).json()["data"]
    assert data["status"] == "FAILURE" and data["fail_reason"] == "content risk"
    assert_settled_once(MediaTask.objects.get(public_id=failing["id"]), refunded=True)
    tasks_env.refuse["kling"] = {"code": 1201, "message": "prompt is too long"}
    r = post(live, "/v1/video/generations", key, {"model": "kling-v1", "prompt": "x"})
    assert r.status_code == 400 and "prompt is too long" in r.json()["error"]["message"]
    assert_settled_once(MediaTask.objects.order_by("-pk").first(), refunded=True)
    user.refresh_from_db()
    assert user.quota == before


def test_jimeng_requests_are_signed_and_settled(live, upstream, funded_key, tasks_env):
    upstream("jimeng")
    _user, key = funded_key()
    r = post(live, "/v1/video/generations", key, {"model": "jimeng-v1", "prompt": "a koi pond",
                                                   "image_url": "https://img.example/koi.png", "duration": 10})
    assert r.status_code == 200, r.text  # the fake checks the Volcengine signature
    sent = tasks_env.submits[-1]["body"]
    assert sent["req_key"] == "jimeng_vgfm_i2v_l20" and sent["frames"] == 241
    assert sent["image_urls"] == ["https://img.example/koi.png"]
    poll(2)
    data = _get(live, f"/v1/video/generations/{r.json()['id']}", key).json()["data"]
    assert data["status"] == "SUCCESS" and data["result_url"].endswith(".mp4")
    assert_settled_once(MediaTask.objects.get(public_id=r.json()["id"]), charged=150_000)  # $0.03 x 10 s


def test_openai_sdk_creates_polls_and_downloads_a_video(live, upstream, funded_key, tasks_env):
    upstream("openai")
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    video = client.videos.create(model="sora-2", prompt="a paper boat", seconds="8", size="720x1280")
    assert video.status == "queued" and video.id.startswith("task_")
    sent = tasks_env.submits[-1]["body"]
    assert sent == {"prompt": "a paper boat", "model": "sora-2", "seconds": "8", "size": "720x1280"}
    poll()
    assert client.videos.retrieve(video.id).status == "in_progress"
    poll()
    done = client.videos.retrieve(video.id)
    assert done.status == "completed" and done.progress == 100
    assert client.videos.download_content(video.id).content == VIDEO_BYTES
    assert [v.id for v in client.videos.list()] == [video.id]
    assert_settled_once(MediaTask.objects.get(public_id=video.id), charged=400_000)  # $0.1 x 8 s
    failed = client.videos.create(model="sora-2", prompt="fail please", seconds="4")
    poll(2)
    gone = client.videos.retrieve(failed.id)
    assert gone.status == "failed" and gone.error.message == "blocked"
    assert_settled_once(MediaTask.objects.get(public_id=failed.id), refunded=True)


def test_video_errors_and_permissions(live, upstream, funded_key, tasks_env):
    upstream("demo", task_failure="task", task_seconds=0)
    _user, key = funded_key(model_limits=["demo-video"])
    r = post(live, "/v1/video/generations", key, {"model": "kling-v1", "prompt": "x"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    r = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "x", "duration": 99})
    assert r.status_code == 400 and r.json()["error"]["param"] == "duration"
    r = post(live, "/v1/video/generations", key, {"model": "demo-video"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    created = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "x"}).json()
    poll()
    assert _get(live, f"/v1/videos/{created['id']}", key).json()["status"] == "failed"
    assert_settled_once(MediaTask.objects.get(public_id=created["id"]), refunded=True)
    r = _get(live, f"/v1/videos/{created['id']}/content", key)
    assert r.status_code == 409
    r = httpx.delete(live.url + "/v1/videos", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 405


def test_a_finished_video_is_remixed_at_its_upstream_and_priced_like_it(live, upstream, funded_key, tasks_env):
    upstream("openai")
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
    video = client.videos.create(model="sora-2", prompt="a paper boat", seconds="8", size="1280x720")
    poll(2)
    upstream_id = tasks_env.submits[-1]["id"]
    remix = client.videos.remix(video.id, prompt="a paper boat at night")
    assert remix.id != video.id and remix.remixed_from_video_id == video.id and remix.seconds == "8"
    sent = tasks_env.submits[-1]
    assert sent["remixed_from"] == upstream_id and sent["prompt"] == "a paper boat at night"
    task = MediaTask.objects.get(public_id=remix.id)
    assert task.quota_reserved == 400_000 and task.parent.public_id == video.id  # $0.1 x 8 s, like the original
    poll(2)
    assert client.videos.retrieve(remix.id).status == "completed"
    assert_settled_once(task, charged=400_000)
    with pytest.raises(openai.NotFoundError):
        client.videos.remix("task_nope", prompt="x")
    with pytest.raises(openai.BadRequestError, match="'prompt' is required"):
        client.post(f"/videos/{video.id}/remix", body={}, cast_to=object)


def test_a_video_from_an_upstream_that_cannot_remix_is_refused_unbilled(live, upstream, funded_key, tasks_env):
    upstream("kling")
    user, key = funded_key()
    created = post(live, "/v1/video/generations", key, {"model": "kling-v1", "prompt": "waves"}).json()
    poll(2)
    r = post(live, f"/v1/videos/{created['id']}/remix", key, {"prompt": "bigger waves"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "The upstream that made this video cannot remix it."
    assert MediaTask.objects.count() == 1
