"""Celery tasks of accounts: one-line wrappers around services."""

from __future__ import annotations

from celery import shared_task

from accounts.reminders import quota_reminders_send


@shared_task
def quota_reminders_task() -> int:
    return quota_reminders_send()
