"""Serializer fields for the loose input existing new-api scripts send (delimited lists, unix times, numeric statuses)."""

from __future__ import annotations

import re
from datetime import datetime, timezone as dt_timezone
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request

MAX_QUOTA = 2**62
MAX_POSITIVE_INT = 2**31 - 1  # a PositiveIntegerField column (PostgreSQL integer)
MAX_RPM_LIMIT = 1_000_000
MAX_CONCURRENCY_LIMIT = 100_000
# Unix times end before the year 10000 (datetime's limit).
MAX_UNIX_TIME = 253402300799

# OpenAPI 3.0 schemas of what each field accepts, as drf-spectacular documents them.
_STRINGS = {"type": "array", "items": {"type": "string"}}
_DELIMITED = {"type": "string", "description": "Items separated by commas or newlines."}
_NEVER = {"type": "integer", "enum": [-1], "description": "Never."}
_UNIX_TIME = {"type": "integer", "minimum": 1, "maximum": MAX_UNIX_TIME, "description": "Seconds since the epoch."}
_STATUS_NAMES = {"type": "string", "enum": ["enabled", "disabled", "1", "2"]}
_STATUS_NUMBERS = {"type": "integer", "enum": [1, 2], "description": "new-api's numbers: 1 enabled, 2 disabled."}
_STATUS_BOOLEANS = {"type": "boolean", "description": "true enabled, false disabled."}

# The query parameters of every paginated list (read by `config.api.page_params`).
PAGE_PARAMETERS = [
    OpenApiParameter("p", int, description="Page number, from 1."),
    OpenApiParameter("page_size", int, description="Rows per page, 1 to 100 (default 10)."),
]


def _has_nul(value: Any) -> bool:
    """Whether a NUL character is in any string or key of a JSON value (walked without recursion: nesting is free)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str) and "\x00" in item:
            return True
        if isinstance(item, dict):
            pending += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple)):
            pending += item
    return False


def reject_nul(value: Any) -> None:
    """Validator: no NUL character in any string or key of a value; PostgreSQL stores none in text or jsonb."""
    if _has_nul(value):
        raise serializers.ValidationError(_("Null characters are not allowed."))


@extend_schema_field({"oneOf": [_STRINGS, _DELIMITED]})
class FlexibleListField(serializers.Field):
    """A list of strings, given as a JSON array or as one string separated by commas or newlines."""

    default_error_messages = {"invalid": _("Expected a list of strings or a comma-separated string.")}
    default_validators = [reject_nul]

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


@extend_schema_field({"oneOf": [_NEVER, _UNIX_TIME]})
class UnixTimeField(serializers.Field):
    """Seconds since the epoch, -1 (or null) meaning never; becomes an aware datetime or None."""

    default_error_messages = {"invalid": _("Expected a unix time in seconds, or -1 for never.")}

    def to_internal_value(self, data: Any) -> datetime | None:
        if data is None or data == -1:
            return None
        if isinstance(data, bool) or not isinstance(data, int) or not 0 < data <= MAX_UNIX_TIME:
            self.fail("invalid")
        return datetime.fromtimestamp(data, tz=dt_timezone.utc)

    def to_representation(self, value: datetime | None) -> int:
        return -1 if value is None else int(value.timestamp())


@extend_schema_field({"oneOf": [_STATUS_NAMES, _STATUS_NUMBERS, _STATUS_BOOLEANS]})
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


def validated_query(serializer_class: type[serializers.Serializer], request: Request) -> dict[str, Any]:
    """The query string checked by `serializer_class` (a 400 in the envelope otherwise), blank values left out.

    Filters go through a serializer before they reach a query: PostgreSQL refuses text with NUL characters, and
    DRF's CharField rejects them first."""
    serializer = serializer_class(data={k: v for k, v in request.query_params.items() if v != ""})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def quota_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=0, max_value=MAX_QUOTA, **kwargs)


def unix(value: datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())
