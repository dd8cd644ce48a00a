"""Serializer fields for the loose input existing new-api scripts send (delimited lists, unix times, numeric statuses)."""

from __future__ import annotations

import re
from datetime import datetime, timezone as dt_timezone
from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

MAX_QUOTA = 2**62


class FlexibleListField(serializers.Field):
    """A list of strings, given as a JSON array or as one string separated by commas or newlines."""

    default_error_messages = {"invalid": _("Expected a list of strings or a comma-separated string.")}

    def to_internal_value(self, data: Any) -> list[str]:
        if isinstance(data, str):
            items = re.split(r"[,\n]", data)
        elif isinstance(data, list) and all(isinstance(item, str) for item in data):
            items = data
        else:
            self.fail("invalid")
        return [item.strip() for item in items if item.strip()]

    def to_representation(self, value: list[str]) -> list[str]:
        return list(value)


class UnixTimeField(serializers.Field):
    """Seconds since the epoch, -1 (or null) meaning never; becomes an aware datetime or None."""

    default_error_messages = {"invalid": _("Expected a unix time in seconds, or -1 for never.")}

    def to_internal_value(self, data: Any) -> datetime | None:
        if data is None or data == -1:
            return None
        if isinstance(data, bool) or not isinstance(data, int) or not 0 < data < 253402300800:
            self.fail("invalid")
        return datetime.fromtimestamp(data, tz=dt_timezone.utc)

    def to_representation(self, value: datetime | None) -> int:
        return -1 if value is None else int(value.timestamp())


class StatusField(serializers.Field):
    """`enabled` / `disabled`, also accepting new-api's numbers (1 enabled, 2 disabled) and booleans."""

    default_error_messages = {"invalid": _("Expected 'enabled' or 'disabled'.")}
    _ALIASES = {"enabled": "enabled", "disabled": "disabled", 1: "enabled", 2: "disabled", True: "enabled",
                False: "disabled", "1": "enabled", "2": "disabled"}

    def to_internal_value(self, data: Any) -> str:
        try:
            return self._ALIASES[data]
        except (KeyError, TypeError):
            self.fail("invalid")

    def to_representation(self, value: str) -> str:
        return value


def quota_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_QUOTA, **kwargs)


def unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
