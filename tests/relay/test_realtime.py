"""The Realtime WebSocket relay through the live server, against a fake realtime upstream on loopback."""

from __future__ import annotations

import json
import socket
from decimal import Decimal

import openai
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from accounts.models import User
from accounts.services import user_adjust_quota
from billing.groups import group_default
from billing.ledger import ledger_sum
from billing.models import LedgerEntry, LedgerReason, ModelPrice, UsageLog
from billing.pricing import quota_for_tokens
from relay.upstreams import upstream_save
from tests.fakes.realtime_upstream import FakeRealtime
from tests.support import settled

MODEL = "gpt-rt-test"
UPSTREAM_KEY = "sk-rt-upstream-key"


@pytest.fixture(scope="module")
def fake():
    with FakeRealtime(api_key=UPSTREAM_KEY) as up:
        yield up


@pytest.fixture
def upstream(fake, transactional_db):
    """The fake serving MODEL, priced like gpt-4o-realtime-preview: $5/M text in, x4 out, cached x0.5, audio x8/x16."""
    fake.reset()
    ModelPrice.objects.create(model=MODEL, provider="openai", category="realtime", model_ratio=Decimal("2.5"),
                              completion_ratio=Decimal(4), cache_ratio=Decimal("0.5"), audio_ratio=Decimal(8),
                              audio_completion_ratio=Decimal(16))
    return upstream_save(name="realtime", type="openai", base_url=fake.url, keys=UPSTREAM_KEY,
                         served_models=[MODEL], groups=[group_default().name])


def ws_url(live, model: str = MODEL, path: str = "/v1/realtime") -> str:
    return live.url.replace("http://", "ws://") + f"{path}?model={model}"


def open_session(live, key: str, model: str = MODEL, **kw) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "realtime=v1"}
    return connect(ws_url(live, model), additional_headers=headers, open_timeout=5, proxy=None, **kw)


def recv(ws: ClientConnection) -> dict:
    return json.loads(ws.recv(timeout=5))


def events_until(ws: ClientConnection, kind: str) -> list[dict]:
    out = []
    while not out or out[-1]["type"] != kind:
        out.append(recv(ws))
    return out


def closed_with(ws: ClientConnection) -> tuple[int, str]:
    """Read to the end of the socket; the close code and reason the server sent."""
    with pytest.raises(ConnectionClosed) as caught:
        while True:
            ws.recv(timeout=5)
    rcvd = caught.value.rcvd
    return (rcvd.code, rcvd.reason) if rcvd else (1006, "")


def send(ws: ClientConnection, event: dict) -> None:
    ws.send(json.dumps(event))


def ledger_reasons(user: User) -> list[str]:
    return sorted(LedgerEntry.objects.filter(user=user, reason__in=[
        LedgerReason.RESERVE, LedgerReason.CHARGE, LedgerReason.REFUND, LedgerReason.SETTLE,
    ]).values_list("reason", flat=True))


def session_closed(user: User, charges: int) -> bool:
    return ledger_reasons(user) == sorted([LedgerReason.RESERVE, LedgerReason.REFUND] + [LedgerReason.CHARGE] * charges)


def test_session_update_item_create_response_create_round_trip(live, upstream, fake, funded_key):
    _user, key = funded_key()
    with open_session(live, key) as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": {"modalities": ["text"], "instructions": "Be brief."}})
        assert recv(ws)["type"] == "session.updated"
        send(ws, {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}]}})
        assert recv(ws)["item"]["content"][0]["text"] == "Hello"
        send(ws, {"type": "response.create", "response": {"modalities": ["text"]}})
        events = events_until(ws, "response.done")
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["response.created", "response.output_item.added"] and "response.text.delta" in kinds
    assert "".join(e["delta"] for e in events if e["type"] == "response.text.delta") == fake.behaviour.text
    assert [e["type"] for e in fake.events] == ["session.update", "conversation.item.create", "response.create"]
    handshake = fake.handshakes[-1]
    assert handshake.path == "/v1/realtime" and handshake.query == {"model": MODEL}
    assert handshake.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # the upstream's key, not the user's
    assert handshake.headers["openai-beta"] == "realtime=v1"


