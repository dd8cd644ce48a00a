"""Billing data: pricing groups, model prices, the quota ledger, card keys and usage logs."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

RATIO = {"max_digits": 14, "decimal_places": 6}


class UserGroup(models.Model):
    """A pricing group: every price is multiplied by its ratio."""

    name = models.CharField(_("name"), max_length=64, unique=True)
    ratio = models.DecimalField(_("ratio"), default=Decimal(1), **RATIO)
    description = models.CharField(_("description"), max_length=255, blank=True)
    selectable = models.BooleanField(_("users may pick it for a token"), default=True)
    rpm_limit = models.PositiveIntegerField(_("default requests per minute"), null=True, blank=True)
    concurrency_limit = models.PositiveIntegerField(_("default concurrent requests"), null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("pricing group")
        verbose_name_plural = _("pricing groups")

    def __str__(self) -> str:
        return self.name


class ModelCategory(models.TextChoices):
    GENERAL = "general", _("General")
    FAST = "fast", _("Fast")
    LONG_CONTEXT = "long-context", _("Long context")
    IMAGE = "image", _("Image")
    AUDIO = "audio", _("Audio")
    VIDEO = "video", _("Video")
    EMBEDDING = "embedding", _("Embedding")
    RERANK = "rerank", _("Rerank")
    REALTIME = "realtime", _("Realtime")


class ModelPrice(models.Model):
    """How one model is billed: per token (ratios) or, when `price_per_call` is set, per call in USD."""

    model = models.CharField(_("model"), max_length=128, unique=True)
    provider = models.CharField(_("provider"), max_length=64, blank=True)
    category = models.CharField(_("category"), max_length=16, choices=ModelCategory.choices, default=ModelCategory.GENERAL)
    context_window = models.PositiveIntegerField(_("context window"), null=True, blank=True)
    model_ratio = models.DecimalField(_("model ratio"), default=Decimal(1), **RATIO)
    completion_ratio = models.DecimalField(_("completion ratio"), default=Decimal(1), **RATIO)
    cache_ratio = models.DecimalField(_("cached prompt ratio"), default=Decimal(1), **RATIO)
    cache_write_ratio = models.DecimalField(_("cache write ratio"), default=Decimal(1), **RATIO)
    audio_ratio = models.DecimalField(_("audio input ratio"), default=Decimal(1), **RATIO)
    audio_completion_ratio = models.DecimalField(
        _("audio output ratio"), default=Decimal(1), help_text=_("Relative to the input price, like the model ratio."),
        **RATIO)
    long_context_threshold = models.PositiveIntegerField(
        _("long-context threshold (prompt tokens)"), null=True, blank=True,
        help_text=_("A request whose prompt is longer is billed at the long-context multipliers, as a whole (Gemini "
                    "2.5 Pro and Claude's 1M context: 200,000)."))
    long_context_prompt_multiplier = models.DecimalField(
        _("long-context prompt multiplier"), default=Decimal(1), help_text=_("For example 2."), **RATIO)
    long_context_completion_multiplier = models.DecimalField(
        _("long-context completion multiplier"), default=Decimal(1), help_text=_("For example 1.5."), **RATIO)
    price_per_call = models.DecimalField(_("price per call (USD)"), null=True, blank=True, **RATIO)
    price_variants = models.JSONField(
        _("prices by size and quality (USD)"), default=dict, blank=True,
        help_text=_('Per-image prices overriding the price per call, keyed "quality size", "size" or "quality", '
                    'for example {"1024x1024": 0.04, "hd 1024x1792": 0.12}.'))
    price_per_minute = models.DecimalField(
        _("price per audio minute (USD)"), null=True, blank=True,
        help_text=_("Transcription billed by input duration instead of tokens."), **RATIO)

    class Meta:
        ordering = ["model"]
        verbose_name = _("model price")
        verbose_name_plural = _("model prices")

    def __str__(self) -> str:
        return self.model

    @property
    def is_per_call(self) -> bool:
        return self.price_per_call is not None


class LedgerReason(models.TextChoices):
    SIGNUP = "signup", _("Trial credit")
    CHECKIN = "checkin", _("Daily check-in")
    REDEEM = "redeem", _("Card key redeemed")
    TOPUP = "topup", _("Top-up")
    INVITE = "invite", _("Invitation reward")
    ADMIN_ADJUST = "admin_adjust", _("Adjusted by an administrator")
    RESERVE = "reserve", _("Reserved for a request")
    SETTLE = "settle", _("Request settled")
    REFUND = "refund", _("Request refunded")
    CHARGE = "charge", _("Charged for usage")


class LedgerEntry(models.Model):
    """One change of a user's balance. The balance always equals the sum of a user's entries."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ledger_entries")
    token = models.ForeignKey("tokens.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    amount = models.BigIntegerField(_("amount"))
    reason = models.CharField(_("reason"), max_length=16, choices=LedgerReason.choices)
    balance_after = models.BigIntegerField(_("balance after"))
    ref = models.CharField(_("reference"), max_length=128, blank=True)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["user", "-id"]), models.Index(fields=["ref"])]
        constraints = [
            # A request's reservation is closed (settled or refunded) exactly once.
            models.UniqueConstraint(
                fields=["ref"], condition=models.Q(reason__in=["settle", "refund"]), name="ledger_one_closing_row",
            ),
        ]
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")

    def __str__(self) -> str:
        return f"{self.user_id} {self.amount:+d} {self.reason}"


