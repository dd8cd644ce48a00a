"""notifyHook callbacks: delivered on status changes with retries; refused for private addresses by default."""

from __future__ import annotations

import socket

import pytest

from relay.media_tasks import notify
from relay.media_tasks.models import MediaTask
from relay.media_tasks.notify import hook_target, media_task_notifications_deliver
from relay.media_tasks.poller import media_tasks_tick
from tests.relay.media_tasks.conftest import assert_settled_once
from tests.support import post


def _resolving_to(address: str):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    return fake_getaddrinfo


def test_hook_gets_each_status_change_with_state_and_retries(live, upstream, funded_key, tasks_env, settings):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = True  # the receiver is on loopback here
    upstream("demo", task_seconds=0)
    _user, key = funded_key()
    r = post(live, "/mj/submit/imagine", key, {"prompt": "a fox", "state": "order-42",
                                               "notifyHook": f"{tasks_env.url}/hook"})
    assert r.json()["code"] == 1
    task = MediaTask.objects.get(public_id=r.json()["result"])
    tasks_env.hook_status = 500
    media_tasks_tick()  # SUCCESS now; the callback fails and is due again (no backoff in tests)
    assert [h["status"] for h in tasks_env.hooks] == ["SUCCESS"]
    tasks_env.hook_status = 200
    media_task_notifications_deliver()
    assert [h["status"] for h in tasks_env.hooks] == ["SUCCESS", "SUCCESS"]
    body = tasks_env.hooks[-1]
    assert body["id"] == task.public_id and body["state"] == "order-42" and body["action"] == "IMAGINE"
    assert body["imageUrl"].startswith("https://demo.modelgate.invalid/")
    task.refresh_from_db()
    assert task.notify_after is None and task.notify_attempts == 0
    assert media_task_notifications_deliver() == 0  # nothing more is due
    assert len(tasks_env.hooks) == 2
    assert_settled_once(task, charged=50_000)


def test_hook_gives_up_after_the_retries(live, upstream, funded_key, tasks_env, settings):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = True
    settings.TASK_NOTIFY_RETRIES = 2
    upstream("demo", task_seconds=0)
    _user, key = funded_key()
    r = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "x",
                                                   "notify_hook": f"{tasks_env.url}/hook"})
    tasks_env.hook_status = 503
    media_tasks_tick()
    for _ in range(4):
        media_task_notifications_deliver()
    assert len(tasks_env.hooks) == 3  # the first attempt and two retries
    assert tasks_env.hooks[0]["task_id"] == r.json()["id"] and tasks_env.hooks[0]["status"] == "SUCCESS"
    task = MediaTask.objects.get(public_id=r.json()["id"])
    assert task.notify_after is None and task.notify_error == "HTTP 503"


def test_private_hooks_are_refused_at_submit(live, upstream, funded_key, tasks_env):
    upstream("demo", task_seconds=0)
    _user, key = funded_key()
    for hook in (f"{tasks_env.url}/hook", "http://localhost:9/hook", "http://169.254.169.254/latest",
                 "http://[::1]/hook", "http://192.168.1.10/hook"):
        r = post(live, "/mj/submit/imagine", key, {"prompt": "x", "notifyHook": hook})
        assert r.status_code == 400 and r.json()["code"] == 4, hook
    assert not MediaTask.objects.exists()
    r = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "x", "notify_hook": "ftp://x"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "notify_hook"


def test_a_name_resolving_to_a_private_address_is_never_called(live, upstream, funded_key, tasks_env, monkeypatch):
    upstream("demo", task_seconds=0)
    _user, key = funded_key()
    r = post(live, "/mj/submit/imagine", key, {"prompt": "x", "notifyHook": "http://hooks.example.test/cb"})
    assert r.status_code == 200
    monkeypatch.setattr(notify.socket, "getaddrinfo", _resolving_to("127.0.0.1"))
    media_tasks_tick()
    task = MediaTask.objects.get(public_id=r.json()["result"])
    assert task.notify_after is None and "private" in task.notify_error
    assert tasks_env.hooks == []
    assert_settled_once(task, charged=50_000)


def test_public_hooks_connect_to_the_address_that_was_checked(monkeypatch, settings):
    settings.TASK_NOTIFY_ALLOW_PRIVATE = False
    monkeypatch.setattr(notify.socket, "getaddrinfo", _resolving_to("93.184.216.34"))
    url, headers, extensions = hook_target("https://hooks.example.com:8443/cb?x=1")
    assert url == "https://93.184.216.34:8443/cb?x=1"
    assert headers == {"host": "hooks.example.com:8443"} and extensions == {"sni_hostname": "hooks.example.com"}
    monkeypatch.setattr(notify.socket, "getaddrinfo", _resolving_to("10.1.2.3"))
    with pytest.raises(ValueError):
        hook_target("https://hooks.example.com/cb")
