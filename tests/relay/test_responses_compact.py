"""`/v1/responses/compact` (Codex compacts long conversations with it): relayed natively, billed on its usage."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from billing.groups import group_default
from billing.models import ModelPrice, UsageLog
from relay.upstreams import upstream_save
from tests.fakes.openai_upstream import FakeOpenAI
from tests.support import settled

CODEX = "gpt-5.1-codex"
TURNS = [{"role": "user", "content": "Refactor the parser."},
         {"role": "assistant", "content": "Done: split into three functions."}]


@pytest.fixture(scope="module")
def oai():
    with FakeOpenAI(api_key="sk-oa-up") as fake:
        yield fake


@pytest.fixture
def codex(oai, transactional_db):
    oai.reset()
    ModelPrice.objects.create(model=CODEX, provider="openai", model_ratio=Decimal("0.625"),
                              completion_ratio=Decimal(8))
    return upstream_save(name="oai", type="openai", base_url=oai.url, keys="sk-oa-up", served_models=[CODEX],
                         groups=[group_default().name])


def test_a_compaction_is_relayed_and_billed(live, oai, codex, funded_key):
    oai.behave(CODEX, prompt_tokens=4000, completion_tokens=300)
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    compacted = client.responses.compact(model=CODEX, input=TURNS, instructions="Keep decisions.")
    assert compacted.object == "response.compaction" and compacted.output[-1].type == "compaction"
    sent = oai.requests[-1]
    assert sent.path == "/v1/responses/compact" and sent.json["input"] == TURNS and "stream" not in sent.json
    assert settled(lambda: UsageLog.objects.exists())
    log = UsageLog.objects.get()
    assert (log.endpoint, log.prompt_tokens, log.completion_tokens) == ("/v1/responses/compact", 4000, 300)
    assert log.quota == 4000  # 0.625 x (4000 + 300 x 8)


def test_what_cannot_be_compacted_is_refused_before_anything_is_reserved(live, oai, codex, funded_key):
    _user, key = funded_key()
    client = openai.OpenAI(api_key=key, base_url=f"{live.url}/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="'input' or 'previous_response_id' is required"):
        client.post("/responses/compact", body={"model": CODEX}, cast_to=object)
    with pytest.raises(openai.BadRequestError, match="not streamed"):
        client.post("/responses/compact", body={"model": CODEX, "input": TURNS, "stream": True}, cast_to=object)
    codex.extras = {"responses": False}  # an upstream without the Responses API cannot compact
    codex.save()
    with pytest.raises(openai.BadRequestError, match="not offered on /v1/responses/compact"):
        client.responses.compact(model=CODEX, input=TURNS)
    assert oai.requests == [] and not UsageLog.objects.exists()
