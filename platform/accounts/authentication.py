"""Management-API authentication by `Authorization: Bearer <user access token>`."""

from __future__ import annotations

from django.utils.translation import gettext as _
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.models import User, UserStatus
from accounts.services import user_by_access_token


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """Bearer access tokens; requests without one fall through to the session cookie (with CSRF)."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[User, str] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace").split()
        if not header or header[0].lower() != self.keyword:
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        user = user_by_access_token(header[1])
        if user is None:
            raise exceptions.AuthenticationFailed(_("Invalid access token."))
        if user.status != UserStatus.ENABLED or not user.is_active:
            raise exceptions.AuthenticationFailed(_("This account has been disabled."))
        return user, header[1]

    def authenticate_header(self, request: Request) -> str:
        return "Bearer"
