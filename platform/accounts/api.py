"""Management API for accounts: verification codes, register, log in and out, self, access token, top-up, check-in."""

from __future__ import annotations

from django.contrib.auth import login, logout
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from accounts.services import access_token_issue, checkin_claim, user_authenticate, user_register
from accounts.turnstile import turnstile_check
from accounts.two_factor import login_pending_start
from accounts.verification import CODE_MINUTES, REGISTER, verification_send
from billing.redemption import redemption_redeem
from config.api import ok, validated
from config.api_fields import unix
from config.errors import ServiceError
from config.options import option
from relay.client_ip import client_ip


class RegisterIn(serializers.Serializer):
    username = serializers.CharField(max_length=32)
    password = serializers.CharField(max_length=128, trim_whitespace=False)
    email = serializers.EmailField(required=False, allow_blank=True)
    display_name = serializers.CharField(required=False, allow_blank=True, max_length=64)
    aff_code = serializers.CharField(required=False, allow_blank=True, max_length=16)
    verification_code = serializers.CharField(required=False, allow_blank=True, max_length=16)


class LoginIn(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class TopupIn(serializers.Serializer):
    key = serializers.CharField(max_length=128)


def user_render(user: User) -> dict:
    return {
        "id": user.pk,
        "username": user.username,
        "display_name": user.display_name,
        "email": user.email,
        "phone": user.phone,
        "role": user.role,
        "status": user.status,
        "group": user.group.name,
        "quota": user.quota,
        "used_quota": user.used_quota,
        "request_count": user.request_count,
        "invite_code": user.invite_code,
        "last_checkin_date": user.last_checkin_date.isoformat() if user.last_checkin_date else None,
        "access_token": user.access_token_hint or None,
        "two_factor_enabled": user.two_factor_enabled_at is not None,
        "created_time": unix(user.date_joined),
    }


def _turnstile_token(request: Request) -> str:
    """The Turnstile widget's token: `?turnstile=` as new-api's front end sends it, or a body field."""
    token = request.query_params.get("turnstile") or (request.data.get("turnstile") if hasattr(request.data, "get")
                                                      else "")
    return str(token or "")


@extend_schema(parameters=[OpenApiParameter("email", str, required=True), OpenApiParameter("turnstile", str)],
               request=None, responses=dict)
@api_view(["GET", "POST"])
@permission_classes([AllowAny])
def verification(request: Request) -> Response:
    """Mail a sign-up code to `email` (new-api's `GET /api/verification?email=`)."""
    ip = client_ip(request._request) or ""
    turnstile_check(_turnstile_token(request), ip)
    email = request.query_params.get("email") or (request.data.get("email") if hasattr(request.data, "get") else "")
    verification_send(email=str(email or ""), purpose=REGISTER, client_ip=ip)
    return ok(None, _("A verification code has been sent; it works for %(minutes)d minutes.")
              % {"minutes": CODE_MINUTES})


@extend_schema(request=RegisterIn, responses=dict)
@api_view(["POST"])
@permission_classes([AllowAny])
def register(request: Request) -> Response:
    if not option("REGISTRATION_ENABLED"):
        raise ServiceError(_("Registration is closed."), status=403)
    turnstile_check(_turnstile_token(request), client_ip(request._request) or "")
    data = validated(RegisterIn, request)
    user = user_register(
        username=data["username"], password=data["password"], email=data.get("email", ""),
        display_name=data.get("display_name", ""), invite_code=data.get("aff_code", ""),
        verification_code=data.get("verification_code", ""),
    )
    return ok(user_render(user), _("Account created."), http_status=201)


@extend_schema(request=LoginIn, responses=dict)
@api_view(["POST"])
@permission_classes([AllowAny])
def login_view(request: Request) -> Response:
    turnstile_check(_turnstile_token(request), client_ip(request._request) or "")
    data = validated(LoginIn, request)
    user = user_authenticate(
        request=request._request, username=data["username"], password=data["password"],
        client_ip=client_ip(request._request) or "",
    )
    if user.two_factor_enabled_at:  # the password was right; `/api/user/login/2fa` takes the code
        login_pending_start(request._request.session, user)
        return ok({"require_2fa": True}, _("Enter the code from your authenticator app."))
    login(request._request, user)
    return ok(user_render(user), _("Logged in."))


@extend_schema(request=None, responses=dict)
@api_view(["GET", "POST"])
@permission_classes([AllowAny])
def logout_view(request: Request) -> Response:
    logout(request._request)
    return ok(None, _("Logged out."))


@extend_schema(responses=dict)
@api_view(["GET"])
def self_view(request: Request) -> Response:
    return ok(user_render(request.user))


@extend_schema(responses=dict)
@api_view(["GET"])
def access_token(request: Request) -> Response:
    """Issue a new access token for the management API, replacing the previous one. Shown once."""
    return ok(access_token_issue(user=request.user), _("Keep this token safe: it is shown only once."))


@extend_schema(request=TopupIn, responses=dict)
@api_view(["POST"])
def topup(request: Request) -> Response:
    data = validated(TopupIn, request)
    card = redemption_redeem(user_id=request.user.pk, code=data["key"])
    request.user.refresh_from_db(fields=["quota"])
    return ok({"quota": card.quota, "balance": request.user.quota}, _("Card key redeemed."))


@extend_schema(request=None, responses=dict)
@api_view(["POST"])
def checkin(request: Request) -> Response:
    amount = checkin_claim(user=request.user)
    return ok({"quota": amount, "balance": request.user.quota}, _("Checked in."))
