"""Upstreams: the provider accounts (channels) the relay forwards requests to."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from relay.key_vault import key_fingerprint, keys_decrypt, keys_encrypt
from relay.providers import PROVIDER_CHOICES


class UpstreamStatus(models.TextChoices):
    ENABLED = "enabled", _("Enabled")
    DISABLED = "disabled", _("Disabled")
    AUTO_DISABLED = "auto_disabled", _("Disabled automatically")


class Upstream(models.Model):
    """One provider account: where to send requests, with which keys, for which models and groups."""

    name = models.CharField(_("name"), max_length=64)
    type = models.CharField(_("provider type"), max_length=32, choices=PROVIDER_CHOICES)
    base_url = models.URLField(_("base URL"), max_length=255, blank=True, help_text=_("Empty: the provider's default."))
    keys_encrypted = models.TextField(blank=True, editable=False)
    key_count = models.PositiveSmallIntegerField(_("keys"), default=0, editable=False)
    served_models = models.JSONField(_("models served"), default=list, blank=True)
    model_mapping = models.JSONField(
        _("model mapping"), default=dict, blank=True, help_text=_("Requested model name -> upstream model name.")
    )
    groups = models.ManyToManyField("billing.UserGroup", related_name="upstreams", verbose_name=_("groups served"))
    priority = models.IntegerField(_("priority"), default=0, help_text=_("Higher is tried first."))
    weight = models.PositiveIntegerField(_("weight"), default=1, help_text=_("Share of traffic within a priority."))
    status = models.CharField(_("status"), max_length=16, choices=UpstreamStatus.choices, default=UpstreamStatus.ENABLED)
    status_reason = models.CharField(_("status reason"), max_length=255, blank=True)
    test_model = models.CharField(_("test model"), max_length=128, blank=True)
    last_test_latency_ms = models.PositiveIntegerField(_("last test latency (ms)"), null=True, blank=True)
    last_tested_at = models.DateTimeField(_("last tested"), null=True, blank=True)
    connect_timeout = models.FloatField(_("connect timeout (s)"), default=10)
    first_byte_timeout = models.FloatField(_("first byte timeout (s)"), default=60)
    total_timeout = models.FloatField(_("total timeout (s)"), default=600)
    extras = models.JSONField(
        _("provider settings"), default=dict, blank=True,
        help_text=_("For example Azure's api_version, Vertex AI's region and project_id, Bedrock's region."),
    )
    param_override = models.JSONField(
        _("parameter overrides"), default=dict, blank=True,
        help_text=_('Merged into every request body sent to this upstream, in its own format (JSON Merge Patch: '
                    'null removes a key), for example {"temperature": 0.2}.'),
    )
    header_override = models.JSONField(
        _("header overrides"), default=dict, blank=True,
        help_text=_('Headers sent with every request to this upstream; {api_key} stands for the key in use, '
                    'for example {"X-Api-Token": "{api_key}"}.'),
    )
    status_code_mapping = models.JSONField(
        _("status code mapping"), default=dict, blank=True,
        help_text=_('An error status of this upstream read as another, for example {"400": 503}: an upstream that '
                    'answers 400 for a passing fault is then retried on the next one.'),
    )
    system_prompt = models.TextField(
        _("system prompt"), blank=True, help_text=_("Given to the model when the caller sends no system prompt."),
    )
    system_prompt_prepend = models.BooleanField(
        _("also before the caller's system prompt"), default=False,
        help_text=_("Put the system prompt before the caller's own instead of only filling in when there is none."),
    )
    # Keys refused by the upstream (401/403), by fingerprint -> reason: left out until they answer again.
    disabled_keys = models.JSONField(_("disabled keys"), default=dict, blank=True, editable=False)
    balance = models.DecimalField(_("balance"), max_digits=18, decimal_places=4, null=True, blank=True,
                                  editable=False)
    balance_currency = models.CharField(_("balance currency"), max_length=8, blank=True, editable=False)
    balance_updated_at = models.DateTimeField(_("balance asked"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]
        verbose_name = _("upstream")
        verbose_name_plural = _("upstreams")

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"

    def set_keys(self, keys: list[str]) -> None:
        self.keys_encrypted = keys_encrypt(keys)
        self.key_count = len(keys)
        self.disabled_keys = {}

    def get_keys(self) -> list[str]:
        return keys_decrypt(self.keys_encrypted)

    def active_keys(self) -> list[str]:
        """The keys the relay uses: all but those disabled after the upstream refused them."""
        disabled = self.disabled_keys or {}
        return [k for k in self.get_keys() if key_fingerprint(k) not in disabled]


from relay.media_tasks.models import MediaTask, TaskKind, TaskStatus  # noqa: E402,F401  (registered with this app)
