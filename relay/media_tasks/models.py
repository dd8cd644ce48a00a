"""The task row: one async generation a user submitted, from reservation to settlement."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class TaskKind(models.TextChoices):
    MIDJOURNEY = "midjourney", _("Midjourney")
    MUSIC = "music", _("Music")
    VIDEO = "video", _("Video")
    AUDIO = "audio", _("Audio")


class TaskStatus(models.TextChoices):
    NOT_START = "NOT_START", _("Not started")
    SUBMITTED = "SUBMITTED", _("Submitted")
    IN_PROGRESS = "IN_PROGRESS", _("In progress")
    SUCCESS = "SUCCESS", _("Succeeded")
    FAILURE = "FAILURE", _("Failed")


TERMINAL = (TaskStatus.SUCCESS, TaskStatus.FAILURE)


class MediaTask(models.Model):
    """A generation task. Its quota is reserved under the ledger reference `task:<public_id>` and closed once."""

    public_id = models.CharField(_("task id"), max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="media_tasks")
    token = models.ForeignKey("tokens.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    token_name = models.CharField(_("token"), max_length=64, blank=True)
    unlimited = models.BooleanField(default=False, editable=False)  # the token's quota was not reserved
    upstream = models.ForeignKey("relay.Upstream", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="media_tasks")
    key_fingerprint = models.CharField(max_length=16, blank=True, editable=False)  # which upstream key submitted
    kind = models.CharField(_("kind"), max_length=16, choices=TaskKind.choices)
    action = models.CharField(_("action"), max_length=32)
    model = models.CharField(_("model"), max_length=128)
    upstream_model = models.CharField(_("upstream model"), max_length=128, blank=True)
    endpoint = models.CharField(_("endpoint"), max_length=128)
    status = models.CharField(_("status"), max_length=16, choices=TaskStatus.choices, default=TaskStatus.NOT_START)
    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    upstream_task_id = models.CharField(_("upstream task id"), max_length=128, blank=True)
    parent = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    request = models.JSONField(_("request"), default=dict, blank=True)
    result = models.JSONField(_("result"), default=dict, blank=True)
    result_url = models.TextField(_("result URL"), blank=True)
    fail_reason = models.TextField(_("fail reason"), blank=True)
    # Price: unit_price_usd x units x group_ratio. Units are seconds for video and audio, else one call.
    unit_price_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    units = models.DecimalField(max_digits=10, decimal_places=3, default=Decimal(1))
    group_ratio = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(1))
    quota_reserved = models.BigIntegerField(_("quota reserved"), default=0)
    quota_charged = models.BigIntegerField(_("quota charged"), default=0)
    settled_at = models.DateTimeField(_("settled"), null=True, blank=True)
    notify_hook = models.URLField(_("notify hook"), max_length=1000, blank=True)
    state = models.CharField(_("state"), max_length=1000, blank=True)  # Midjourney's caller-defined echo field
    notify_after = models.DateTimeField(null=True, blank=True, editable=False)  # a callback is due
    notify_attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    notify_error = models.CharField(max_length=255, blank=True, editable=False)
    poll_after = models.DateTimeField(null=True, blank=True, editable=False)
    poll_failures = models.PositiveIntegerField(default=0, editable=False)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    submitted_at = models.DateTimeField(_("submitted"), auto_now_add=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        app_label = "relay"
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "upstream"], name="media_task_poll"),
            models.Index(fields=["poll_after"], condition=models.Q(settled_at=None), name="media_task_unsettled"),
            models.Index(fields=["notify_after"], condition=models.Q(notify_after__isnull=False),
                         name="media_task_notify_due"),
            models.Index(fields=["user", "kind", "-id"], name="media_task_user"),
        ]
        verbose_name = _("generation task")
        verbose_name_plural = _("generation tasks")

    def __str__(self) -> str:
        return f"{self.public_id} {self.action} {self.status}"

    @property
    def ref(self) -> str:
        return f"task:{self.public_id}"

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL
