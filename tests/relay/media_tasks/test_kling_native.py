"""Kling's own API through the relay (`/kling/v1/videos/...`): Kling's request and task shapes, Kling's error codes,
billed like any video task."""

from __future__ import annotations

import httpx
from accounts.services import user_adjust_quota

from relay.media_tasks.models import MediaTask
from relay.media_tasks.render import notify_body
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post

TEXT2VIDEO = "/kling/v1/videos/text2video"
CAMERA = {"type": "simple", "config": {"horizontal": 0, "vertical": 0, "pan": 0, "tilt": 0, "roll": 0, "zoom": 5}}


def _get(live, path: str, key: str) -> httpx.Response:
    return httpx.get(live.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_a_kling_format_text2video_is_submitted_polled_and_charged(live, upstream, funded_key, tasks_env):
    upstream("kling")
    _user, key = funded_key()
    r = post(live, TEXT2VIDEO, key, {"model_name": "kling-v1", "prompt": "an astronaut walking", "duration": "5",
                                     "mode": "std", "aspect_ratio": "16:9", "camera_control": CAMERA,
                                     "external_task_id": "order-7"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 0 and body["message"] == "SUCCEED" and body["request_id"]
    data = body["data"]
    assert data["task_status"] == "submitted" and data["task_info"] == {"external_task_id": "order-7"}
    assert isinstance(data["created_at"], int) and data["created_at"] > 1_700_000_000_000  # milliseconds
    sent = tasks_env.submits[-1]["body"]
    assert sent["model_name"] == "kling-v1" and sent["duration"] == "5" and sent["camera_control"] == CAMERA
    assert sent["external_task_id"] == data["task_id"]  # the upstream sees our id; the caller's is kept for it
    task = MediaTask.objects.get(public_id=data["task_id"])
    assert task.quota_reserved == 70_000  # $0.028 per second x 5 s

    poll(1)
    running = _get(live, f"{TEXT2VIDEO}/{data['task_id']}", key).json()["data"]
    assert running["task_status"] == "processing" and running["task_result"] == {"videos": []}
    poll(1)
    done = _get(live, f"/kling/v1/videos/image2video/{data['task_id']}", key).json()
    assert done["code"] == 0
    video = done["data"]["task_result"]["videos"][0]
    assert done["data"]["task_status"] == "succeed" and video["url"].startswith("https://kling.example/")
    assert video["duration"] == "5.0" and done["data"]["updated_at"] >= done["data"]["created_at"]
    assert_settled_once(task, charged=70_000)
    task.refresh_from_db()
    assert notify_body(task) == done["data"]  # a callback_url receives the task as the query shows it


def test_image2video_in_kling_format_needs_an_image_and_passes_the_tail(live, upstream, funded_key, tasks_env):
    upstream("kling")
    _user, key = funded_key()
    r = post(live, "/kling/v1/videos/image2video", key, {"model_name": "kling-v1", "prompt": ""})
    assert r.status_code == 400 and r.json()["code"] == 1201 and "'image'" in r.json()["message"]
    r = post(live, "/kling/v1/videos/image2video", key, {"model_name": "kling-v1", "image": "data:image/png;base64,QUJD",
                                                         "image_tail": "https://img.example/end.png", "duration": 10})
    assert r.json()["code"] == 0
    sent = tasks_env.requests[-1]
    assert sent["path"] == "/v1/videos/image2video"
    assert tasks_env.submits[-1]["body"]["image"] == "QUJD" and tasks_env.submits[-1]["body"]["duration"] == "10"
    assert tasks_env.submits[-1]["body"]["image_tail"] == "https://img.example/end.png"


def test_kling_format_errors_carry_klings_codes_and_move_no_money(live, upstream, funded_key, tasks_env, settings):
    upstream("kling")
    user, key = funded_key()
    before = user.quota
    r = post(live, TEXT2VIDEO, "sk-wrong", {"prompt": "x"})
    assert r.status_code == 401 and r.json()["code"] == 1000 and r.json()["data"] is None
    r = post(live, TEXT2VIDEO, key, {"prompt": "x", "duration": "99"})
    assert r.status_code == 400 and r.json()["code"] == 1201 and "duration" in r.json()["message"]
    assert _get(live, TEXT2VIDEO, key).status_code == 405
    assert _get(live, TEXT2VIDEO, key).json()["code"] == 1202
    r = _get(live, f"{TEXT2VIDEO}/task_nope", key)
    assert r.status_code == 404 and r.json()["code"] == 1203
    tasks_env.refuse["kling"] = {"code": 1301, "message": "content security"}
    r = post(live, TEXT2VIDEO, key, {"prompt": "x"})
    assert r.status_code == 400 and r.json()["code"] == 1301 and r.json()["message"] == "content security"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert_settled_once(MediaTask.objects.get(), refunded=True)
    tasks_env.refuse["kling"] = {"code": 1102, "message": "resource pack exhausted"}  # the operator's account
    r = post(live, TEXT2VIDEO, key, {"prompt": "x"})
    assert r.status_code == 502 and r.json()["code"] == 5000 and "resource pack" in r.json()["message"]
    assert_settled_once(MediaTask.objects.latest("pk"), refunded=True)
    r = post(live, TEXT2VIDEO, key, {"prompt": "x", "mode": "turbo"})
    assert r.status_code == 400 and "mode" in r.json()["message"]
    r = post(live, "/kling/v1/videos/nope", key, {"prompt": "x"})
    assert r.status_code == 404 and r.json()["code"] == 1201
    settings.RELAY_MAX_BODY_BYTES = 1024
    huge = httpx.post(live.url + TEXT2VIDEO, content=b"x" * 2048, headers={"authorization": f"Bearer {key}"})
    assert huge.status_code == 413 and huge.json()["request_id"] == huge.headers["x-request-id"]
    tasks_env.refuse.clear()
    failing = post(live, TEXT2VIDEO, key, {"prompt": "this will fail", "mode": " PRO "}).json()["data"]["task_id"]
    assert tasks_env.submits[-1]["body"]["mode"] == "pro"
    poll(2)
    data = _get(live, f"{TEXT2VIDEO}/{failing}", key).json()["data"]
    assert data["task_status"] == "failed" and data["task_status_msg"] == "content risk"
    _other, other_key = funded_key("mallory")
    assert _get(live, f"{TEXT2VIDEO}/{failing}", other_key).json()["code"] == 1203
    user.refresh_from_db()
    assert user.quota == before
    user_adjust_quota(user=user, amount=-user.quota)
    r = post(live, TEXT2VIDEO, key, {"prompt": "x"})
    assert r.status_code == 403 and r.json()["code"] == 1102