@pytest.mark.parametrize("offered, echoed", [
    (["realtime", "openai-insecure-api-key.{key}", "openai-beta.realtime-v1"], "realtime"),
    (["openai-insecure-api-key.{key}", "openai-beta.realtime-v1"], "openai-beta.realtime-v1"),
])
def test_browser_subprotocol_auth_echoes_a_protocol_never_the_key(live, upstream, fake, funded_key, offered, echoed):
    _user, key = funded_key()
    protocols = [p.format(key=key) for p in offered]
    with connect(ws_url(live), subprotocols=protocols, open_timeout=5, proxy=None) as ws:
        assert ws.subprotocol == echoed
        assert key not in (ws.response.headers.get("Sec-WebSocket-Protocol") or "")
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "response.create"})
        assert events_until(ws, "response.done")[-1]["response"]["status"] == "completed"
    assert fake.handshakes[-1].headers["openai-beta"] == "realtime=v1"


def test_wrong_key_is_refused_before_the_upstream_is_contacted(live, upstream, fake, funded_key):
    funded_key()
    with open_session(live, "sk-not-a-real-key-000000000000") as ws:
        error = recv(ws)
        code, reason = closed_with(ws)
    assert error["type"] == "error" and error["error"]["code"] == "invalid_api_key"
    assert (code, reason) == (1008, "invalid_api_key")
    with connect(ws_url(live), open_timeout=5, proxy=None) as ws:  # no key at all
        assert recv(ws)["error"]["code"] == "invalid_api_key"
    assert fake.handshakes == []


def test_disallowed_and_unknown_models_are_refused_before_the_upstream(live, upstream, fake, funded_key):
    _user, key = funded_key(model_limits=["gpt-4o"])
    with open_session(live, key) as ws:
        assert recv(ws)["error"]["code"] == "model_not_allowed"
        assert closed_with(ws)[0] == 1008
    _user, other = funded_key("other")
    with open_session(live, other, model="no-such-model") as ws:
        assert recv(ws)["error"]["code"] == "model_not_found"
    assert fake.handshakes == []


def test_each_response_is_charged_at_once_by_the_formula(live, upstream, fake, funded_key):
    fake.behave(input_tokens=1000, input_text_tokens=700, input_audio_tokens=300, cached_tokens=200,
                cached_text_tokens=150, cached_audio_tokens=50, output_text_tokens=100, output_audio_tokens=400)
    # By hand: uncached audio in 300-50 = 250, uncached text in 1000-200-250 = 550;
    # 2.5 x (550 + 200 x 0.5 + 250 x 8 + 100 x 4 + 400 x 16) = 2.5 x 9450 = 23,625 per response.
    expected = 23_625
    assert quota_for_tokens(prompt_tokens=1000, completion_tokens=500, cached_tokens=200, group_ratio=Decimal(1),
                            model_ratio=Decimal("2.5"), completion_ratio=Decimal(4), cache_ratio=Decimal("0.5"),
                            audio_prompt_tokens=250, audio_ratio=Decimal(8), audio_completion_tokens=400,
                            audio_completion_ratio=Decimal(16)) == expected
    user, key = funded_key()
    before = User.objects.get(pk=user.pk).quota
    with open_session(live, key) as ws:
        recv(ws)
        for n in (1, 2):
            send(ws, {"type": "response.create"})
            events_until(ws, "response.done")
            # charged before response.done reached the client
            assert LedgerEntry.objects.filter(user=user, reason=LedgerReason.CHARGE).count() == n
    assert settled(lambda: session_closed(user, charges=2))
    charges = LedgerEntry.objects.filter(user=user, reason=LedgerReason.CHARGE).order_by("id")
    assert [c.amount for c in charges] == [-expected, -expected]
    session = LedgerEntry.objects.get(user=user, reason=LedgerReason.RESERVE).ref.removeprefix("req:")
    assert [c.ref for c in charges] == [f"rt:{session}:1", f"rt:{session}:2"]
    logs = list(UsageLog.objects.filter(user=user).order_by("id"))
    assert [log.request_id for log in logs] == [f"{session}:1", f"{session}:2"]
    log = logs[0]
    assert (log.endpoint, log.model, log.quota, log.upstream_id) == ("/v1/realtime", MODEL, expected, upstream.pk)
    assert (log.prompt_tokens, log.completion_tokens, log.cached_tokens) == (1000, 500, 200)
    assert (log.audio_prompt_tokens, log.audio_completion_tokens, log.usage_estimated) == (250, 400, False)
    user.refresh_from_db()
    assert user.quota == before - 2 * expected == ledger_sum(user_id=user.pk)
    assert user.used_quota == 2 * expected and user.request_count == 2


