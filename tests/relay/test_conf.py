"""The relay's copy of Django's settings (`relay.conf`): read once, dropped on every change."""

from __future__ import annotations

from django.conf import settings as django_settings
from django.test import override_settings

from relay.conf import settings


def test_a_value_is_read_once_then_kept(monkeypatch) -> None:
    settings.forget()
    first = settings.RELAY_RETRIES
    monkeypatch.setattr(django_settings._wrapped, "RELAY_RETRIES", first + 1)  # no signal: the copy is not told
    monkeypatch.delitem(django_settings.__dict__, "RELAY_RETRIES", raising=False)
    assert django_settings.RELAY_RETRIES == first + 1
    assert settings.RELAY_RETRIES == first
    settings.forget()
    assert settings.RELAY_RETRIES == first + 1
    monkeypatch.undo()
    settings.forget()


def test_a_changed_setting_is_read_anew() -> None:
    before = settings.RELAY_RETRIES
    with override_settings(RELAY_RETRIES=before + 7):
        assert settings.RELAY_RETRIES == before + 7
    assert settings.RELAY_RETRIES == before


def test_pytest_djangos_settings_fixture_reaches_it(settings) -> None:  # noqa: F811 (the fixture)
    from relay.conf import settings as relay_settings

    relay_settings.RELAY_MAX_BODY_BYTES  # noqa: B018 (copied)
    settings.RELAY_MAX_BODY_BYTES = 1234
    assert relay_settings.RELAY_MAX_BODY_BYTES == 1234


def test_a_missing_setting_raises_attribute_error() -> None:
    assert getattr(settings, "NO_SUCH_SETTING_HERE", "default") == "default"
