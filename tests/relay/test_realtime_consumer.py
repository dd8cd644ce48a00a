"""The realtime consumer driven directly by Channels' WebsocketCommunicator, with the in-process demo upstream;
and the pure parts of the realtime relay (usage, URLs, close codes)."""

from __future__ import annotations

import asyncio

from channels.testing import WebsocketCommunicator

from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, UsageLog
from relay.errors import RelayError
from relay.limits import Limits
from relay.providers import PROVIDERS
from relay.realtime.consumer import RealtimeConsumer, client_close_code, refusal_close_code, upstream_close_code
from relay.realtime.events import ResponseTracker, usage_from_realtime
from relay.realtime.upstream import realtime_target
from relay.snapshots import Snapshots, UpstreamInfo
from tests.support import settled

PATH = "/v1/realtime?model=demo-realtime"


def _app():
    return RealtimeConsumer.as_asgi(snapshots=Snapshots(), limits=Limits())


async def _until(comm: WebsocketCommunicator, kind: str) -> list[dict]:
    out: list[dict] = []
    while not out or out[-1]["type"] != kind:
        out.append(await comm.receive_json_from(timeout=5))
    return out


def test_consumer_relays_a_demo_session_and_settles(bootstrap_demo, funded_key, settings):
    settings.DEMO_CHUNK_DELAY_MS = 0
    user, key = funded_key()

    async def run() -> list[dict]:
        comm = WebsocketCommunicator(_app(), PATH, headers=[(b"authorization", f"Bearer {key}".encode())],
                                     subprotocols=["realtime"])
        connected, subprotocol = await comm.connect(timeout=5)
        assert connected and subprotocol == "realtime"
        assert (await comm.receive_json_from(timeout=5))["type"] == "session.created"
        await comm.send_json_to({"type": "session.update", "session": {"modalities": ["text"]}})
        assert (await comm.receive_json_from(timeout=5))["type"] == "session.updated"
        await comm.send_json_to({"type": "response.create"})
        events = await _until(comm, "response.done")
        await comm.disconnect(code=1000, timeout=5)
        return events

    events = asyncio.run(run())
    assert "response.text.delta" in [e["type"] for e in events]
    assert settled(lambda: LedgerEntry.objects.filter(user=user, reason=LedgerReason.REFUND).exists())
    log = UsageLog.objects.get(user=user)
    assert log.completion_tokens == events[-1]["response"]["usage"]["output_tokens"] and log.quota > 0
    user.refresh_from_db()
    assert user.quota == ledger_sum(user_id=user.pk)


def test_consumer_refuses_a_wrong_key_with_an_error_event_and_1008(bootstrap_demo, funded_key):
    funded_key()

    async def run() -> tuple[dict, dict]:
        comm = WebsocketCommunicator(_app(), PATH, headers=[(b"authorization", b"Bearer sk-wrong-key-0000000000")])
        connected, _ = await comm.connect(timeout=5)
        assert connected
        error = await comm.receive_json_from(timeout=5)
        close = await comm.receive_output(timeout=5)
        await comm.disconnect(timeout=5)
        return error, close

    error, close = asyncio.run(run())
    assert error["error"]["code"] == "invalid_api_key" and "sk-wrong" not in error["error"]["message"]
    assert close == {"type": "websocket.close", "code": 1008, "reason": "invalid_api_key"}
    assert not LedgerEntry.objects.filter(reason=LedgerReason.RESERVE).exists()


def test_realtime_usage_bills_uncached_audio_at_the_audio_ratio():
    usage = usage_from_realtime({
        "input_tokens": 127, "output_tokens": 148,
        "input_token_details": {"cached_tokens": 64, "text_tokens": 119, "audio_tokens": 8,
                                "cached_tokens_details": {"text_tokens": 60, "audio_tokens": 4}},
        "output_token_details": {"text_tokens": 36, "audio_tokens": 112}})
    assert (usage.prompt_tokens, usage.cached_tokens, usage.audio_prompt_tokens) == (127, 64, 4)
    assert (usage.completion_tokens, usage.audio_completion_tokens) == (148, 112)
    # Without the cached split, cached tokens are taken to be text first (audio is the dearer side).
    usage = usage_from_realtime({"input_tokens": 100, "output_tokens": 0, "input_token_details": {
        "cached_tokens": 90, "text_tokens": 80, "audio_tokens": 20}})
    assert usage.audio_prompt_tokens == 10
    assert usage_from_realtime(None) is None and usage_from_realtime({"type": "x"}) is None


def test_tracker_estimates_a_response_cut_short():
    tracker = ResponseTracker()
    tracker.observe({"type": "session.updated", "session": {"output_audio_format": "g711_ulaw"}})
    tracker.observe({"type": "response.created", "response": {"id": "r1"}})
    tracker.observe({"type": "response.done", "response": {"id": "r1", "usage": {"input_tokens": 50,
                                                                                 "output_tokens": 5}}})
    tracker.observe({"type": "response.created", "response": {"id": "r2"}})
    tracker.observe({"type": "response.audio_transcript.delta", "response_id": "r2", "delta": "Hello there"})
    tracker.observe({"type": "response.audio.delta", "response_id": "r2", "delta": "A" * 10_668})  # 8,001 bytes
    [(response_id, usage)] = tracker.unfinished()
    assert response_id == "r2" and usage.estimated and usage.prompt_tokens == 50
    assert usage.audio_completion_tokens == 11  # just over one second of g711 at 10 tokens a second
    assert usage.completion_tokens == 11 + 2 and tracker.open == {}


def _upstream(kind: str, base_url: str, **extras) -> UpstreamInfo:
    return UpstreamInfo(id=1, name="u", type=kind, provider=PROVIDERS[kind], base_url=base_url, keys=("k",),
                        models=frozenset({"m"}), model_mapping={"m": "m-2025"}, groups=frozenset({"default"}),
                        priority=0, weight=1, connect_timeout=5, first_byte_timeout=5, total_timeout=5,
                        extras=extras)


def test_realtime_targets_for_openai_and_azure():
    url, headers = realtime_target(_upstream("openai", "https://api.openai.com"), "m", "sk-up", beta=True)
    assert url == "wss://api.openai.com/v1/realtime?model=m-2025"
    assert headers == {"Authorization": "Bearer sk-up", "OpenAI-Beta": "realtime=v1"}
    url, headers = realtime_target(_upstream("azure", "https://res.openai.azure.com/openai"), "m", "az", beta=False)
    assert url == "wss://res.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=m-2025"
    assert headers == {"api-key": "az"}


def test_close_codes_pass_through_when_they_can_be_sent():
    assert [client_close_code(c) for c in (1000, 4000, 1005, 1006, 1004)] == [1000, 4000, 1000, 1014, 1011]
    assert [upstream_close_code(c) for c in (1001, 4001, 1005, 1006)] == [1001, 4001, 1000, 1001]
    assert refusal_close_code(RelayError(401, "x")) == 1008
    assert refusal_close_code(RelayError(429, "x")) == 1013
    assert refusal_close_code(RelayError(502, "x")) == 1014
