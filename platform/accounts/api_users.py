"""Management API for operators: list users, change status, group and role, adjust quota via the ledger."""

from __future__ import annotations

from django.db.models import Q
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import user_render
from accounts.models import User, UserRole, UserStatus
from accounts.services import user_adjust_quota, user_set_group, user_set_status
from billing.groups import group_get
from config.api import IsPlatformAdmin, ok, paginated, validated
from config.api_fields import MAX_QUOTA, PAGE_PARAMETERS, validated_query
from config.errors import NotFound, ServiceError


class UserQuery(serializers.Serializer):
    keyword = serializers.CharField(required=False, allow_blank=True)
    group = serializers.CharField(required=False, allow_blank=True)


class UserUpdateIn(serializers.Serializer):
    id = serializers.IntegerField()
    group = serializers.CharField(required=False, max_length=64)
    status = serializers.ChoiceField(choices=UserStatus.choices, required=False)
    role = serializers.ChoiceField(choices=UserRole.choices, required=False)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=64)


class ManageIn(serializers.Serializer):
    id = serializers.IntegerField()
    action = serializers.ChoiceField(choices=["enable", "disable", "promote", "demote"])


class QuotaIn(serializers.Serializer):
    amount = serializers.IntegerField(min_value=-MAX_QUOTA, max_value=MAX_QUOTA)
    note = serializers.CharField(required=False, allow_blank=True, max_length=255)


def _user(user_id: int) -> User:
    user = User.objects.select_related("group").filter(pk=user_id).first()
    if user is None:
        raise NotFound(_("User not found."))
    return user


def _not_self(request: Request, user: User) -> None:
    if user.pk == request.user.pk:
        raise ServiceError(_("You cannot change your own status or role."))


@extend_schema(methods=["GET"], operation_id="user_list", parameters=[UserQuery, *PAGE_PARAMETERS], responses=dict)
@extend_schema(methods=["PUT"], request=UserUpdateIn, responses=dict)
@api_view(["GET", "PUT"])
@permission_classes([IsPlatformAdmin])
def users(request: Request) -> Response:
    if request.method == "GET":
        rows = User.objects.select_related("group").order_by("-id")
        query = validated_query(UserQuery, request)
        keyword = query.get("keyword", "")
        if keyword:
            rows = rows.filter(Q(username__icontains=keyword) | Q(email__icontains=keyword)
                               | Q(display_name__icontains=keyword))
        if query.get("group"):
            rows = rows.filter(group__name=query["group"])
        return paginated(request, rows, user_render)
    data = validated(UserUpdateIn, request)
    user = _user(data["id"])
    if "group" in data:
        user_set_group(user=user, group=group_get(name=data["group"]))
    if "status" in data and data["status"] != user.status:
        _not_self(request, user)
        user_set_status(user=user, status=data["status"])
    if "role" in data and data["role"] != user.role:
        _not_self(request, user)
        user.role = data["role"]
        user.save(update_fields=["role"])
    if "display_name" in data:
        user.display_name = data["display_name"]
        user.save(update_fields=["display_name"])
    return ok(user_render(user), _("User updated."))


@extend_schema(request=ManageIn, responses=dict)
@api_view(["POST"])
@permission_classes([IsPlatformAdmin])
def manage(request: Request) -> Response:
    """new-api's one-word user actions: enable, disable, promote, demote."""
    data = validated(ManageIn, request)
    user = _user(data["id"])
    _not_self(request, user)
    action = data["action"]
    if action in {"enable", "disable"}:
        user_set_status(user=user, status=UserStatus.ENABLED if action == "enable" else UserStatus.DISABLED)
    else:
        user.role = UserRole.ADMIN if action == "promote" else UserRole.USER
        user.save(update_fields=["role"])
    return ok(user_render(user), _("User updated."))


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([IsPlatformAdmin])
def user_detail(request: Request, user_id: int) -> Response:
    return ok(user_render(_user(user_id)))


@extend_schema(request=QuotaIn, responses=dict)
@api_view(["POST"])
@permission_classes([IsPlatformAdmin])
def user_quota(request: Request, user_id: int) -> Response:
    data = validated(QuotaIn, request)
    user = user_adjust_quota(
        user=_user(user_id), amount=data["amount"],
        note=data.get("note", ""), by=request.user,
    )
    return ok(user_render(user), _("Balance adjusted."))
