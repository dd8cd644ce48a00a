"""Speech, transcription, translation, image edits and image prices, with the openai SDK against a fake upstream."""

from __future__ import annotations

from decimal import Decimal

import httpx
import openai
import pytest

from billing.groups import group_default, price_save
from billing.models import UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_media import speech_audio, tiny_wav
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

UPSTREAM_KEY = "sk-upstream-media"


@pytest.fixture(scope="module")
def fake():
    with FakeOpenAI(api_key=UPSTREAM_KEY) as up:
        yield up


@pytest.fixture
def up(fake, transactional_db):
    fake.reset()
    price_save(model="tts-1", category="audio", model_ratio=Decimal("7.5"))
    for model in ("whisper-1", "whisper-2"):
        price_save(model=model, category="audio", price_per_minute=Decimal("0.006"))
    price_save(model="gpt-4o-transcribe", category="audio", model_ratio=Decimal("1.25"), audio_ratio=Decimal("2.4"),
               completion_ratio=Decimal(4))
    price_save(model="dall-e-3", category="image", price_per_call=Decimal("0.04"),
               price_variants={"1024x1792": "0.08", "hd 1024x1024": "0.08", "hd 1024x1792": "0.12"})
    price_save(model="gpt-image-1", category="image", model_ratio=Decimal("2.5"), completion_ratio=Decimal(8))
    upstream_save(name="media", type="openai", base_url=fake.url, keys=UPSTREAM_KEY, groups=[group_default().name],
                  served_models=["tts-1", "whisper-1", "gpt-4o-transcribe", "dall-e-3", "gpt-image-1", "whisper-2"],
                  model_mapping={"whisper-2": "whisper-1"})
    return fake


def _client(live, key):
    return openai.OpenAI(api_key=key, base_url=live.url + "/v1", max_retries=0)


def _log():
    assert settled(lambda: UsageLog.objects.exists())
    return UsageLog.objects.get()


def test_speech_streams_the_audio_to_a_file_priced_per_character(live, up, funded_key, tmp_path):
    user, key = funded_key()
    before = user.quota
    text = "The quick brown fox jumps over the lazy dog."
    target = tmp_path / "speech.mp3"
    with _client(live, key).audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=text) as response:
        assert response.headers["content-type"] == "audio/mpeg"
        response.stream_to_file(target)
    assert target.read_bytes() == speech_audio(text, "mp3")
    log = _log()
    assert (log.prompt_tokens, log.completion_tokens, log.status) == (len(text), 0, "success")
    assert log.quota == round(Decimal("7.5") * len(text))  # $15 per million characters
    user.refresh_from_db()
    assert before - user.quota == log.quota


