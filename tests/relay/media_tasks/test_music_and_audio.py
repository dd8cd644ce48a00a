"""Music and audio tasks: the Suno-API routes, `/v1/music/generations` and `/v1/audio/generations`."""

from __future__ import annotations

import httpx

from relay.media_tasks.models import MediaTask
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post


def _get(live, path: str, key: str) -> httpx.Response:
    return httpx.get(live.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10)


def test_suno_music_submit_fetch_and_settle(live, upstream, funded_key, tasks_env):
    upstream("suno")
    _user, key = funded_key()
    r = post(live, "/suno/submit/music", key, {"prompt": "[Verse] rain", "tags": "pop", "title": "Rain",
                                                "mv": "chirp-v3-5", "make_instrumental": False})
    assert r.status_code == 200 and r.json()["code"] == "success"
    task_id = r.json()["data"]
    sent = tasks_env.submits[-1]
    assert sent["body"] == {"prompt": "[Verse] rain", "tags": "pop", "title": "Rain", "mv": "chirp-v3-5",
                            "make_instrumental": False}
    assert tasks_env.requests[-1]["headers"]["authorization"] == "Bearer suno-key"
    poll(2)
    one = _get(live, f"/suno/fetch/{task_id}", key).json()
    assert one["code"] == "success" and one["data"]["status"] == "SUCCESS" and one["data"]["progress"] == "100%"
    assert one["data"]["data"][0]["audio_url"].endswith(".mp3")
    many = post(live, "/suno/fetch", key, {"ids": [task_id, "unknown"], "action": "MUSIC"}).json()
    assert [t["task_id"] for t in many["data"]] == [task_id]
    assert_settled_once(MediaTask.objects.get(public_id=task_id), charged=50_000)


def test_suno_lyrics_failure_is_refunded_and_errors_use_sunos_envelope(live, upstream, funded_key, tasks_env):
    upstream("suno")
    _user, key = funded_key()
    task_id = post(live, "/suno/submit/lyrics", key, {"prompt": "a song that will fail"}).json()["data"]
    poll(2)
    dto = _get(live, f"/suno/fetch/{task_id}", key).json()["data"]
    assert dto["status"] == "FAILURE" and dto["fail_reason"] == "generation failed"
    assert_settled_once(MediaTask.objects.get(public_id=task_id), refunded=True)

    r = post(live, "/suno/submit/music", key, {"tags": "pop"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request_error" and r.json()["data"] is None
    r = post(live, "/suno/submit/dance", key, {"prompt": "x"})
    assert r.status_code == 400 and "music" in r.json()["message"]
    r = _get(live, "/suno/fetch/task_nope", key)
    assert r.status_code == 404 and r.json()["code"] == "task_not_found"
    tasks_env.refuse["suno"] = {"code": "invalid_request", "message": "prompt_empty", "data": None}
    r = post(live, "/suno/submit/lyrics", key, {"prompt": "x"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_request" and "prompt_empty" in r.json()["message"]
    assert_settled_once(MediaTask.objects.order_by("-pk").first(), refunded=True)


def test_music_generations_over_suno(live, upstream, funded_key, tasks_env):
    upstream("suno")
    _user, key = funded_key()
    r = post(live, "/v1/music/generations", key, {"prompt": "upbeat summer song", "tags": "pop",
                                                   "make_instrumental": True})
    assert r.status_code == 200
    created = r.json()
    assert created["object"] == "music.generation" and created["status"] == "queued"
    assert created["model"] == "suno_music" and created["id"].startswith("task_")
    assert tasks_env.submits[-1]["body"]["gpt_description_prompt"] == "upbeat summer song"
    poll()
    assert _get(live, f"/v1/music/generations/{created['id']}", key).json()["status"] == "in_progress"
    poll()
    done = _get(live, f"/v1/music/generations/{created['id']}", key).json()
    assert done["status"] == "completed" and done["result_url"].endswith(".mp3") and done["error"] is None
    assert_settled_once(MediaTask.objects.get(public_id=created["id"]), charged=50_000)
    r = post(live, "/v1/music/generations", key, {"prompt": ""})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"


def test_audio_generation_on_the_demo_upstream(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=0)
    _user, key = funded_key()
    r = post(live, "/v1/audio/generations", key, {"model": "demo-audio", "prompt": "rain on a roof",
                                                   "duration": 20, "format": "wav"})
    assert r.status_code == 200 and r.json()["object"] == "audio.generation"
    task = MediaTask.objects.get(public_id=r.json()["id"])
    assert task.quota_reserved == 10_000  # $0.001 per second x 20 s
    poll()
    done = _get(live, f"/v1/audio/generations/{task.public_id}", key).json()
    assert done["status"] == "completed" and done["result_url"].startswith("https://demo.modelgate.invalid/")
    assert_settled_once(task, charged=10_000)
    r = post(live, "/v1/audio/generations", key, {"model": "demo-audio", "prompt": "x", "duration": 0})
    assert r.status_code == 400 and r.json()["error"]["param"] == "duration"
    r = _get(live, f"/v1/music/generations/{task.public_id}", key)  # an audio task is not a music task
    assert r.status_code == 404
