"""Cloudflare Turnstile, the human check on sign-up, log-in and verification mails when its keys are set: the
widget's token is checked with Cloudflare's siteverify endpoint (secret, response, remoteip) before anything else."""

from __future__ import annotations

import logging

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

from config.errors import ServiceError

log = logging.getLogger(__name__)


def turnstile_enabled() -> bool:
    return bool(settings.TURNSTILE_SITE_KEY and settings.TURNSTILE_SECRET_KEY)


def turnstile_context() -> dict[str, str]:
    """What a console page needs to show the widget (nothing when Turnstile is off)."""
    return {"turnstile_site_key": settings.TURNSTILE_SITE_KEY} if turnstile_enabled() else {}


def turnstile_check(token: str, client_ip: str = "") -> None:
    """Nothing when Turnstile is off or the token is good; a ServiceError otherwise (also when Cloudflare cannot be
    asked: the check fails closed)."""
    if not turnstile_enabled():
        return
    if not token:
        raise ServiceError(_("Complete the human check first."), status=403, code="turnstile_required")
    form = {"secret": settings.TURNSTILE_SECRET_KEY, "response": token[:2048]}
    if client_ip:
        form["remoteip"] = client_ip
    try:
        response = httpx.post(settings.TURNSTILE_VERIFY_URL, data=form, timeout=10, trust_env=False)
        passed = response.status_code == 200 and response.json().get("success") is True
    except (httpx.HTTPError, ValueError, AttributeError):
        log.warning("turnstile siteverify unreachable or unreadable", exc_info=True)
        raise ServiceError(_("The human check could not be verified. Try again."), status=503) from None
    if not passed:
        raise ServiceError(_("The human check failed. Try again."), status=403, code="turnstile_failed")
