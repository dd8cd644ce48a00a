"""Secrets at rest and in transit: no usable API key, access token, card code or upstream key is found anywhere in
the database, in any log line, in any API answer or console page after it was first shown."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest
from django.apps import apps
from django.db import connection
from django.test import Client

from accounts.services import access_token_issue
from billing.groups import group_default, price_save
from billing.redemption import redemption_batch_create
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tokens.services import token_create

UPSTREAM_KEY = "sk-upstream-secret-4d1f9a7c2b"


def _every_stored_value() -> str:
    """Every column of every row of every table, as text (what a stolen database dump would show)."""
    parts = []
    with connection.cursor() as cursor:
        for model in apps.get_models():
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(f"SELECT * FROM {table}")
            parts.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(parts)


@pytest.fixture
def secrets(live, make_user, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(api_key=UPSTREAM_KEY) as fake:
        fake.behave("gpt-4o", status=401, error_message=f"Incorrect API key provided: {UPSTREAM_KEY}.")
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream_save(name="leaky", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
        user = make_user("holder")
        _token, key = token_create(user=user, name="main", unlimited_quota=True)
        access = access_token_issue(user=user)
        cards = redemption_batch_create(name="batch", quota=1000, count=3, created_by_id=None)
        client = openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:  # the upstream quotes its own key in its error
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        yield {"user": user, "key": key, "access": access, "cards": cards, "upstream": UPSTREAM_KEY,
               "error_body": caught.value.response.text, "live": live, "caplog": caplog}


def test_no_secret_is_stored_in_a_usable_form(secrets):
    dump = _every_stored_value()
    for name, value in [("api key", secrets["key"]), ("access token", secrets["access"]),
                        ("upstream key", secrets["upstream"]), *(("card", card) for card in secrets["cards"])]:
        assert value not in dump, f"the {name} is stored as it is"
        assert value[8:-4] not in dump, f"the middle of the {name} is stored"


def test_no_secret_reaches_logs_or_error_bodies(secrets):
    assert secrets["upstream"] not in secrets["error_body"]
    lines = "\n".join(record.getMessage() + str(record.exc_info or "") for record in secrets["caplog"].records)
    for value in (secrets["key"], secrets["access"], secrets["upstream"], *secrets["cards"]):
        assert value not in lines


def test_apis_and_pages_never_show_a_secret_again(secrets, admin, client_for):
    live = secrets["live"]
    owner = httpx.Client(base_url=live.url, headers={"authorization": f"Bearer {secrets['access']}"}, timeout=10)
    operator = client_for(admin)
    responses = [owner.get("/api/token/"), owner.get("/api/user/self"), owner.get("/api/log/self"),
                 operator.get("/api/channel/"), operator.get("/api/redemption/"), operator.get("/api/log/"),
                 httpx.get(live.url + "/v1/models", headers={"authorization": f"Bearer {secrets['key']}"})]
    console = Client()
    console.force_login(secrets["user"])
    responses += [console.get(path) for path in ("/keys/", "/settings/", "/dashboard/", "/logs/", "/logs/export.csv")]
    assert [r.status_code for r in responses] == [200] * len(responses)
    answers = [r.content.decode() for r in responses]
    for value in (secrets["key"], secrets["access"], secrets["upstream"], *secrets["cards"]):
        assert not any(value in answer for answer in answers)


def test_an_upstream_key_quoted_in_a_stream_error_frame_read_with_other_frames_is_hidden(live, make_user):
    """Frames that arrive in one read leave in one write; an error frame among them still has the key taken out."""
    content = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
               "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    error = {"error": {"message": f"Incorrect API key provided: {UPSTREAM_KEY}.", "type": "invalid_request_error"}}
    raw = b"".join(b"data: " + json.dumps(frame).encode() + b"\n\n" for frame in (content, content, error))
    with FakeOpenAI(api_key=UPSTREAM_KEY) as fake:
        fake.behave("gpt-4o", raw_body=raw + b"data: [DONE]\n\n")
        price_save(model="gpt-4o", model_ratio=1, completion_ratio=1)
        upstream_save(name="leaky", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, served_models=["gpt-4o"],
                      groups=[group_default().name])
        _token, key = token_create(user=make_user("streamer"), name="main", unlimited_quota=True)
        r = httpx.post(live.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
                       json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]})

    assert r.status_code == 200 and r.text.count('"Hi"') == 2 and r.text.endswith("data: [DONE]\n\n")
    assert UPSTREAM_KEY not in r.text and "Incorrect API key provided: ***." in r.text
