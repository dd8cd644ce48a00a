"""`GET /api/status`: what a console or script needs to know about this installation."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.oauth import oauth_providers
from accounts.telegram import telegram_provider
from accounts.turnstile import turnstile_enabled
from billing.pricing import QUOTA_PER_USD
from config.api import ok
from config.options import option

VERSION = "0.1.0"


@extend_schema(responses=dict)
@api_view(["GET"])
@permission_classes([AllowAny])
def status_view(request: Request) -> Response:
    providers = oauth_providers()
    return ok({
        "version": VERSION,
        "system_name": option("SITE_NAME"),
        "registration_enabled": option("REGISTRATION_ENABLED"),
        "email_verification": option("EMAIL_VERIFICATION"),
        "turnstile_check": turnstile_enabled(),
        "turnstile_site_key": settings.TURNSTILE_SITE_KEY if turnstile_enabled() else "",
        "github_oauth": "github" in providers, "github_client_id": settings.GITHUB_CLIENT_ID if "github" in providers
        else "", "linuxdo_oauth": "linuxdo" in providers, "oidc_enabled": "oidc" in providers,
        "telegram_oauth": telegram_provider() is not None,
        "telegram_bot_name": settings.TELEGRAM_BOT_NAME if telegram_provider() else "",
        "quota_per_unit": QUOTA_PER_USD,
        "display_currency": settings.DISPLAY_CURRENCY,
        "usd_exchange_rate": str(settings.USD_EXCHANGE_RATE),
        "new_user_quota": option("NEW_USER_QUOTA"),
        "checkin_quota": [option("CHECKIN_QUOTA_MIN"), option("CHECKIN_QUOTA_MAX")],
        "log_retention_days": settings.LOG_RETENTION_DAYS,
        "server_time": int(timezone.now().timestamp()),
    })
