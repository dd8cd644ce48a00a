"""Django's settings as the relay's per-request code reads them: each value copied on its first read, dropped when a
setting changes (`override_settings`, pytest-django's `settings`).

A read of `django.conf.settings` goes through its lazy wrapper's `__getattribute__`, which asks every value for a
proxy mark (an int has none: an AttributeError raised and caught each time); at the relay's several reads a
request that was about 2% of a process's interpreter time. Here a read after the first is a plain attribute.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings
from django.core.signals import setting_changed


class _Settings:
    def __getattr__(self, name: str) -> Any:  # only for what is not copied yet
        value = getattr(django_settings, name)
        self.__dict__[name] = value
        return value

    def forget(self, **_: Any) -> None:
        self.__dict__.clear()


settings = _Settings()
setting_changed.connect(settings.forget, weak=False)
