"""Midjourney images: uploads for later prompts (billed per call, answered at once) and task images served from
this site (`/mj/image/{id}`) for clients that cannot reach the upstream's CDN."""

from __future__ import annotations

from decimal import Decimal

import httpx

from billing.models import ModelPrice, UsageLog
from relay.models import Upstream
from relay.media_tasks.models import MediaTask, TaskStatus
from tests.fakes.task_upstreams import PNG_BYTES
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post

UPLOAD_PRICE = 10_000  # $0.02
IMAGE = "data:image/png;base64,iVBORw0KGgo="


def test_uploads_answer_the_images_urls_and_are_charged_once(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    r = post(live, "/mj/submit/upload-discord-images", key, {"base64Array": [IMAGE, IMAGE]})
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["code"] == 1 and len(data["result"]) == 2 and data["result"][0].startswith(f"{tasks_env.url}/")
    assert tasks_env.requests[-1]["path"] == "/mj/submit/upload-discord-images"
    task = MediaTask.objects.get(action="UPLOAD")
    assert task.status == TaskStatus.SUCCESS and task.poll_after is None
    assert_settled_once(task, charged=UPLOAD_PRICE)
    log = UsageLog.objects.get(request_id=task.public_id)
    assert log.model == "mj_upload" and log.quota == UPLOAD_PRICE and log.status == "success"


def test_a_refused_upload_is_refunded_and_bad_input_is_refused_free(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    r = post(live, "/mj/submit/upload-discord-images", key, {"base64Array": ["not an image"]})
    assert r.status_code == 200 and r.json()["code"] == 4 and r.json()["result"] is None
    assert_settled_once(MediaTask.objects.get(action="UPLOAD"), refunded=True)
    r = post(live, "/mj/submit/upload-discord-images", key, {"base64Array": []})
    assert r.status_code == 400 and r.json()["code"] == 4 and "base64Array" in r.json()["description"]
    assert MediaTask.objects.count() == 1


def test_task_images_are_served_to_the_owner_and_at_signed_addresses(live, upstream, funded_key, tasks_env,
                                                                    settings):
    upstream("midjourney")
    _user, key = funded_key()
    _other, other_key = funded_key("other")
    public_id = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    poll(2)
    auth = {"authorization": f"Bearer {key}"}
    image = httpx.get(f"{live.url}/mj/image/{public_id}", headers=auth)
    assert image.status_code == 200 and image.content.startswith(PNG_BYTES)
    assert image.headers["content-type"] == "image/png"
    assert httpx.get(f"{live.url}/mj/image/{public_id}", headers={"mj-api-secret": other_key}).status_code == 404
    assert httpx.get(f"{live.url}/mj/image/{public_id}").status_code == 401
    assert httpx.get(f"{live.url}/mj/image/{public_id}?sig=forged").status_code == 401

    fetched = httpx.get(f"{live.url}/mj/task/{public_id}/fetch", headers=auth).json()
    assert fetched["imageUrl"].startswith(tasks_env.url)  # the upstream's address unless MJ_IMAGE_PROXY is on
    settings.MJ_IMAGE_PROXY = True
    fetched = httpx.get(f"{live.url}/mj/task/{public_id}/fetch", headers=auth).json()
    assert fetched["imageUrl"].startswith(f"{live.url}/mj/image/{public_id}?sig=")
    anonymous = httpx.get(fetched["imageUrl"])  # as an <img> asks: no key
    assert anonymous.status_code == 200 and anonymous.content == image.content


def test_unfinished_tasks_have_no_image(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    public_id = post(live, "/mj/submit/imagine", key, {"prompt": "a dog"}).json()["result"]
    r = httpx.get(f"{live.url}/mj/image/{public_id}", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 404 and r.json()["code"] == 3
    poll(2)


def test_the_demo_upstream_answers_uploads(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=0)
    ModelPrice.objects.filter(model="mj_upload").delete()
    ModelPrice.objects.create(model="mj_upload", price_per_call=Decimal("0.02"))
    demo = Upstream.objects.get(type="demo")
    demo.served_models = [*demo.served_models, "mj_upload"]
    demo.save()
    _user, key = funded_key()
    r = post(live, "/mj/submit/upload-discord-images", key, {"base64Array": [IMAGE]})
    assert r.status_code == 200 and r.json()["code"] == 1 and r.json()["result"][0].endswith(".png")
    assert_settled_once(MediaTask.objects.get(action="UPLOAD"), charged=UPLOAD_PRICE)