def _user_with_balance(funded_key, balance: int, **token_fields):
    user, key = funded_key(balance=0, **token_fields)
    user_adjust_quota(user=user, amount=balance - user.quota)
    return user, key


def test_a_response_beyond_the_balance_ends_the_session_with_insufficient_quota(live, upstream, fake, funded_key,
                                                                                 settings):
    settings.REALTIME_RESERVE_TOKENS = 10  # hold: 2.5 x (10 x 8 + 10 x 16) = 600
    fake.behave(input_tokens=1000, input_text_tokens=1000, input_audio_tokens=0, output_text_tokens=0,
                output_audio_tokens=0)  # 2,500 per response
    user, key = _user_with_balance(funded_key, 3_000)
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")  # 3,000 - 600 held - 2,500 = -100: the hold is no longer whole
        error = recv(ws)
        code, reason = closed_with(ws)
    assert error["type"] == "error" and error["error"]["code"] == "insufficient_quota"
    assert (code, reason) == (1008, "insufficient_quota")
    assert settled(lambda: session_closed(user, charges=1))
    user.refresh_from_db()
    assert user.quota == 500 == ledger_sum(user_id=user.pk)  # the one response was paid for in full


def test_response_create_is_refused_once_another_session_spent_the_balance(live, upstream, fake, funded_key,
                                                                              settings):
    settings.REALTIME_RESERVE_TOKENS = 10  # 600 held per session
    fake.behave(input_tokens=1000, input_text_tokens=1000, input_audio_tokens=0, output_text_tokens=0)  # 2,500
    user, key = _user_with_balance(funded_key, 2_000)
    with open_session(live, key) as first, open_session(live, key) as second:
        recv(first), recv(second)  # 2,000 - 2 x 600 = 800
        send(second, {"type": "response.create"})
        events_until(second, "response.done")  # 800 - 2,500 < 0: the second session ends
        assert recv(second)["error"]["code"] == "insufficient_quota"
        send(first, {"type": "response.create"})
        assert recv(first)["error"]["code"] == "insufficient_quota"
        assert closed_with(first) == (1008, "insufficient_quota")
    assert sorted(len(s.events) for s in fake.sessions) == [0, 1]  # the first session's request never went upstream
    assert settled(lambda: LedgerEntry.objects.filter(user=user, reason=LedgerReason.REFUND).count() == 2)
    user.refresh_from_db()
    assert user.quota == 2_000 - 2_500 == ledger_sum(user_id=user.pk)  # one response beyond the balance


def test_client_disconnect_settles_once_and_passes_the_close_code(live, upstream, fake, funded_key):
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
        ws.close(4001, "done here")
    assert fake.wait(lambda: fake.sessions and fake.sessions[-1].ended)
    assert (fake.sessions[-1].close_code, fake.sessions[-1].close_reason) == (4001, "done here")
    assert settled(lambda: session_closed(user, charges=1))


def test_client_leaving_mid_response_is_billed_for_the_cancelled_response(live, upstream, fake, funded_key):
    fake.behave(hold_response=True, input_tokens=400, input_text_tokens=400, input_audio_tokens=0,
                output_text_tokens=7)
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "response.create"})
        events_until(ws, "response.text.delta")
    # The relay cancels the response upstream and charges the usage the cancelled response.done reports.
    assert settled(lambda: session_closed(user, charges=1))
    assert fake.events[-1]["type"] == "response.cancel"
    log = UsageLog.objects.get(user=user)
    assert (log.prompt_tokens, log.completion_tokens, log.usage_estimated) == (400, 7, False)
    assert log.quota == round(2.5 * (400 + 7 * 4))


