"""Two-factor authentication through the management API: the code step of logging in, and setting it up or off."""

from __future__ import annotations

from django.contrib.auth import login
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api import user_render
from accounts.two_factor import (
    login_pending_finish, totp_uri, two_factor_begin, two_factor_disable, two_factor_enable,
)
from config.api import ok, validated


class CodeIn(serializers.Serializer):
    code = serializers.CharField(max_length=32)


@extend_schema(request=CodeIn, responses=dict)
@api_view(["POST"])
@permission_classes([AllowAny])
def login_code(request: Request) -> Response:
    """The second step of `/api/user/login` for accounts with two-factor on."""
    user = login_pending_finish(request._request.session, validated(CodeIn, request)["code"])
    login(request._request, user, backend="django.contrib.auth.backends.ModelBackend")
    return ok(user_render(user), _("Logged in."))


@extend_schema(responses=dict)
@api_view(["GET"])
def status(request: Request) -> Response:
    enabled = request.user.two_factor_enabled_at is not None
    return ok({"enabled": enabled, "backup_codes_left": len(request.user.backup_code_hashes) if enabled else 0})


@extend_schema(request=None, responses=dict)
@api_view(["POST"])
def setup(request: Request) -> Response:
    """A new secret (and its otpauth:// URI for a QR code); two-factor turns on with `/api/user/2fa/enable`."""
    secret = two_factor_begin(user=request.user)
    return ok({"secret": secret, "uri": totp_uri(secret, request.user.username)})


@extend_schema(request=CodeIn, responses=dict)
@api_view(["POST"])
def enable(request: Request) -> Response:
    codes = two_factor_enable(user=request.user, code=validated(CodeIn, request)["code"])
    return ok({"backup_codes": codes}, _("Two-factor authentication is on. Keep the backup codes safe."))


@extend_schema(request=CodeIn, responses=dict)
@api_view(["POST"])
def disable(request: Request) -> Response:
    two_factor_disable(user=request.user, code=validated(CodeIn, request)["code"])
    return ok(None, _("Two-factor authentication is off."))
