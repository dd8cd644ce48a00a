"""API tokens: the `sk-` keys developers call the relay with."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from tokens.keys import secret_mask


class TokenStatus(models.TextChoices):
    ENABLED = "enabled", _("Enabled")
    DISABLED = "disabled", _("Disabled")


class ApiToken(models.Model):
    """An API key with its own quota, expiry, group, model and IP limits. Only the key's hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(_("name"), max_length=64)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    key_prefix = models.CharField(max_length=8, editable=False)
    key_suffix = models.CharField(max_length=4, editable=False)
    status = models.CharField(_("status"), max_length=16, choices=TokenStatus.choices, default=TokenStatus.ENABLED)
    remain_quota = models.BigIntegerField(_("remaining quota"), default=0)
    used_quota = models.BigIntegerField(_("used quota"), default=0)
    unlimited_quota = models.BooleanField(_("unlimited quota"), default=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    group = models.ForeignKey(
        "billing.UserGroup", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("group"), help_text=_("Empty: the owner's group."),
    )
    model_limits = models.JSONField(_("allowed models"), default=list, blank=True)
    allow_ips = models.JSONField(_("allowed IPs / CIDRs"), default=list, blank=True)
    rpm_limit = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(_("concurrent requests"), null=True, blank=True)
    playground = models.BooleanField(default=False, editable=False)  # the console playground's own key, not listed
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"])]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.masked_key})"

    @property
    def masked_key(self) -> str:
        return secret_mask(self.key_prefix, self.key_suffix)

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()
