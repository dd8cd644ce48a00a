"""Management API for upstreams (new-api's "channels"): operators only; keys are write-only."""

from __future__ import annotations

import asyncio
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import IsPlatformAdmin, ok, paginated, validated
from config.api_fields import PAGE_PARAMETERS, FlexibleListField, reject_nul, unix, validated_query
from config.errors import NotFound
from relay.models import Upstream, UpstreamStatus
from relay.probe import upstream_models_fetch, upstream_test
from relay.providers import PROVIDER_CHOICES
from relay.upstream_balance import BalanceUnavailable, upstream_balance_refresh
from relay.upstreams import upstream_save

STATUS_ALIASES = {1: "enabled", 2: "disabled", 3: "auto_disabled"}


class UpstreamStatusField(serializers.ChoiceField):
    """An upstream's status by name, or by new-api's number (1 enabled, 2 disabled, 3 disabled automatically)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=UpstreamStatus.choices, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        """new-api's numbers become names; anything else (a list or an object too) is checked as a choice."""
        alias = STATUS_ALIASES.get(data) if isinstance(data, (int, str)) else None
        return super().to_internal_value(alias or data)


class UpstreamQuery(serializers.Serializer):
    type = serializers.CharField(required=False, allow_blank=True)
    status = serializers.CharField(required=False, allow_blank=True)


class ProbeQuery(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True)


class UpstreamIn(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    type = serializers.ChoiceField(choices=PROVIDER_CHOICES)
    base_url = serializers.URLField(required=False, allow_blank=True, max_length=255)
    key = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    models = FlexibleListField(required=False)
    groups = FlexibleListField(required=False)
    model_mapping = serializers.DictField(child=serializers.CharField(), required=False, validators=[reject_nul])
    priority = serializers.IntegerField(required=False, min_value=-1_000_000, max_value=1_000_000)
    weight = serializers.IntegerField(required=False, min_value=0, max_value=1_000_000)
    status = UpstreamStatusField(required=False)
    test_model = serializers.CharField(required=False, allow_blank=True, max_length=128)
    connect_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=600)
    first_byte_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=3600)
    total_timeout = serializers.FloatField(required=False, min_value=0.1, max_value=86400)
    extras = serializers.DictField(required=False, validators=[reject_nul])
    param_override = serializers.DictField(required=False, validators=[reject_nul])
    header_override = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False),
                                            required=False, validators=[reject_nul])
    system_prompt = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, max_length=100_000,
                                          validators=[reject_nul])
    system_prompt_prepend = serializers.BooleanField(required=False)
    status_code_mapping = serializers.DictField(child=serializers.IntegerField(), required=False)


class UpstreamUpdateIn(UpstreamIn):
    id = serializers.IntegerField()
    name = serializers.CharField(max_length=64, required=False)
    type = serializers.ChoiceField(choices=PROVIDER_CHOICES, required=False)


def upstream_render(upstream: Upstream) -> dict[str, Any]:
    return {
        "id": upstream.pk, "name": upstream.name, "type": upstream.type, "base_url": upstream.base_url,
        "key_count": upstream.key_count, "disabled_key_count": len(upstream.disabled_keys or {}),
        "models": upstream.served_models, "model_mapping": upstream.model_mapping,
        "groups": [g.name for g in upstream.groups.all()], "priority": upstream.priority, "weight": upstream.weight,
        "status": upstream.status, "status_reason": upstream.status_reason, "test_model": upstream.test_model,
        "response_time": upstream.last_test_latency_ms, "test_time": unix(upstream.last_tested_at),
        "connect_timeout": upstream.connect_timeout, "first_byte_timeout": upstream.first_byte_timeout,
        "total_timeout": upstream.total_timeout, "extras": upstream.extras, "param_override": upstream.param_override,
        "header_override": upstream.header_override, "system_prompt": upstream.system_prompt,
        "system_prompt_prepend": upstream.system_prompt_prepend, "status_code_mapping": upstream.status_code_mapping,
        "created_time": unix(upstream.created_at),
        "balance": str(upstream.balance) if upstream.balance is not None else None,
        "balance_currency": upstream.balance_currency, "balance_updated_time": unix(upstream.balance_updated_at),
    }


def _save(data: dict[str, Any], upstream: Upstream | None = None) -> Upstream:
    fields = {k: v for k, v in data.items() if k not in {"id", "key", "models", "groups"}}
    if "models" in data:
        fields["served_models"] = data["models"]
    key = data.get("key") or None  # blank on update keeps the stored keys
    return upstream_save(upstream=upstream, keys=key, groups=data.get("groups"), **fields)


@extend_schema(methods=["GET"], operation_id="channel_list", parameters=[UpstreamQuery, *PAGE_PARAMETERS],
               responses=dict)
@extend_schema(methods=["POST"], request=UpstreamIn, responses=dict)
@extend_schema(methods=["PUT"], request=UpstreamUpdateIn, responses=dict)
@api_view(["GET", "POST", "PUT"])
@permission_classes([IsPlatformAdmin])
def upstreams(request: Request) -> Response:
    if request.method == "GET":
        rows = Upstream.objects.prefetch_related("groups").order_by("-priority", "id")
        query = validated_query(UpstreamQuery, request)
        if query.get("type"):
            rows = rows.filter(type=query["type"])
        if query.get("status"):
            rows = rows.filter(status=query["status"])
        return paginated(request, rows, upstream_render)
    if request.method == "POST":
        data = validated(UpstreamIn, request)
        return ok(upstream_render(_save(data)), _("Upstream created."), http_status=201)
    data = validated(UpstreamUpdateIn, request)
    upstream = _get(data["id"])
    return ok(upstream_render(_save(data, upstream)), _("Upstream updated."))


@extend_schema(responses=dict)
@api_view(["GET", "DELETE"])
@permission_classes([IsPlatformAdmin])
def upstream_detail(request: Request, upstream_id: int) -> Response:
    upstream = _get(upstream_id)
    if request.method == "DELETE":
        upstream.delete()
        return ok(None, _("Upstream deleted."))
    return ok(upstream_render(upstream))


@extend_schema(parameters=[ProbeQuery], responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def upstream_test_view(request: Request, upstream_id: int) -> Response:
    """Send a one-token chat request through the upstream; `?model=` picks the model (default: its test model)."""
    result = upstream_test(upstream=_get(upstream_id), model=validated_query(ProbeQuery, request).get("model", ""))
    message = _("The upstream answered.") if result.ok else result.message
    return Response({"success": result.ok, "message": message, "time": result.latency_ms / 1000,
                     "data": {"latency_ms": result.latency_ms}})


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def upstream_models_view(request: Request, upstream_id: int) -> Response:
    """The models the upstream itself lists, to fill in its `models`."""
    result = asyncio.run(upstream_models_fetch(_get(upstream_id)))
    return Response({"success": result.ok, "message": result.message, "data": result.models})


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def upstream_balance_view(request: Request, upstream_id: int) -> Response:
    """Ask the upstream for its remaining balance (kept on the upstream)."""
    try:
        balance = upstream_balance_refresh(upstream=_get(upstream_id))
    except BalanceUnavailable as exc:
        return Response({"success": False, "message": str(exc), "data": None})
    return Response({"success": True, "message": "", "data": {"balance": str(balance.amount),
                                                              "currency": balance.currency}})


def _get(upstream_id: int) -> Upstream:
    upstream = Upstream.objects.prefetch_related("groups").filter(pk=upstream_id).first()
    if upstream is None:
        raise NotFound(_("Upstream not found."))
    return upstream
