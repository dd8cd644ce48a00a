"""The public home page: groups with ratios, the base URL, the quick start; in English and Chinese."""

from decimal import Decimal

from billing.groups import group_save


def test_home_lists_selectable_groups_and_the_base_url(client, default_group):
    group_save(name="cheap", ratio=Decimal("0.3"), description="Busy at peak hours", selectable=True)
    group_save(name="internal", ratio=Decimal("0.1"), selectable=False)
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "cheap" in page and "0.3x" in page and "Busy at peak hours" in page
    assert "internal" not in page
    assert "http://testserver/v1" in page and "Quick start" in page


def test_language_switch_round_trip(client, default_group):
    r = client.post("/i18n/setlang/", {"language": "en", "next": "/"}, follow=True)
    assert r.status_code == 200 and '<html lang="en">' in r.content.decode()
    r = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"}, follow=True)
    assert '<html lang="zh-hans">' in r.content.decode()
