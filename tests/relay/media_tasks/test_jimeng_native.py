"""Jimeng's own request format at `/jimeng/`: Volcengine's bodies and envelope with the relay key, priced by req_key."""

from __future__ import annotations

from decimal import Decimal

from billing.models import ModelPrice
from relay.media_tasks.models import MediaTask
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post

SUBMIT = "/jimeng/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31"
RESULT = "/jimeng/?Action=CVSync2AsyncGetResult&Version=2022-08-31"
REQ_KEY = "jimeng_t2v_v30"


def _native(upstream):
    jimeng = upstream("jimeng")
    jimeng.served_models = [*jimeng.served_models, REQ_KEY]
    jimeng.save()
    ModelPrice.objects.create(model=REQ_KEY, price_per_call=Decimal("0.02"))  # per second


def test_submit_and_result_in_volcengines_shape_charged_per_second(live, upstream, funded_key, tasks_env):
    _native(upstream)
    _user, key = funded_key()
    r = post(live, SUBMIT, key, {"req_key": REQ_KEY, "prompt": "a koi pond", "frames": 241, "seed": 7,
                                 "aspect_ratio": "16:9"})
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["code"] == 10000 and reply["message"] == "Success" and reply["data"]["task_id"].startswith("task_")
    sent = tasks_env.submits[-1]["body"]  # the fake checked the Volcengine signature the relay made
    assert (sent["req_key"], sent["frames"], sent["seed"], sent["aspect_ratio"]) == (REQ_KEY, 241, 7, "16:9")
    task_id = reply["data"]["task_id"]
    ask = {"req_key": REQ_KEY, "task_id": task_id}
    assert post(live, RESULT, key, ask).json()["data"]["status"] == "in_queue"
    poll(2)
    done = post(live, RESULT, key, ask).json()
    assert done["code"] == 10000 and done["data"]["status"] == "done" and done["data"]["video_url"].endswith(".mp4")
    assert_settled_once(MediaTask.objects.get(public_id=task_id), charged=100_000)  # $0.02 x 10 s


def test_failures_and_bad_requests_keep_the_envelope(live, upstream, funded_key, tasks_env):
    _native(upstream)
    _user, key = funded_key()
    _other, other_key = funded_key("other")
    r = post(live, SUBMIT, key, {"req_key": REQ_KEY, "prompt": "a fail on purpose"})
    task_id = r.json()["data"]["task_id"]
    poll(2)
    failed = post(live, RESULT, key, {"req_key": REQ_KEY, "task_id": task_id}).json()
    assert failed["code"] == 50500 and failed["data"]["status"] == "not_found"
    assert_settled_once(MediaTask.objects.get(public_id=task_id), refunded=True)
    for who, body in ((other_key, {"req_key": REQ_KEY, "task_id": task_id}),
                      (key, {"req_key": "jimeng_other", "task_id": task_id})):
        r = post(live, RESULT, who, body)
        assert r.status_code == 404 and r.json()["code"] == 50400 and r.json()["data"] is None
    r = post(live, "/jimeng/?Action=Nope", key, {})
    assert r.status_code == 400 and r.json()["code"] == 50400 and "CVSync2AsyncSubmitTask" in r.json()["message"]
    r = post(live, SUBMIT, key, {"req_key": REQ_KEY, "prompt": "x", "frames": 99})
    assert r.status_code == 400 and "frames" in r.json()["message"]
    r = post(live, SUBMIT, "sk-wrong", {"req_key": REQ_KEY, "prompt": "x"})
    assert r.status_code == 401 and r.json()["code"] == 50400


def test_the_upstreams_refusal_code_is_passed_on_and_refunded(live, upstream, funded_key, tasks_env):
    _native(upstream)
    tasks_env.refuse["jimeng"] = {"code": 50412, "message": "Text Risk Not Pass"}
    _user, key = funded_key()
    r = post(live, SUBMIT, key, {"req_key": REQ_KEY, "prompt": "something risky"})
    assert r.json()["code"] == 50412 and "Text Risk Not Pass" in r.json()["message"]
    assert_settled_once(MediaTask.objects.get(), refunded=True)
