"""Management API for a user's own API tokens (new-api paths: /api/token/)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from billing.groups import group_get
from config.api import ok, paginated, validated
from config.api_fields import (
    MAX_CONCURRENCY_LIMIT, MAX_RPM_LIMIT, PAGE_PARAMETERS, FlexibleListField, StatusField, UnixTimeField, quota_field,
    unix,
)
from tokens.models import ApiToken
from tokens.services import token_create, token_delete, token_of, token_update, tokens_of


class TokenIn(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    remain_quota = quota_field(required=False)
    unlimited_quota = serializers.BooleanField(required=False)
    expired_time = UnixTimeField(required=False, allow_null=True)
    group = serializers.CharField(required=False, allow_blank=True, max_length=64)
    model_limits_enabled = serializers.BooleanField(required=False)
    model_limits = FlexibleListField(required=False)
    allow_ips = FlexibleListField(required=False)
    rpm_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_RPM_LIMIT)
    concurrency_limit = serializers.IntegerField(required=False, allow_null=True, min_value=1,
                                                 max_value=MAX_CONCURRENCY_LIMIT)
    status = StatusField(required=False)


class TokenUpdateIn(TokenIn):
    id = serializers.IntegerField()
    name = serializers.CharField(max_length=64, required=False)


def token_render(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.pk,
        "name": token.name,
        "key": token.masked_key,
        "status": token.status,
        "remain_quota": token.remain_quota,
        "used_quota": token.used_quota,
        "unlimited_quota": token.unlimited_quota,
        "expired_time": -1 if token.expires_at is None else unix(token.expires_at),
        "created_time": unix(token.created_at),
        "accessed_time": unix(token.last_used_at),
        "group": token.group.name if token.group else "",
        "model_limits": token.model_limits,
        "allow_ips": token.allow_ips,
        "rpm_limit": token.rpm_limit,
        "concurrency_limit": token.concurrency_limit,
    }


def _fields(data: dict[str, Any], user: User) -> dict[str, Any]:
    """Validated request fields renamed to the service's arguments."""
    fields = {k: v for k, v in data.items() if k not in {"id", "expired_time", "group", "model_limits_enabled"}}
    if "expired_time" in data:
        fields["expires_at"] = data["expired_time"]
    if "group" in data:
        fields["group"] = group_get(name=data["group"]) if data["group"] else None
    if data.get("model_limits_enabled") is False:
        fields["model_limits"] = []
    return fields


@extend_schema(methods=["GET"], operation_id="token_list", parameters=PAGE_PARAMETERS, responses=dict)
@extend_schema(methods=["POST"], request=TokenIn, responses=dict)
@extend_schema(methods=["PUT"], request=TokenUpdateIn, responses=dict)
@api_view(["GET", "POST", "PUT"])
def tokens(request: Request) -> Response:
    if request.method == "GET":
        return paginated(request, tokens_of(user=request.user), token_render)
    if request.method == "POST":
        data = validated(TokenIn, request)
        fields = _fields(data, request.user)
        token, key = token_create(user=request.user, **fields)
        data = token_render(token) | {"key": key}
        return ok(data, _("Token created. Copy the key now: it is shown only once."), http_status=201)
    data = validated(TokenUpdateIn, request)
    token = token_of(user=request.user, token_id=data["id"])
    token = token_update(token=token, user=request.user, **_fields(data, request.user))
    return ok(token_render(token), _("Token updated."))


@extend_schema(responses=dict)
@api_view(["GET", "DELETE"])
def token_detail(request: Request, token_id: int) -> Response:
    token = token_of(user=request.user, token_id=token_id)
    if request.method == "DELETE":
        token_delete(token=token)
        return ok(None, _("Token deleted."))
    return ok(token_render(token))
