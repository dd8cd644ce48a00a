"""A mail to the operators when the relay takes an upstream, or one of its keys, out of rotation by itself (refused
credentials, repeated failures), at most once per upstream and kind in ten minutes. Sent from a thread of its own:
the request whose failure caused it does not wait for SMTP."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from accounts.models import User, UserRole
from config.options import option

log = logging.getLogger(__name__)
QUIET_SECONDS = 600


def operator_addresses() -> list[str]:
    admins = User.objects.filter(Q(role=UserRole.ADMIN) | Q(is_superuser=True), is_active=True).exclude(email="")
    return sorted(set(admins.values_list("email", flat=True)))


def _send(subject: str, body: str, recipients: list[str]) -> None:
    try:
        send_mail(subject, body, None, recipients)
    except Exception as exc:  # SMTP down: the admin and the logs still show the upstream's state
        log.warning("upstream alert not sent: %s", exc)


def upstream_alert(*, upstream_id: int, upstream_name: str, reason: str, key: str = "") -> None:
    """Tell the operators; `key` is the fingerprint of the one key disabled, "" for the whole upstream."""
    if not settings.UPSTREAM_ALERTS:
        return
    try:
        if not cache.add(f"upstream-alert:{upstream_id}:{key or 'all'}", 1, QUIET_SECONDS):
            return
    except Exception:  # the cache (Redis) is away: alert anyway
        pass
    recipients = operator_addresses()
    if not recipients:
        return
    link = f"{settings.SITE_URL}{reverse('admin:relay_upstream_change', args=[upstream_id])}" if settings.SITE_URL \
        else ""
    context = {"name": upstream_name, "reason": reason, "key": key, "link": link, "site_name": option("SITE_NAME")}
    with translation.override(settings.LANGUAGE_CODE):
        subject = render_to_string("console/email/upstream_disabled_subject.txt", context).strip()
        body = render_to_string("console/email/upstream_disabled.txt", context)
    threading.Thread(target=_send, args=(subject, body, recipients), daemon=True, name="upstream-alert").start()
