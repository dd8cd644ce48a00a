"""The public home page, and two properties of every page: form controls are labelled, the language switches."""

from __future__ import annotations

from decimal import Decimal
from html.parser import HTMLParser

import pytest

from billing.groups import group_save
from relay.upstreams import upstream_save
from tokens.services import token_create


def test_home_lists_selectable_groups_and_the_base_url(client, default_group):
    group_save(name="cheap", ratio=Decimal("0.3"), description="Busy at peak hours", selectable=True)
    group_save(name="internal", ratio=Decimal("0.1"), selectable=False)
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "cheap" in page and "0.3x" in page and "Busy at peak hours" in page
    assert "internal" not in page
    assert "http://testserver/v1" in page and "Quick start" in page
    assert 'href="/register/"' in page and "$1.00 of trial credit" in page


def test_home_names_the_model_families_served(client, default_group):
    upstream_save(name="ds", type="deepseek", base_url="http://127.0.0.1:9", keys="sk-x",
                  served_models=["deepseek-chat"], groups=["default"])
    page = client.get("/").content.decode()
    assert "DeepSeek" in page and "1 model is available" in page


def test_language_switch_round_trip(client, default_group):
    r = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True)
    assert r.status_code == 200 and '<html lang="en">' in r.content.decode()
    r = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"}, follow=True)
    assert '<html lang="zh-hans">' in r.content.decode()


class _Controls(HTMLParser):
    """Collects form controls and the ids that labels point at."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.labelled: set[str] = set()
        self.label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.labelled.add(a["for"])
        if tag in {"input", "select", "textarea"} and a.get("type") not in {"hidden", "submit", "button"}:
            self.controls.append({**a, "_wrapped": "yes" if self.label_depth else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth -= 1


@pytest.mark.parametrize("path", ["/", "/register/", "/login/", "/dashboard/", "/keys/", "/topup/", "/logs/",
                                  "/pricing/", "/docs/", "/settings/", "/account/password/"])
def test_every_form_control_has_a_label(client, user, path):
    token_create(user=user, name="k", unlimited_quota=True)
    if path not in {"/register/", "/login/"}:
        client.force_login(user)
    parser = _Controls()
    parser.feed(client.get(path).content.decode())
    unlabelled = [c.get("name") for c in parser.controls
                  if not (c.get("id") in parser.labelled or c.get("aria-label") or c["_wrapped"])]
    assert parser.controls and unlabelled == [], path
