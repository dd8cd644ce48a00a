"""Midjourney through the relay: submit, poll, settle once; protocol codes and shapes; only one's own tasks."""

from __future__ import annotations

import concurrent.futures

import httpx
from accounts.services import user_adjust_quota

from accounts.models import User
from billing.models import UsageLog
from relay.media_tasks.models import MediaTask, TaskStatus
from tests.relay.media_tasks.conftest import assert_settled_once, poll
from tests.support import post

IMAGINE_PRICE = 50_000  # $0.1


def test_imagine_is_polled_to_success_and_charged_once(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    r = post(live, "/mj/submit/imagine", key, {"prompt": "a pig --v 6.1", "state": "mine", "botType": "MID_JOURNEY"})
    assert r.status_code == 200
    data = r.json()
    assert data["code"] == 1 and data["result"].isdigit()  # the proxy's 22 (queued) is passed on as 1
    sent = tasks_env.requests[-1]
    assert sent["path"] == "/mj/submit/imagine" and sent["headers"]["mj-api-secret"] == "mj-secret"
    task = MediaTask.objects.get(public_id=data["result"])
    assert task.status == TaskStatus.SUBMITTED and task.quota_reserved == IMAGINE_PRICE

    poll()
    fetched = httpx.get(f"{live.url}/mj/task/{task.public_id}/fetch", headers={"authorization": f"Bearer {key}"}).json()
    assert fetched["status"] == "IN_PROGRESS" and fetched["progress"] == "45%"
    poll()
    fetched = httpx.get(f"{live.url}/mj/task/{task.public_id}/fetch", headers={"mj-api-secret": key}).json()
    assert fetched["status"] == "SUCCESS" and fetched["progress"] == "100%"
    assert fetched["imageUrl"].endswith(".png") and fetched["state"] == "mine"
    assert fetched["buttons"][0]["customId"].startswith("MJ::JOB::upsample")
    assert fetched["submitTime"] <= fetched["startTime"] <= fetched["finishTime"]
    assert_settled_once(task, charged=IMAGINE_PRICE)
    poll(2)  # later rounds leave a settled task alone
    assert_settled_once(task, charged=IMAGINE_PRICE)
    log = UsageLog.objects.get(request_id=task.public_id)
    assert log.quota == IMAGINE_PRICE and log.model == "mj_imagine" and log.provider == "midjourney"
    assert log.status == "success" and log.endpoint == "/mj/submit/imagine" and log.prompt_tokens == 0


def test_failed_task_is_refunded_once(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    user, key = funded_key()
    before = user.quota
    task_id = post(live, "/mj/submit/imagine", key, {"prompt": "please fail"}).json()["result"]
    poll(3)
    fetched = httpx.get(f"{live.url}/mj/task/{task_id}/fetch", headers={"authorization": f"Bearer {key}"}).json()
    assert fetched["status"] == "FAILURE" and fetched["failReason"] == "banned"
    assert_settled_once(MediaTask.objects.get(public_id=task_id), refunded=True)
    log = UsageLog.objects.get(request_id=task_id)
    assert log.status == "error" and log.quota == 0 and log.error == "banned"
    user.refresh_from_db()
    assert user.quota == before


def test_change_works_on_the_callers_own_task_at_its_upstream(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    parent = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    poll(2)
    r = post(live, "/mj/submit/change", key, {"taskId": parent, "action": "UPSCALE", "index": 1})
    assert r.json()["code"] == 1
    child = MediaTask.objects.get(public_id=r.json()["result"])
    upstream_parent = MediaTask.objects.get(public_id=parent).upstream_task_id
    assert tasks_env.submits[-1]["body"]["taskId"] == upstream_parent  # our id became the proxy's
    assert child.model == "mj_upscale" and child.quota_reserved == 25_000
    r = post(live, "/mj/submit/action", key, {"taskId": parent, "customId": "MJ::JOB::variation::2::abc"})
    assert MediaTask.objects.get(public_id=r.json()["result"]).action == "VARIATION"
    poll(2)

    _other, other_key = funded_key("mallory")
    r = post(live, "/mj/submit/change", other_key, {"taskId": parent, "action": "UPSCALE", "index": 1})
    assert r.status_code == 404 and r.json()["code"] == 3  # someone else's task is unknown


def test_list_by_condition_returns_only_the_callers_tasks(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _alice, alice_key = funded_key("alice2")
    _bob, bob_key = funded_key("bob2")
    mine = [post(live, "/mj/submit/imagine", alice_key, {"prompt": f"a {n}"}).json()["result"] for n in "ab"]
    theirs = post(live, "/mj/submit/imagine", bob_key, {"prompt": "a c"}).json()["result"]
    listed = post(live, "/mj/task/list-by-condition", alice_key, {"ids": [*mine, theirs, "nope"]}).json()
    assert [t["id"] for t in listed] == mine
    r = httpx.get(f"{live.url}/mj/task/{theirs}/fetch", headers={"authorization": f"Bearer {alice_key}"})
    assert r.status_code == 404 and r.json()["code"] == 3
    poll(2)


def test_errors_come_in_midjourneys_shape(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    user, key = funded_key(balance=0)
    r = post(live, "/mj/submit/imagine", key, {"prompt": ""})
    assert r.status_code == 400 and r.json()["code"] == 4 and "prompt" in r.json()["description"]
    r = post(live, "/mj/submit/imagine", "sk-wrong", {"prompt": "x"})
    assert r.status_code == 401 and r.json()["code"] == 4
    r = post(live, "/mj-fast/mj/submit/imagine", key, {"prompt": "x", "notifyHook": "http://10.0.0.7/hook"})
    assert r.status_code == 400 and "private" in r.json()["description"]
    user_adjust_quota(user=user, amount=-user.quota)  # nothing left to reserve
    r = post(live, "/mj/submit/imagine", key, {"prompt": "x"})
    assert r.status_code == 403 and r.json()["code"] == 4 and "balance" in r.json()["description"]
    assert not MediaTask.objects.exists()
    r = httpx.get(f"{live.url}/mj/submit/imagine", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 405 and r.json()["code"] == 4


def test_upstream_refusal_is_passed_on_and_refunded_at_once(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    user, key = funded_key()
    before = user.quota
    tasks_env.refuse["midjourney"] = {"code": 24, "description": "banned prompt", "properties": {"bannedWord": "x"}}
    r = post(live, "/mj/submit/imagine", key, {"prompt": "something banned"})
    assert r.status_code == 200 and r.json() == {"code": 24, "description": "banned prompt", "result": None,
                                                 "properties": {"bannedWord": "x"}}
    task = MediaTask.objects.get()
    assert task.status == TaskStatus.FAILURE
    assert_settled_once(task, refunded=True)
    user.refresh_from_db()
    assert user.quota == before


def test_submits_count_against_the_keys_concurrency_limit(live, upstream, funded_key, tasks_env):
    """While one submit is with the upstream, a second on a one-slot key is refused (nothing reserved); the slot is
    given back once the submit is answered, not held for the task's run."""
    upstream("midjourney")
    user, key = funded_key(concurrency_limit=1)
    before = user.quota
    tasks_env.submit_delay = 0.5
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        answers = list(pool.map(lambda _: post(live, "/mj/submit/imagine", key, {"prompt": "a pig"}), range(3)))
    accepted = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert len(accepted) == 1 and len(refused) == 2 and accepted[0].json()["code"] == 1
    assert refused[0].json()["code"] == 4 and "at most 1" in refused[0].json()["description"]
    assert refused[0].headers["retry-after"] == "1"
    assert MediaTask.objects.count() == 1
    user.refresh_from_db()
    assert user.quota == before - IMAGINE_PRICE  # one reservation; the refused submits reserved nothing
    tasks_env.submit_delay = 0
    assert post(live, "/mj/submit/imagine", key, {"prompt": "a cow"}).json()["code"] == 1  # the slot was given back


def test_simple_change_is_sent_as_the_change_it_names(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key()
    parent = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    upstream_parent = MediaTask.objects.get(public_id=parent).upstream_task_id
    for content, action, index, model in ((f"{parent} U2", "UPSCALE", 2, "mj_upscale"),
                                          (f"{parent}  v4", "VARIATION", 4, "mj_variation"),
                                          (f"{parent} R", "REROLL", None, "mj_reroll")):
        r = post(live, "/mj/submit/simple-change", key, {"content": content, "state": "s1"})
        assert r.status_code == 200 and r.json()["code"] == 1, r.text
        sent = tasks_env.submits[-1]
        assert sent["path"] == "/mj/submit/change"
        assert sent["body"] == {"taskId": upstream_parent, "action": action, "state": "s1"} | (
            {"index": index} if index else {})
        child = MediaTask.objects.get(public_id=r.json()["result"])
        assert (child.action, child.model, child.quota_reserved) == (action, model, 25_000 if index == 2 else 50_000)
    for bad in ("", f"{parent}", f"{parent} U5", f"{parent} X1", "U1"):
        r = post(live, "/mj/submit/simple-change", key, {"content": bad})
        assert r.status_code == 400 and r.json()["code"] == 4 and "content" in r.json()["description"], bad
    r = post(live, "/mj/submit/simple-change", key, {"content": "1730621826053455 U1"})
    assert r.status_code == 404 and r.json()["code"] == 3  # not the caller's task
    assert MediaTask.objects.count() == 4


def test_shorten_and_face_swap_are_priced_tasks(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    user, key = funded_key()
    before = user.quota
    r = post(live, "/mj/submit/shorten", key, {"prompt": "a very long prompt about a cat", "botType": "MID_JOURNEY"})
    assert r.json()["code"] == 1 and tasks_env.submits[-1]["path"] == "/mj/submit/shorten"
    shorten = MediaTask.objects.get(public_id=r.json()["result"])
    assert (shorten.action, shorten.model, shorten.quota_reserved) == ("SHORTEN", "mj_shorten", 5_000)
    images = {"sourceBase64": "data:image/png;base64,AAAA", "targetBase64": "data:image/png;base64,BBBB"}
    r = post(live, "/mj/insight-face/swap", key, images)
    assert r.json()["code"] == 1 and tasks_env.submits[-1]["path"] == "/mj/insight-face/swap"
    swap = MediaTask.objects.get(public_id=r.json()["result"])
    assert (swap.action, swap.model, swap.quota_reserved) == ("SWAP_FACE", "swap_face", 10_000)
    r = post(live, "/mj/insight-face/swap", key, {"sourceBase64": "data:image/png;base64,AAAA"})
    assert r.status_code == 400 and "targetBase64" in r.json()["description"]
    assert post(live, "/mj/submit/shorten", key, {"prompt": " "}).status_code == 400
    assert post(live, "/mj/submit/swap_face", key, images).status_code == 404  # only under /mj/insight-face/
    poll(2)
    assert_settled_once(shorten, charged=5_000)
    assert_settled_once(swap, charged=10_000)
    user.refresh_from_db()
    assert user.quota == before - 15_000


def test_image_seed_is_asked_of_the_upstream_that_made_the_image(live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    user, key = funded_key()
    task_id = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    poll(2)
    quota = User.objects.get(pk=user.pk).quota
    upstream_id = MediaTask.objects.get(public_id=task_id).upstream_task_id
    r = httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"mj-api-secret": key})
    assert r.status_code == 200 and r.json() == {"code": 1, "description": "成功", "result": f"seed-of-{upstream_id}"}
    sent = tasks_env.requests[-1]
    assert sent["path"] == f"/mj/task/{upstream_id}/image-seed" and sent["headers"]["mj-api-secret"] == "mj-secret"
    assert User.objects.get(pk=user.pk).quota == quota  # not billed
    _other, other_key = funded_key("mallory")
    r = httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"authorization": f"Bearer {other_key}"})
    assert r.status_code == 404 and r.json()["code"] == 3
    tasks_env.tasks.clear()  # the proxy forgot it: its answer is passed on
    r = httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"authorization": f"Bearer {key}"})
    assert r.status_code == 200 and r.json()["code"] == 3


def test_the_demo_upstream_answers_image_seeds(live, upstream, funded_key, tasks_env):
    upstream("demo")
    _user, key = funded_key()
    task_id = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    seeds = [httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"mj-api-secret": key}).json()
             for _ in range(2)]
    assert seeds[0] == seeds[1] and seeds[0]["code"] == 1 and seeds[0]["result"].isdigit()


def test_image_seeds_count_against_the_keys_rate_limit_and_odd_upstream_ids_stay_in_the_path(
        live, upstream, funded_key, tasks_env):
    upstream("midjourney")
    _user, key = funded_key(rpm_limit=2)
    task_id = post(live, "/mj/submit/imagine", key, {"prompt": "a cat"}).json()["result"]
    MediaTask.objects.filter(public_id=task_id).update(upstream_task_id="../../admin?x=1")
    r = httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"mj-api-secret": key})
    assert r.status_code == 200 and r.json()["code"] == 3  # the proxy was asked about that id and knows none
    assert tasks_env.requests[-1]["path"] == "/mj/task/../../admin?x=1/image-seed"  # one escaped path segment
    r = httpx.get(f"{live.url}/mj/task/{task_id}/image-seed", headers={"mj-api-secret": key})
    assert r.status_code == 429 and r.json()["code"] == 4


def test_header_overrides_reach_submits_and_polls(live, upstream, funded_key, tasks_env):
    mj = upstream("midjourney")
    mj.header_override = {"X-Tenant": "acme", "Authorization": "Bearer {api_key}"}
    mj.save()
    _user, key = funded_key()
    r = post(live, "/mj/submit/imagine", key, {"prompt": "a pig"})
    assert r.status_code == 200 and r.json()["code"] == 1
    poll()
    submitted, polled = tasks_env.requests[-2], tasks_env.requests[-1]
    assert submitted["path"] == "/mj/submit/imagine" and polled["path"] != submitted["path"]
    for sent in (submitted, polled):
        assert sent["headers"]["x-tenant"] == "acme" and sent["headers"]["authorization"] == "Bearer mj-secret"
