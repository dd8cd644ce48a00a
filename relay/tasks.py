"""Celery tasks of the relay: one-line wrappers around services."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings

from billing.charges import reservations_sweep
from billing.retention import usage_logs_prune
from relay.media_tasks.poller import media_tasks_tick
from relay.probe import upstreams_retest, upstreams_test_all


@shared_task
def upstreams_retest_task() -> int:
    return upstreams_retest()


@shared_task
def upstreams_test_task() -> tuple[int, int]:
    return upstreams_test_all()


@shared_task
def reservations_sweep_task() -> int:
    return reservations_sweep(older_than=timedelta(minutes=settings.RELAY_RESERVATION_TIMEOUT_MINUTES))


@shared_task
def media_tasks_poll_task() -> int:
    return media_tasks_tick()


@shared_task
def usage_logs_prune_task() -> int:
    return usage_logs_prune(retention_days=settings.LOG_RETENTION_DAYS)
