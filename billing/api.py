"""Management API for billing: card-key batches, groups, prices and usage logs."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from billing.groups import group_delete, group_save, price_save
from billing.models import ModelCategory, ModelPrice, RedemptionCode, UsageLog, UserGroup
from billing.redemption import redemption_batch_create, redemption_delete
from billing.selectors import LogFilter, price_list, price_render, usage_logs, usage_stat
from config.api import IsPlatformAdmin, ok, paginated, validated
from config.api_fields import (
    MAX_CONCURRENCY_LIMIT, MAX_POSITIVE_INT, MAX_QUOTA, MAX_RPM_LIMIT, PAGE_PARAMETERS, UnixTimeField, reject_nul, unix,
    validated_query,
)
from config.errors import NotFound

RATIO = {"max_digits": 14, "decimal_places": 6, "min_value": 0}


# --- Card keys -----------------------------------------------------------------------------------------------

class BatchIn(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    quota = serializers.IntegerField(min_value=1, max_value=MAX_QUOTA)
    count = serializers.IntegerField(min_value=1, max_value=1000)
    expired_time = UnixTimeField(required=False, allow_null=True)


class CardQuery(serializers.Serializer):
    name = serializers.CharField(required=False, allow_blank=True)


def card_render(card: RedemptionCode) -> dict[str, Any]:
    return {
        "id": card.pk, "code": card.code_hint, "name": card.batch_name, "quota": card.quota, "status": card.status,
        "created_time": unix(card.created_at), "expired_time": unix(card.expires_at) or -1,
        "redeemed_by": card.redeemed_by.username if card.redeemed_by else None,
        "redeemed_time": unix(card.redeemed_at),
    }


@extend_schema(methods=["GET"], parameters=[CardQuery, *PAGE_PARAMETERS], responses=dict)
@extend_schema(methods=["POST"], request=BatchIn, responses=dict)
@api_view(["GET", "POST"])
@permission_classes([IsPlatformAdmin])
def redemptions(request: Request) -> Response:
    if request.method == "GET":
        cards = RedemptionCode.objects.select_related("redeemed_by").order_by("-id")
        name = validated_query(CardQuery, request).get("name")
        if name:
            cards = cards.filter(batch_name=name)
        return paginated(request, cards, card_render)
    data = validated(BatchIn, request)
    codes = redemption_batch_create(
        name=data["name"], quota=data["quota"], count=data["count"], created_by_id=request.user.pk,
        expires_at=data.get("expired_time"),
    )
    return ok(codes, _("Card keys created. Save them now: they are shown only once."), http_status=201)


@extend_schema(responses=dict)
@api_view(["DELETE"])
@permission_classes([IsPlatformAdmin])
def redemption_detail(request: Request, card_id: int) -> Response:
    card = RedemptionCode.objects.filter(pk=card_id).first()
    if card is None:
        raise NotFound(_("Card key not found."))
    redemption_delete(card=card)
    return ok(None, _("Card key deleted."))


# --- Groups --------------------------------------------------------------------------------------------------

class GroupIn(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    ratio = serializers.DecimalField(**RATIO)
    description = serializers.CharField(required=False, allow_blank=True, max_length=255)
    selectable = serializers.BooleanField(required=False)
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_RPM_LIMIT)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                 max_value=MAX_CONCURRENCY_LIMIT)


class GroupUpdateIn(GroupIn):
    id = serializers.IntegerField()
    name = serializers.CharField(max_length=64, required=False)
    ratio = serializers.DecimalField(required=False, **RATIO)


def group_render(group: UserGroup) -> dict[str, Any]:
    return {
        "id": group.pk, "name": group.name, "ratio": str(group.ratio.normalize()), "description": group.description,
        "selectable": group.selectable, "rpm_limit": group.rpm_limit, "concurrency_limit": group.concurrency_limit,
    }


@extend_schema(methods=["GET"], parameters=PAGE_PARAMETERS, responses=dict)
@extend_schema(methods=["POST"], request=GroupIn, responses=dict)
@extend_schema(methods=["PUT"], request=GroupUpdateIn, responses=dict)
@api_view(["GET", "POST", "PUT"])
@permission_classes([IsPlatformAdmin])
def groups(request: Request) -> Response:
    if request.method == "GET":
        return paginated(request, UserGroup.objects.order_by("name"), group_render)
    if request.method == "POST":
        data = validated(GroupIn, request)
        return ok(group_render(group_save(**data)), _("Group created."), http_status=201)
    data = validated(GroupUpdateIn, request)
    fields = dict(data)
    group = _get(UserGroup, fields.pop("id"))
    return ok(group_render(group_save(group=group, **fields)), _("Group updated."))


@extend_schema(responses=dict)
@api_view(["DELETE"])
@permission_classes([IsPlatformAdmin])
def group_detail(request: Request, group_id: int) -> Response:
    group_delete(group=_get(UserGroup, group_id))
    return ok(None, _("Group deleted."))


# --- Prices --------------------------------------------------------------------------------------------------

class PriceIn(serializers.Serializer):
    model = serializers.CharField(max_length=128)
    provider = serializers.CharField(required=False, allow_blank=True, max_length=64)
    category = serializers.ChoiceField(choices=ModelCategory.choices, required=False)
    context_window = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_POSITIVE_INT)
    model_ratio = serializers.DecimalField(required=False, **RATIO)
    completion_ratio = serializers.DecimalField(required=False, **RATIO)
    cache_ratio = serializers.DecimalField(required=False, **RATIO)
    cache_write_ratio = serializers.DecimalField(required=False, **RATIO)
    audio_ratio = serializers.DecimalField(required=False, **RATIO)
    audio_completion_ratio = serializers.DecimalField(required=False, **RATIO)
    long_context_threshold = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                      max_value=MAX_POSITIVE_INT)
    long_context_prompt_multiplier = serializers.DecimalField(required=False, **RATIO)
    long_context_completion_multiplier = serializers.DecimalField(required=False, **RATIO)
    price_per_call = serializers.DecimalField(required=False, allow_null=True, **RATIO)
    price_per_minute = serializers.DecimalField(required=False, allow_null=True, **RATIO)
    price_variants = serializers.DictField(child=serializers.DecimalField(**RATIO), required=False,
                                           validators=[reject_nul])

    def validate(self, attrs: dict) -> dict:
        for name in ("model_ratio", "completion_ratio", "cache_ratio", "cache_write_ratio", "audio_ratio",
                     "audio_completion_ratio", "price_per_call", "price_per_minute", "long_context_prompt_multiplier",
                     "long_context_completion_multiplier"):
            if attrs.get(name) is not None and attrs[name] < 0:
                raise serializers.ValidationError({name: _("Must not be negative.")})
        if any(value < 0 for value in attrs.get("price_variants", {}).values()):
            raise serializers.ValidationError({"price_variants": _("Prices must not be negative.")})
        if "price_variants" in attrs:
            attrs["price_variants"] = {key: f"{value.normalize():f}" for key, value in attrs["price_variants"].items()}
        return attrs


class PriceQuery(serializers.Serializer):
    model = serializers.CharField(required=False, allow_blank=True)


class PriceUpdateIn(PriceIn):
    id = serializers.IntegerField()
    model = serializers.CharField(max_length=128, required=False)


@extend_schema(operation_id="pricing_public", responses=dict)
@api_view(["GET"])
@permission_classes([AllowAny])
def public_pricing(request: Request) -> Response:
    """Every model's price in each group a user may pick (and the caller's own group when logged in)."""
    shown = list(UserGroup.objects.filter(selectable=True))
    if request.user.is_authenticated and request.user.group not in shown:
        shown.append(request.user.group)
    return ok(price_list(groups=shown))


@extend_schema(methods=["GET"], operation_id="pricing_list", parameters=[PriceQuery, *PAGE_PARAMETERS],
               responses=dict)
@extend_schema(methods=["POST"], request=PriceIn, responses=dict)
@extend_schema(methods=["PUT"], request=PriceUpdateIn, responses=dict)
@api_view(["GET", "POST", "PUT"])
@permission_classes([IsPlatformAdmin])
def prices(request: Request) -> Response:
    if request.method == "GET":
        rows = ModelPrice.objects.order_by("model")
        model = validated_query(PriceQuery, request).get("model")
        if model:
            rows = rows.filter(model__icontains=model)
        return paginated(request, rows, price_render)
    if request.method == "POST":
        data = validated(PriceIn, request)
        return ok(price_render(price_save(**data)), _("Price created."), http_status=201)
    data = validated(PriceUpdateIn, request)
    fields = dict(data)
    price = _get(ModelPrice, fields.pop("id"))
    return ok(price_render(price_save(price=price, **fields)), _("Price updated."))


@extend_schema(responses=dict)
@api_view(["DELETE"])
@permission_classes([IsPlatformAdmin])
def price_detail(request: Request, price_id: int) -> Response:
    _get(ModelPrice, price_id).delete()
    return ok(None, _("Price deleted."))


# --- Usage logs ----------------------------------------------------------------------------------------------

class LogQuery(serializers.Serializer):
    start_timestamp = UnixTimeField(required=False, allow_null=True)
    end_timestamp = UnixTimeField(required=False, allow_null=True)
    model_name = serializers.CharField(required=False, allow_blank=True)
    token_name = serializers.CharField(required=False, allow_blank=True)
    username = serializers.CharField(required=False, allow_blank=True)
    channel = serializers.IntegerField(required=False, allow_null=True)
    status = serializers.CharField(required=False, allow_blank=True)


def _log_filter(request: Request) -> LogFilter:
    raw = {k: v for k, v in request.query_params.items() if v != ""}
    for name in ("start_timestamp", "end_timestamp"):
        if name in raw and raw[name].lstrip("-").isdigit():
            raw[name] = int(raw[name])
    serializer = LogQuery(data=raw)
    serializer.is_valid(raise_exception=True)
    q = serializer.validated_data
    return LogFilter(
        start=q.get("start_timestamp"), end=q.get("end_timestamp"), model=q.get("model_name", ""),
        token_name=q.get("token_name", ""), username=q.get("username", ""), upstream_id=q.get("channel"),
        status=q.get("status", ""),
    )


def log_render(log: UsageLog) -> dict[str, Any]:
    return {
        "id": log.pk, "created_at": unix(log.created_at), "token_name": log.token_name, "model": log.model,
        "endpoint": log.endpoint, "is_stream": log.is_stream, "prompt_tokens": log.prompt_tokens,
        "completion_tokens": log.completion_tokens, "cached_tokens": log.cached_tokens, "quota": log.quota,
        "group_ratio": str(log.group_ratio.normalize()), "model_ratio": str(log.model_ratio.normalize()),
        "completion_ratio": str(log.completion_ratio.normalize()), "usage_estimated": log.usage_estimated,
        "latency_ms": log.latency_ms, "first_byte_ms": log.first_byte_ms, "status": log.status,
        "status_code": log.status_code, "error": log.error, "request_id": log.request_id,
    }


def log_render_admin(log: UsageLog) -> dict[str, Any]:
    return log_render(log) | {
        "username": log.user.username, "channel": log.upstream_id, "provider": log.provider,
        "upstream_model": log.upstream_model, "client_ip": log.client_ip,
    }


@extend_schema(parameters=[LogQuery, *PAGE_PARAMETERS], responses=dict)
@api_view(["GET"])
def logs_self(request: Request) -> Response:
    return paginated(request, usage_logs(user_id=request.user.pk, f=_log_filter(request)), log_render)


@extend_schema(parameters=[LogQuery, *PAGE_PARAMETERS], responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def logs_all(request: Request) -> Response:
    return paginated(request, usage_logs(user_id=None, f=_log_filter(request)), log_render_admin)


@extend_schema(parameters=[LogQuery], responses=dict)
@api_view(["GET"])
def logs_self_stat(request: Request) -> Response:
    """The caller's quota under the log filters, and requests and tokens in the last minute."""
    return ok(usage_stat(user_id=request.user.pk, f=_log_filter(request)))


@extend_schema(parameters=[LogQuery], responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def logs_all_stat(request: Request) -> Response:
    return ok(usage_stat(user_id=None, f=_log_filter(request)))


def _get(model: type, pk: int) -> Any:
    row = model.objects.filter(pk=pk).first()
    if row is None:
        raise NotFound(_("Not found."))
    return row
