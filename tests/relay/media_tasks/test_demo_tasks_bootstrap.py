"""`make run`'s bootstrap serves the demo task models from the built-in demo upstream."""

from __future__ import annotations

import httpx

from tests.support import settled


def test_a_demo_video_task_submits_on_a_fresh_install(live, bootstrap_demo, funded_key):
    from relay.media_tasks.models import MediaTask

    _user, key = funded_key()
    r = httpx.post(live.url + "/v1/video/generations", json={"model": "demo-video", "prompt": "a fox"},
                   headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert settled(lambda: MediaTask.objects.filter(model="demo-video").exists())