def test_speech_format_and_bad_input(live, up, funded_key):
    _user, key = funded_key()
    r = httpx.post(live.url + "/v1/audio/speech", headers={"authorization": f"Bearer {key}"}, timeout=10,
                   json={"model": "tts-1", "voice": "nova", "input": "hi", "response_format": "wav"})
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav" and r.content == speech_audio("hi", "wav")
    for bad, param in [({"voice": "nova"}, "input"), ({"input": "hi"}, "voice"),
                       ({"input": "hi", "voice": "nova", "speed": 9}, "speed"),
                       ({"input": "x" * 5000, "voice": "nova"}, "input")]:
        r = httpx.post(live.url + "/v1/audio/speech", headers={"authorization": f"Bearer {key}"}, timeout=10,
                       json={"model": "tts-1", **bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == param


def test_whisper_transcription_is_priced_per_minute_of_audio(live, up, funded_key, tmp_path):
    user, key = funded_key()
    before = user.quota
    audio = tmp_path / "hello.wav"
    audio.write_bytes(tiny_wav(30))
    with audio.open("rb") as handle:
        result = _client(live, key).audio.transcriptions.create(model="whisper-1", file=handle)
    assert result.text == "Hello from whisper-1!"
    sent = up.requests[-1]
    assert sent.path == "/v1/audio/transcriptions" and sent.headers["content-type"].startswith("multipart/form-data")
    assert sent.body["_files"]["file"][0]["data"] == audio.read_bytes()  # the upload arrived intact
    log = _log()
    assert log.quota == 1_500  # 0.5 min x $0.006 x 500,000
    user.refresh_from_db()
    assert before - user.quota == 1_500


def test_text_formats_pass_through_and_are_billed_from_the_local_duration(live, up, funded_key, tmp_path):
    _user, key = funded_key()
    audio = tmp_path / "clip.wav"
    audio.write_bytes(tiny_wav(12))
    with audio.open("rb") as handle:
        text = _client(live, key).audio.translations.create(model="whisper-2", file=handle, response_format="text")
    assert text.strip() == "Hello from whisper-1!"
    sent = up.requests[-1]
    assert sent.path == "/v1/audio/translations" and sent.body["model"] == "whisper-1"  # mapped in the form
    assert sent.body["_files"]["file"][0]["data"] == audio.read_bytes()
    log = _log()
    assert log.upstream_model == "whisper-1" and log.quota == 600  # 12 s = 0.2 min x $0.006 x 500,000


def test_token_priced_transcription_bills_the_reported_audio_tokens(live, up, funded_key, tmp_path):
    up.behave("gpt-4o-transcribe", prompt_tokens=300, completion_tokens=20, content="bonjour")
    _user, key = funded_key()
    audio = tmp_path / "a.wav"
    audio.write_bytes(tiny_wav(2))
    with audio.open("rb") as handle:
        result = _client(live, key).audio.transcriptions.create(model="gpt-4o-transcribe", file=handle)
    assert result.text == "bonjour"
    log = _log()
    # 1.25 x (2 text + 298 audio x 2.4 + 20 x 4) = 1.25 x 797.2 = 996.5 -> 997
    assert (log.prompt_tokens, log.completion_tokens, log.audio_prompt_tokens, log.quota) == (300, 20, 298, 997)


def test_streamed_transcription_passes_events_and_bills_their_usage(live, up, funded_key, tmp_path):
    up.behave("gpt-4o-transcribe", prompt_tokens=102, completion_tokens=3, content="one two three")
    _user, key = funded_key()
    audio = tmp_path / "a.wav"
    audio.write_bytes(tiny_wav(1))
    with audio.open("rb") as handle:
        events = list(_client(live, key).audio.transcriptions.create(model="gpt-4o-transcribe", file=handle,
                                                                       stream=True))
    assert [e.type for e in events] == ["transcript.text.delta"] * 3 + ["transcript.text.done"]
    log = _log()
    assert log.is_stream and (log.prompt_tokens, log.audio_prompt_tokens, log.completion_tokens) == (102, 100, 3)


def test_transcription_without_a_file_or_with_a_bad_format_is_refused_unbilled(live, up, funded_key):
    _user, key = funded_key()
    headers = {"authorization": f"Bearer {key}"}
    r = httpx.post(live.url + "/v1/audio/transcriptions", headers=headers, data={"model": "whisper-1"},
                   files={"other": ("x.txt", b"x")}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(live.url + "/v1/audio/transcriptions", headers=headers,
                   data={"model": "whisper-1", "response_format": "mp4"}, files={"file": ("a.wav", tiny_wav(1))},
                   timeout=10)
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = httpx.post(live.url + "/v1/audio/transcriptions", headers=headers, json={"model": "whisper-1"}, timeout=10)
    assert r.status_code == 400 and "multipart" in r.json()["error"]["message"]
    assert up.requests == [] and not UsageLog.objects.exists()


def test_image_edit_uploads_the_image_and_prices_each_image_by_size_and_quality(live, up, funded_key, tmp_path):
    _user, key = funded_key()
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 300)
    with image.open("rb") as handle:
        result = _client(live, key).images.edit(model="dall-e-3", image=handle, prompt="add a hat", n=2,
                                                size="1024x1792")
    assert len(result.data) == 2
    sent = up.requests[-1]
    assert sent.path == "/v1/images/edits" and sent.body["prompt"] == "add a hat"
    assert sent.body["_files"]["image"][0]["data"] == image.read_bytes()
    assert _log().quota == 80_000  # 2 x $0.08 (1024x1792) x 500,000


@pytest.mark.parametrize(("size", "quality", "quota"), [("1024x1024", "standard", 20_000), ("1024x1024", "hd", 40_000),
                                                         ("1024x1792", "hd", 60_000)])
def test_image_generation_price_follows_size_and_quality(live, up, funded_key, size, quality, quota):
    _user, key = funded_key()
    _client(live, key).images.generate(model="dall-e-3", prompt="a fox", size=size, quality=quality)
    assert _log().quota == quota


def test_gpt_image_is_billed_on_the_reported_tokens(live, up, funded_key):
    up.behave("gpt-image-1", prompt_tokens=50, completion_tokens=4160)
    _user, key = funded_key()
    result = _client(live, key).images.generate(model="gpt-image-1", prompt="a fox")
    assert result.data[0].b64_json and result.usage.output_tokens == 4160
    log = _log()
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (50, 4160, round(2.5 * (50 + 4160 * 8)))


def test_streamed_gpt_image_generation_is_billed_on_the_completed_events_tokens(live, up, funded_key):
    up.behave("gpt-image-1", prompt_tokens=40, completion_tokens=1056)
    _user, key = funded_key()
    events = list(_client(live, key).images.generate(model="gpt-image-1", prompt="a fox", stream=True,
                                                     partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert events[-1].usage.output_tokens == 1056
    log = _log()
    assert log.is_stream and log.status == "success"
    assert (log.prompt_tokens, log.completion_tokens, log.quota) == (40, 1056, round(2.5 * (40 + 1056 * 8)))
    with pytest.raises(openai.BadRequestError, match="one image"):  # usage per image is not told apart
        list(_client(live, key).images.generate(model="gpt-image-1", prompt="two foxes", stream=True, n=2))


def test_streamed_gpt_image_edit_is_billed_on_the_completed_events_tokens(live, up, funded_key, tmp_path):
    up.behave("gpt-image-1", prompt_tokens=300, completion_tokens=272)
    _user, key = funded_key()
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 300)
    with image.open("rb") as handle:
        events = list(_client(live, key).images.edit(model="gpt-image-1", image=handle, prompt="add a hat",
                                                     stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]
    log = _log()
    assert log.is_stream and (log.prompt_tokens, log.completion_tokens, log.quota) == (
        300, 272, round(2.5 * (300 + 272 * 8)))


def test_upstream_refusal_of_an_upload_refunds(live, up, funded_key, tmp_path):
    up.behave("whisper-1", status=400, error_message="Invalid file format.")
    user, key = funded_key()
    before = user.quota
    with pytest.raises(openai.BadRequestError, match="Invalid file format"):
        _client(live, key).audio.transcriptions.create(model="whisper-1", file=("a.wav", tiny_wav(1)))
    log = _log()
    assert log.status == "error" and log.quota == 0
    user.refresh_from_db()
    assert user.quota == before
