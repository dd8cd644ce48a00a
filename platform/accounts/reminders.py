"""Low-balance reminders: one email when a user's balance falls below QUOTA_REMINDER_THRESHOLD, again only after it
has been back above it."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation

from accounts.models import User, UserStatus
from billing.pricing import quota_to_usd
from config.options import option

log = logging.getLogger(__name__)
BATCH = 200


def quota_reminders_send() -> int:
    """Mail the users who fell below the threshold since their last reminder; returns how many were mailed."""
    threshold = option("QUOTA_REMINDER_THRESHOLD")
    if threshold <= 0:
        return 0
    User.objects.filter(quota_reminded_at__isnull=False, quota__gte=threshold).update(quota_reminded_at=None)
    due = User.objects.filter(quota_reminded_at__isnull=True, quota__lt=threshold, status=UserStatus.ENABLED,
                              request_count__gt=0).exclude(email="").order_by("pk")[:BATCH]
    sent = 0
    for user in due:
        claimed = User.objects.filter(pk=user.pk, quota_reminded_at__isnull=True).update(
            quota_reminded_at=timezone.now())
        if not claimed:  # another worker took it
            continue
        try:
            _mail(user, threshold)
        except OSError as exc:  # SMTP down: try again on the next run
            User.objects.filter(pk=user.pk).update(quota_reminded_at=None)
            log.warning("low-balance reminder to user %s not sent: %s", user.pk, exc)
            continue
        sent += 1
    return sent


def _mail(user: User, threshold: int) -> None:
    link = f"{settings.SITE_URL}{reverse('console:topup')}" if settings.SITE_URL else ""
    context = {"user": user, "balance": f"${quota_to_usd(user.quota):.2f}", "site_name": option("SITE_NAME"),
               "threshold": f"${quota_to_usd(threshold):.2f}", "link": link}
    with translation.override(settings.LANGUAGE_CODE):
        subject = render_to_string("console/email/quota_low_subject.txt", context).strip()
        body = render_to_string("console/email/quota_low.txt", context)
    send_mail(subject, body, None, [user.email])
