"""Low-balance reminders: one mail when a balance falls below the threshold, another only after it recovered."""

from __future__ import annotations

from django.core import mail

from accounts.models import User
from accounts.reminders import quota_reminders_send
from accounts.services import user_adjust_quota
from accounts.tasks import quota_reminders_task


def _user(make_user, name: str, quota: int, *, email: str = "", used: bool = True) -> User:
    user = make_user(name, email=email or f"{name}@example.com", request_count=1 if used else 0)
    user_adjust_quota(user=user, amount=quota - user.quota)
    return user


def test_one_mail_per_fall_below_the_threshold(make_user, settings):
    settings.QUOTA_REMINDER_THRESHOLD, settings.SITE_URL = 1_000_000, "https://api.example.com"
    low = _user(make_user, "low", 250_000)
    _user(make_user, "rich", 5_000_000)
    _user(make_user, "fresh", 250_000, used=False)  # never called the API: no nagging about the trial credit
    nomail = _user(make_user, "nomail", 100_000)
    User.objects.filter(pk=nomail.pk).update(email="")
    assert quota_reminders_task() == 1
    (message,) = mail.outbox
    assert message.to == ["low@example.com"] and "running low" in message.subject
    assert "$0.50" in message.body and "$2.00" in message.body and "https://api.example.com/topup/" in message.body
    assert quota_reminders_send() == 0  # once per fall
    user_adjust_quota(user=low, amount=2_000_000)  # topped up above the threshold
    assert quota_reminders_send() == 0 and User.objects.get(pk=low.pk).quota_reminded_at is None
    user_adjust_quota(user=low, amount=-2_000_000)
    assert quota_reminders_send() == 1 and len(mail.outbox) == 2


def test_off_by_default_and_retried_when_the_mail_fails(make_user, settings, monkeypatch):
    _user(make_user, "low", 1)
    assert quota_reminders_send() == 0 and not mail.outbox
    settings.QUOTA_REMINDER_THRESHOLD = 500_000

    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr("accounts.reminders.send_mail", refuse)
    assert quota_reminders_send() == 0 and User.objects.get(username="low").quota_reminded_at is None
    monkeypatch.undo()
    assert quota_reminders_send() == 1
