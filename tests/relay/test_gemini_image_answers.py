"""Gemini image models for OpenAI chat clients: images out as Markdown data URLs, and back in as image parts."""

from __future__ import annotations

import base64
from decimal import Decimal

import openai
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.models import Upstream, UpstreamStatus
from relay.protocols.gemini_images import response_modalities, text_parts
from relay.protocols.gemini_request import openai_chat_to_gemini
from relay.protocols.gemini_response import gemini_to_openai_chat_response
from relay.upstreams import upstream_save
from tests.fakes.gemini_upstream import FakeGemini
from tests.support import settled

IMAGE_MODEL = "gemini-2.5-flash-image"
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode()
MARKDOWN = f"![image](data:image/png;base64,{PNG})"


def test_an_image_part_becomes_markdown_and_a_draft_image_does_not():
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "Here it is:"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}, "thought": True},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}, "finishReason": "STOP"}]}
    message = gemini_to_openai_chat_response(answer, model=IMAGE_MODEL, id_seed="x")["choices"][0]["message"]
    assert message["content"] == f"Here it is:{MARKDOWN}"


def test_markdown_images_sent_back_become_image_parts():
    assert text_parts(f"Make it blue. {MARKDOWN} thanks") == [
        {"text": "Make it blue. "}, {"inlineData": {"mimeType": "image/png", "data": PNG}}, {"text": " thanks"}]
    assert text_parts("no images") == [{"text": "no images"}]
    _model, body = openai_chat_to_gemini({"model": IMAGE_MODEL, "messages": [
        {"role": "user", "content": "A cat"}, {"role": "assistant", "content": MARKDOWN},
        {"role": "user", "content": [{"type": "text", "text": "Bluer"}]}]})
    assert body["contents"][1] == {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG}}]}
    assert body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


@pytest.mark.parametrize("body, model, expected", [
    ({}, "gemini-2.5-flash-image", ["TEXT", "IMAGE"]),
    ({}, "models/gemini-3-pro-image-preview", ["TEXT", "IMAGE"]),
    ({}, "gemini-2.5-flash", None),
    ({}, "imagen-4.0-generate-001", None),
    ({"modalities": ["text"]}, "gemini-2.5-flash-image", ["TEXT"]),
    ({"modalities": ["text", "audio"]}, "gemini-2.5-flash", ["TEXT", "AUDIO"]),
])
def test_response_modalities(body, model, expected):
    assert response_modalities(body, model) == expected


@pytest.fixture(scope="module")
def gem():
    with FakeGemini(api_key="g-up") as fake:
        yield fake


@pytest.fixture
def image_model(gem, transactional_db):
    gem.reset()
    ModelPrice.objects.create(model=IMAGE_MODEL, provider="gemini", model_ratio=Decimal("0.15"),
                              completion_ratio=Decimal(100))
    upstream_save(name="gem", type="gemini", base_url=gem.url, keys="g-up", served_models=[IMAGE_MODEL],
                  groups=[group_default().name])
    gem.behave(IMAGE_MODEL, content="A cat:", image=("image/png", PNG), prompt_tokens=10, candidates_tokens=1300)
    return gem


def test_an_openai_client_gets_the_image_plain_and_streamed(live, image_model, funded_key):
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    answer = client.chat.completions.create(model=IMAGE_MODEL, messages=[{"role": "user", "content": "Draw a cat"}])
    assert answer.choices[0].message.content == f"A cat:{MARKDOWN}"
    assert image_model.requests[-1].json["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    chunks = list(client.chat.completions.create(model=IMAGE_MODEL, stream=True, messages=[
        {"role": "user", "content": "Draw a cat"}, {"role": "assistant", "content": answer.choices[0].message.content},
        {"role": "user", "content": "Now a dog"}]))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == f"A cat:{MARKDOWN}"
    history = image_model.requests[-1].json["contents"][1]["parts"]
    assert history == [{"text": "A cat:"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]
    assert settled(lambda: UsageLog.objects.count() == 2)
    # billed on the tokens Gemini reports (the image's among them), not on the base64's length
    assert sorted(UsageLog.objects.values_list("completion_tokens", flat=True)) == [1300, 1300]


def test_the_images_api_is_served_by_a_gemini_image_model(live, image_model, funded_key):
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    result = client.images.generate(model=IMAGE_MODEL, prompt="A cat", size="1792x1024")
    assert [image.b64_json for image in result.data] == [PNG]
    sent = image_model.requests[-1]
    assert sent.path.endswith(f"/models/{IMAGE_MODEL}:generateContent")
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "A cat"}]}]
    assert sent.json["generationConfig"] == {"responseModalities": ["TEXT", "IMAGE"],
                                             "imageConfig": {"aspectRatio": "16:9"}}
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.prompt_tokens, log.completion_tokens) == (10, 1300)
    assert log.quota == 19_502  # 0.15 x (10 + 1300 x 100) = 19,501.5, rounded half up
    requests = len(image_model.requests)
    with pytest.raises(openai.BadRequestError, match="one image a request"):
        client.images.generate(model=IMAGE_MODEL, prompt="Cats", n=2)
    assert len(image_model.requests) == requests and UsageLog.objects.count() == 1


def test_an_image_model_answering_in_words_is_a_refusal_not_an_upstream_fault(live, image_model, funded_key):
    image_model.behave(IMAGE_MODEL, content="I can't make images of real people.", image=None)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="real people") as refused:
        client.images.generate(model=IMAGE_MODEL, prompt="A photo of a celebrity")
    assert refused.value.code == "content_policy_violation"
    image_model.behave(IMAGE_MODEL, block_reason="SAFETY")
    with pytest.raises(openai.BadRequestError, match="blocked the prompt"):
        client.images.generate(model=IMAGE_MODEL, prompt="Something blocked")
    assert settled(lambda: UsageLog.objects.filter(status="error", quota=0).count() == 2)
    assert Upstream.objects.get().status == UpstreamStatus.ENABLED  # no failure counted against it
