"""Run-time site options through the management API (operators), and the public notice."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import IsPlatformAdmin, ok, validated
from config.options import option, option_set, option_shown, options_all


class OptionIn(serializers.Serializer):
    key = serializers.CharField(max_length=64)
    value = serializers.JSONField(allow_null=True, help_text="null: back to the environment's value.")


@extend_schema(methods=["GET"], responses=dict)
@extend_schema(methods=["PUT"], request=OptionIn, responses=dict)
@api_view(["GET", "PUT"])
@permission_classes([IsPlatformAdmin])
def options(request: Request) -> Response:
    """Every option with its value and default; PUT sets one (`null` puts the environment's value back)."""
    if request.method == "GET":
        return ok(options_all())
    data: dict[str, Any] = validated(OptionIn, request)
    value = option_set(name=data["key"], value=data["value"])
    return ok({"key": data["key"], "value": option_shown(value)}, _("Option saved."))


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([AllowAny])
def notice(request: Request) -> Response:
    return ok(option("NOTICE"))
