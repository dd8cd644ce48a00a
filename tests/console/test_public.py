"""Models and pricing, and the API docs, whose Python examples are run against the live server as written."""

from __future__ import annotations

import contextlib
import html
import io
from decimal import Decimal

import httpx

from billing.groups import group_default, group_save
from accounts.services import user_set_group
from billing.models import ModelPrice, UsageLog, UserGroup
from relay.upstreams import upstream_save
from tests.support import settled
from tokens.services import token_create


def _offer(model: str, groups: list[str], **price) -> None:
    ModelPrice.objects.create(model=model, provider=price.pop("provider", "openai"), **price)
    upstream_save(name=f"up-{model}", type="openai", base_url="http://127.0.0.1:9", keys="sk-x",
                  served_models=[model], groups=groups)


def test_pricing_lists_offered_models_per_group(client, make_user):
    group_default()
    group_save(name="vip", ratio=Decimal("0.5"), description="Half price", selectable=True)
    group_save(name="internal", ratio=Decimal("0.1"), selectable=False)
    _offer("tok-model", ["default", "vip"], model_ratio=Decimal("1.25"), completion_ratio=Decimal(4))
    _offer("img-model", ["vip"], category="image", price_per_call=Decimal("0.04"))
    _offer("speech-model", ["internal"], category="audio", price_per_minute=Decimal("0.006"))
    ModelPrice.objects.create(model="unserved", provider="openai")
    page = client.get("/pricing/").content.decode()
    assert "tok-model" in page and "img-model" in page
    assert "unserved" not in page and "speech-model" not in page and "internal" not in page
    assert "$2.50 / $10.00" in page and "$1.25 / $5.00" in page     # per 1M tokens, default and vip
    assert "$0.02 / call" in page                                      # 0.04 x 0.5 in vip
    # A user whose own group is not selectable also sees that group's column and models.
    insider = user_set_group(user=make_user("insider"), group=UserGroup.objects.get(name="internal"))
    client.force_login(insider)
    page = client.get("/pricing/").content.decode()
    assert "speech-model" in page and "$0.0006 / minute" in page


def test_pricing_filters_with_htmx_return_the_table(client, htmx, default_group):
    _offer("alpha-chat", ["default"])
    _offer("beta-embed", ["default"], category="embedding")
    part = client.get("/pricing/", {"q": "alpha"}, **htmx("price-table")).content.decode()
    assert part.startswith('<div id="price-table">') and "alpha-chat" in part and "beta-embed" not in part
    part = client.get("/pricing/", {"category": "embedding"}, **htmx("price-table")).content.decode()
    assert "beta-embed" in part and "alpha-chat" not in part


def _example(page: str, element_id: str) -> str:
    return html.unescape(page.split(f'<code id="{element_id}">')[1].split("</code>")[0])


def test_docs_examples_work_as_written(live, bootstrap_demo, make_user):
    page = httpx.get(live.url + "/docs/", headers={"accept-language": "en"}).text
    assert f"{live.url}/v1" in page and "demo-chat" in page
    curl = _example(page, "example-curl")
    assert curl.startswith(f"curl {live.url}/v1/chat/completions") and '"model": "demo-chat"' in curl
    user = make_user("reader")
    _token, key = token_create(user=user, name="docs", unlimited_quota=True)
    for element_id, expected in [("example-python-openai", "Hello!"), ("example-python-anthropic", "Hello!")]:
        source = _example(page, element_id).replace("sk-your-key", key)
        out, namespace = io.StringIO(), {}
        with contextlib.redirect_stdout(out):
            exec(compile(source, element_id, "exec"), namespace)
        namespace["client"].close()
        assert expected in out.getvalue(), element_id
    assert settled(lambda: UsageLog.objects.filter(user=user).count() == 2)
    js = _example(page, "example-js-openai")
    assert f'baseURL: "{live.url}/v1"' in js


def test_docs_pick_a_model_the_visitor_can_use(client, default_group):
    _offer("only-model", ["default"])
    page = client.get("/docs/").content.decode()
    assert '"model": "only-model"' in page