def test_upstream_close_passes_its_code_and_settles_once(live, upstream, fake, funded_key):
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
        send(ws, {"type": "fake.close", "code": 4000, "reason": "upstream says bye"})
        assert closed_with(ws) == (4000, "upstream says bye")
    assert settled(lambda: session_closed(user, charges=1))


def test_upstream_dropping_mid_response_bills_an_estimate(live, upstream, fake, funded_key):
    fake.behave(hold_response=True, text="one two three four")
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "response.create"})
        events_until(ws, "response.text.delta")
        send(ws, {"type": "fake.abort"})
        assert closed_with(ws)[0] == 1014  # bad gateway: the upstream went away without a close frame
    assert settled(lambda: session_closed(user, charges=1))
    log = UsageLog.objects.get(user=user)
    assert log.usage_estimated and log.completion_tokens > 0 and log.status == "client_closed"


def test_frames_pass_both_ways_in_order_text_and_binary(live, upstream, fake, funded_key):
    _user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        sent = []
        for i in range(30):
            if i % 3 == 0:
                frame: str | bytes = bytes([i]) * (i + 1)
                ws.send(frame)
            else:
                frame = json.dumps({"type": "fake.echo", "n": i})
                ws.send(frame)
            sent.append(frame)
        assert [ws.recv(timeout=5) for _ in sent] == sent
    assert fake.sessions[-1].binary == [f for f in sent if isinstance(f, bytes)]


def test_failover_to_the_next_upstream_when_the_first_cannot_be_reached(live, upstream, fake, funded_key):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # closed again: nothing listens there
    upstream_save(name="dead", type="openai", base_url=f"http://127.0.0.1:{dead}", keys="sk-dead-upstream",
                  served_models=[MODEL], groups=[group_default().name], priority=10)
    user, key = funded_key()
    with open_session(live, key) as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "response.create"})
        events_until(ws, "response.done")
    assert settled(lambda: session_closed(user, charges=1))
    assert UsageLog.objects.get(user=user).upstream_id == upstream.pk


def test_no_reachable_upstream_closes_with_an_error_and_refunds(live, upstream, fake, funded_key):
    fake.behave(refuse_status=503)
    user, key = funded_key()
    with open_session(live, key) as ws:
        assert recv(ws)["error"]["code"] == "upstream_error"
        assert closed_with(ws)[0] == 1014
    assert len(fake.handshakes) == 1
    assert settled(lambda: session_closed(user, charges=0))


def test_an_upstream_refusing_its_credentials_is_disabled_and_failures_count(live, upstream, fake, funded_key,
                                                                            settings):
    from relay.models import Upstream, UpstreamStatus

    fake.behave(refuse_status=401)
    _user, key = funded_key()
    with open_session(live, key) as ws:
        assert recv(ws)["error"]["code"] == "upstream_error"
    assert settled(lambda: Upstream.objects.get(pk=upstream.pk).status == UpstreamStatus.AUTO_DISABLED)
    assert "401" in Upstream.objects.get(pk=upstream.pk).status_reason


def test_azure_realtime_url_and_key_header(live, upstream, fake, funded_key):
    upstream.delete()
    upstream_save(name="azure", type="azure", base_url=fake.url, keys=UPSTREAM_KEY, served_models=[MODEL],
                  groups=[group_default().name],
                  extras={"realtime_api_version": "2024-10-01-preview", "deployments": {MODEL: "rt-deploy"}})
    _user, key = funded_key()
    with open_session(live, key) as ws:
        assert recv(ws)["type"] == "session.created"
    handshake = fake.handshakes[-1]
    assert handshake.path == "/openai/realtime"
    assert handshake.query == {"api-version": "2024-10-01-preview", "deployment": "rt-deploy"}
    assert handshake.headers["api-key"] == UPSTREAM_KEY and "authorization" not in handshake.headers


