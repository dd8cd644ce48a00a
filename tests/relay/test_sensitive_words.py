"""Sensitive-word filtering: a prompt holding a listed word is refused before anything is reserved or sent."""

from __future__ import annotations

import openai
import pytest

from billing.models import LedgerEntry, LedgerReason, UsageLog
from config.options import option_set
from relay.media_tasks.models import MediaTask
from relay.sensitive import WordFilter
from tests.support import post, settled

WORDS = WordFilter(["forbidden thing", "违禁词"])


@pytest.mark.parametrize("body, expected", [
    ({"messages": [{"role": "user", "content": "Tell me about the Forbidden Thing"}]}, "Forbidden Thing"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "这是违禁词"}]}]}, "违禁词"),
    ({"system": [{"type": "text", "text": "forbidden thing"}], "messages": []}, "forbidden thing"),
    ({"contents": [{"role": "user", "parts": [{"text": "a forbidden thing"}]}]}, "forbidden thing"),
    ({"input": [{"role": "user", "content": [{"type": "input_text", "text": "forbidden thing"}]}]}, "forbidden thing"),
    ({"prompt": "a cat, forbidden thing, 4k"}, "forbidden thing"),
    ({"messages": [{"role": "user", "content": "all fine"}], "model": "forbidden thing"}, None),  # not a prompt
    ({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "forbidden thing"}}]}]}, None),
])
def test_the_prompt_is_screened_wherever_the_protocol_puts_it(body, expected):
    assert WORDS.found(body) == expected


def test_no_words_no_filtering():
    assert WordFilter([]).found({"prompt": "anything"}) is None
    assert WordFilter(["", "  "]).found({"prompt": "anything"}) is None


def test_a_refused_prompt_costs_nothing_and_reaches_no_upstream(live, bootstrap_demo, funded_key):
    option_set(name="SENSITIVE_WORDS", value="forbidden thing, 违禁词")
    user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "about 违禁词"}])
    assert caught.value.code == "sensitive_words_detected" and "违禁词" in caught.value.message
    r = post(live, "/v1/video/generations", key, {"model": "demo-video", "prompt": "a forbidden thing in the rain"})
    assert r.status_code == 400 and "forbidden thing" in r.text
    assert not MediaTask.objects.exists()
    reply = client.chat.completions.create(model="demo-chat", messages=[{"role": "user", "content": "hello"}])
    assert reply.choices[0].message.content
    assert settled(lambda: UsageLog.objects.filter(status="success").count() == 1)
    assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.RESERVE).count() == 1  # the allowed call only