class RedemptionStatus(models.TextChoices):
    UNUSED = "unused", _("Unused")
    USED = "used", _("Used")
    DISABLED = "disabled", _("Disabled")


class RedemptionCode(models.Model):
    """A card key (卡密). Only its hash is stored; the code itself is shown once, when the batch is made."""

    code_hash = models.CharField(max_length=64, unique=True, editable=False)
    code_hint = models.CharField(_("code"), max_length=32, editable=False)
    quota = models.BigIntegerField(_("quota"))
    batch_name = models.CharField(_("batch"), max_length=64, db_index=True)
    status = models.CharField(_("status"), max_length=16, choices=RedemptionStatus.choices, default=RedemptionStatus.UNUSED)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    redeemed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="redeemed_codes"
    )
    redeemed_at = models.DateTimeField(_("redeemed"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("card key")
        verbose_name_plural = _("card keys")

    def __str__(self) -> str:
        return self.code_hint


class UsageStatus(models.TextChoices):
    SUCCESS = "success", _("Success")
    ERROR = "error", _("Error")
    CLIENT_CLOSED = "client_closed", _("Client disconnected")


class UsageLog(models.Model):
    """One relayed request: who, what, how many tokens, what it cost and how long it took."""

    created_at = models.DateTimeField(_("time"), auto_now_add=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_logs")
    token = models.ForeignKey("tokens.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    token_name = models.CharField(_("token"), max_length=64, blank=True)
    upstream = models.ForeignKey("relay.Upstream", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    provider = models.CharField(_("provider"), max_length=32, blank=True)
    model = models.CharField(_("model"), max_length=128)
    upstream_model = models.CharField(_("upstream model"), max_length=128, blank=True)
    endpoint = models.CharField(_("endpoint"), max_length=128)
    is_stream = models.BooleanField(_("stream"), default=False)
    prompt_tokens = models.BigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.BigIntegerField(_("completion tokens"), default=0)
    cached_tokens = models.BigIntegerField(_("cached tokens"), default=0)
    cache_write_tokens = models.BigIntegerField(_("cache write tokens"), default=0)
    audio_prompt_tokens = models.BigIntegerField(_("audio input tokens"), default=0)
    audio_completion_tokens = models.BigIntegerField(_("audio output tokens"), default=0)
    quota = models.BigIntegerField(_("quota"), default=0)
    group_ratio = models.DecimalField(_("group ratio"), default=Decimal(1), **RATIO)
    model_ratio = models.DecimalField(_("model ratio"), default=Decimal(1), **RATIO)
    completion_ratio = models.DecimalField(_("completion ratio"), default=Decimal(1), **RATIO)
    cache_ratio = models.DecimalField(_("cache ratio"), default=Decimal(1), **RATIO)
    price_per_call = models.DecimalField(_("price per call"), null=True, blank=True, **RATIO)
    usage_estimated = models.BooleanField(_("usage estimated"), default=False)
    latency_ms = models.PositiveIntegerField(_("latency (ms)"), default=0)
    first_byte_ms = models.PositiveIntegerField(_("first byte (ms)"), null=True, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=UsageStatus.choices, default=UsageStatus.SUCCESS)
    status_code = models.PositiveSmallIntegerField(_("HTTP status"), default=200)
    error = models.TextField(_("error"), blank=True)
    request_id = models.CharField(_("request id"), max_length=64, db_index=True)
    client_ip = models.GenericIPAddressField(_("client IP"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["user", "model", "-created_at"]),
            models.Index(fields=["user", "token_name", "-created_at"]),
            models.Index(fields=["-created_at"]),
            models.Index(fields=["model", "-created_at"]),
        ]
        verbose_name = _("usage log")
        verbose_name_plural = _("usage logs")

    def __str__(self) -> str:
        return f"{self.request_id} {self.model}"


class UsageHourly(models.Model):
    """Usage summed per hour, user, token, model and upstream. It keeps the figures `/v1/usage` and the dashboards
    need after detailed logs pass LOG_RETENTION_DAYS and are deleted. Hours are UTC; 0 means no token/upstream."""

    hour = models.DateTimeField(_("hour"))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_id = models.BigIntegerField(_("token id"), default=0)
    token_name = models.CharField(_("token"), max_length=64, blank=True)
    model = models.CharField(_("model"), max_length=128)
    upstream_id = models.BigIntegerField(_("upstream id"), default=0)
    provider = models.CharField(_("provider"), max_length=32, blank=True)
    requests = models.BigIntegerField(_("requests"), default=0)
    prompt_tokens = models.BigIntegerField(_("prompt tokens"), default=0)
    completion_tokens = models.BigIntegerField(_("completion tokens"), default=0)
    quota = models.BigIntegerField(_("quota"), default=0)

    class Meta:
        ordering = ["-hour"]
        constraints = [
            models.UniqueConstraint(fields=["hour", "user", "token_id", "model", "upstream_id", "provider"],
                                    name="usage_hourly_one_row"),
        ]
        indexes = [models.Index(fields=["user", "hour"])]
        verbose_name = _("hourly usage")
        verbose_name_plural = _("hourly usage")

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}:00 {self.user_id} {self.model}"


class UsageRollup(models.Model):
    """How far usage logs have been summed into UsageHourly: every log with an id up to `last_log_id` is counted
    there, so readers add the sums to the logs above it, and pruning deletes only logs at or below it. One row."""

    last_log_id = models.BigIntegerField(_("last summed log id"), default=0)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("usage rollup mark")


class TopUpStatus(models.TextChoices):
    PENDING = "pending", _("Awaiting payment")
    PAID = "paid", _("Paid")


class TopUpOrder(models.Model):
    """An online top-up: made when the user sets off to pay, credited once when the payment gateway confirms it."""

    trade_no = models.CharField(_("order number"), max_length=40, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="topup_orders")
    method = models.CharField(_("payment method"), max_length=16)
    amount_usd = models.DecimalField(_("amount (USD)"), max_digits=12, decimal_places=2)
    money = models.DecimalField(_("price paid"), max_digits=12, decimal_places=2,
                                help_text=_("In the payment gateway's currency."))
    quota = models.BigIntegerField(_("quota"))
    status = models.CharField(_("status"), max_length=16, choices=TopUpStatus.choices, default=TopUpStatus.PENDING)
    gateway_trade_no = models.CharField(_("gateway's order number"), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    paid_at = models.DateTimeField(_("paid"), null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = _("online top-up")
        verbose_name_plural = _("online top-ups")

    def __str__(self) -> str:
        return self.trade_no
