"""The console playground's relay route: the browser session instead of a key, CSRF-checked, billed as usual."""

from __future__ import annotations

import json

import httpx
import pytest
from django.test import Client

from billing.models import UsageLog
from tests.support import settled
from tokens.models import ApiToken
from tokens.services import tokens_of

CHAT = {"model": "demo-chat", "stream": True, "messages": [{"role": "user", "content": "Hello there"}]}


@pytest.fixture
def browser_session(live, bootstrap_demo, make_user):
    """The cookies of a signed-in user who opened the playground page."""
    user = make_user("player")
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    page = client.get("/playground/")
    assert page.status_code == 200 and b"demo-chat" in page.content
    return user, client.cookies["sessionid"].value, client.cookies["csrftoken"].value


def _post(live, cookies: dict[str, str], headers: dict[str, str] | None = None, body: dict | None = None):
    return httpx.post(f"{live.url}/pg/chat/completions", json=body or CHAT, cookies=cookies, headers=headers or {},
                      timeout=10)


def test_a_signed_in_session_chats_and_is_billed_under_the_playground_key(live, browser_session):
    user, session, csrf = browser_session
    r = _post(live, {"sessionid": session, "csrftoken": csrf}, {"x-csrftoken": csrf, "origin": live.url})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    chunks = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    assert "You said: Hello there" in "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks
                                              if c["choices"])
    assert settled(lambda: UsageLog.objects.filter(user=user).exists())
    log = UsageLog.objects.get(user=user)
    assert log.token_name == "Playground" and log.quota > 0
    assert not tokens_of(user=user).exists()  # not among the user's keys
    assert ApiToken.objects.get(user=user, playground=True).unlimited_quota


@pytest.mark.parametrize("cookies, headers, status", [
    ({"csrftoken": "t"}, {"x-csrftoken": "t"}, 401),  # no session
    ({"sessionid": "forged", "csrftoken": "t"}, {"x-csrftoken": "t"}, 401),
    ("session", {}, 403),  # no CSRF header: another site's form or script
    ("session", {"x-csrftoken": "other"}, 403),
    ("session", {"x-csrftoken": "csrf", "origin": "https://evil.example"}, 403),
])
def test_requests_without_the_session_or_its_csrf_token_are_refused(live, browser_session, cookies, headers,
                                                                    status):
    user, session, csrf = browser_session
    if cookies == "session":
        cookies = {"sessionid": session, "csrftoken": csrf}
        headers = {name: csrf if value == "csrf" else value for name, value in headers.items()}
    r = _post(live, cookies, headers)
    assert r.status_code == status and r.json()["error"]["message"]
    assert not UsageLog.objects.filter(user=user).exists()