def test_concurrency_limit_refuses_a_second_session_until_the_first_ends(live, upstream, fake, funded_key):
    user, key = funded_key(concurrency_limit=1)
    with open_session(live, key) as first:
        recv(first)
        with open_session(live, key) as second:
            assert recv(second)["error"]["code"] == "concurrency_limit_exceeded"
            assert closed_with(second)[0] == 1013
    assert settled(lambda: session_closed(user, charges=0))
    with open_session(live, key) as third:
        assert recv(third)["type"] == "session.created"


def test_idle_sessions_are_closed(live, upstream, fake, funded_key, settings):
    settings.REALTIME_IDLE_TIMEOUT_SECONDS = 0.3
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        assert recv(ws)["error"]["code"] == "idle_timeout"
        assert closed_with(ws) == (1000, "idle_timeout")
    assert settled(lambda: session_closed(user, charges=0))
    assert fake.wait(lambda: fake.sessions[-1].ended)


def test_sessions_end_at_their_maximum_length(live, upstream, fake, funded_key, settings):
    settings.REALTIME_MAX_SESSION_SECONDS = 0.4
    user, key = funded_key()
    with open_session(live, key) as ws:
        recv(ws)
        send(ws, {"type": "fake.echo"})
        recv(ws)
        assert recv(ws)["error"]["code"] == "session_expired"
        assert closed_with(ws)[0] == 1000
    assert settled(lambda: session_closed(user, charges=0))


def test_other_websocket_paths_are_refused(live):
    with pytest.raises(InvalidStatus) as caught:
        connect(live.url.replace("http://", "ws://") + "/v1/chat/completions", open_timeout=5, proxy=None)
    assert caught.value.response.status_code == 404


def test_demo_upstream_end_to_end(live, bootstrap_demo, funded_key):
    user, key = funded_key()
    with open_session(live, key, model="demo-realtime") as ws:
        assert recv(ws)["type"] == "session.created"
        send(ws, {"type": "session.update", "session": {"modalities": ["text"]}})
        assert recv(ws)["session"]["modalities"] == ["text"]
        send(ws, {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi demo"}]}})
        recv(ws)
        send(ws, {"type": "response.create"})
        events = events_until(ws, "response.done")
        text = "".join(e["delta"] for e in events if e["type"] == "response.text.delta")
        assert "Hi demo" in text
        send(ws, {"type": "response.create", "response": {"modalities": ["text", "audio"]}})
        spoken = events_until(ws, "response.done")
    assert any(e["type"] == "response.audio.delta" and e["delta"] for e in spoken)
    assert settled(lambda: session_closed(user, charges=2))
    price = ModelPrice.objects.get(model="demo-realtime")
    for log, done in zip(UsageLog.objects.filter(user=user).order_by("id"), [events[-1], spoken[-1]]):
        usage = done["response"]["usage"]
        assert log.prompt_tokens == usage["input_tokens"] and log.completion_tokens == usage["output_tokens"]
        assert log.audio_completion_tokens == usage["output_token_details"]["audio_tokens"]
        assert log.quota == quota_for_tokens(
            prompt_tokens=log.prompt_tokens, completion_tokens=log.completion_tokens, group_ratio=Decimal(1),
            model_ratio=price.model_ratio, completion_ratio=price.completion_ratio,
            audio_completion_tokens=log.audio_completion_tokens,
            audio_completion_ratio=price.audio_completion_ratio)
    assert UsageLog.objects.filter(user=user).order_by("id").last().audio_completion_tokens > 0


def test_openai_sdk_realtime_client(live, upstream, fake, funded_key):
    user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=live.url + "/v1",
                           websocket_base_url=live.url.replace("http://", "ws://") + "/v1", max_retries=0)
    with client.beta.realtime.connect(model=MODEL) as conn:
        conn.session.update(session={"modalities": ["text"]})
        conn.conversation.item.create(item={"type": "message", "role": "user",
                                            "content": [{"type": "input_text", "text": "Hello"}]})
        conn.response.create()
        kinds, text = [], ""
        for event in conn:
            kinds.append(event.type)
            if event.type == "response.text.delta":
                text += event.delta
            if event.type == "response.done":
                assert event.response.usage.input_tokens == fake.behaviour.input_tokens
                break
    assert kinds[0] == "session.created" and text == fake.behaviour.text
    assert settled(lambda: session_closed(user, charges=1))
