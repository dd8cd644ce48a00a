"""Accounts: the user, their balance counters and their management-API access token."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils.translation import gettext_lazy as _


class UserRole(models.TextChoices):
    USER = "user", _("User")
    ADMIN = "admin", _("Administrator")


class UserStatus(models.TextChoices):
    ENABLED = "enabled", _("Enabled")
    DISABLED = "disabled", _("Disabled")


class AccountManager(UserManager):
    """Accounts made without a group (`createsuperuser`, for one) join the default pricing group."""

    def _create_user_object(self, username, email, password, **extra_fields):  # type: ignore[no-untyped-def]
        if "group" not in extra_fields and "group_id" not in extra_fields:
            from billing.groups import group_default

            extra_fields["group"] = group_default()
        return super()._create_user_object(username, email, password, **extra_fields)


class User(AbstractUser):
    """A platform account. `quota` is the balance; it changes only through `billing.ledger`."""

    display_name = models.CharField(_("display name"), max_length=64, blank=True)
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    group = models.ForeignKey(
        "billing.UserGroup", on_delete=models.PROTECT, related_name="users", verbose_name=_("pricing group")
    )
    quota = models.BigIntegerField(_("balance (quota)"), default=0)
    used_quota = models.BigIntegerField(_("used quota"), default=0)
    request_count = models.BigIntegerField(_("request count"), default=0)
    role = models.CharField(_("role"), max_length=16, choices=UserRole.choices, default=UserRole.USER)
    status = models.CharField(_("status"), max_length=16, choices=UserStatus.choices, default=UserStatus.ENABLED)
    last_checkin_date = models.DateField(_("last check-in"), null=True, blank=True)
    invite_code = models.CharField(_("invite code"), max_length=16, unique=True, null=True, blank=True)
    invited_by = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="invitees", verbose_name=_("invited by")
    )
    access_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    access_token_hint = models.CharField(_("access token"), max_length=32, blank=True, editable=False)
    # Two-factor authentication (accounts/two_factor.py): the TOTP secret encrypted at rest, set up before it is on.
    two_factor_enabled_at = models.DateTimeField(_("two-factor authentication since"), null=True, blank=True,
                                                 editable=False)
    totp_secret_encrypted = models.TextField(blank=True, editable=False)
    totp_last_step = models.BigIntegerField(default=0, editable=False)  # a code is accepted once
    backup_code_hashes = models.JSONField(default=list, blank=True, editable=False)
    quota_reminded_at = models.DateTimeField(null=True, blank=True, editable=False)  # low-balance mail sent

    objects = AccountManager()

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    def __str__(self) -> str:
        return self.username

    @property
    def is_platform_admin(self) -> bool:
        return self.role == UserRole.ADMIN or self.is_superuser

    @property
    def is_enabled(self) -> bool:
        return self.status == UserStatus.ENABLED and self.is_active


class OAuthIdentity(models.Model):
    """An account at an outside sign-in provider (GitHub, LINUX DO, an OpenID Connect server) linked to a user."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oauth_identities", verbose_name=_("user"))
    provider = models.CharField(_("provider"), max_length=16)
    subject = models.CharField(_("account id at the provider"), max_length=255)
    login = models.CharField(_("name at the provider"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("linked"), auto_now_add=True)

    class Meta:
        verbose_name = _("sign-in identity")
        verbose_name_plural = _("sign-in identities")
        constraints = [
            models.UniqueConstraint(fields=["provider", "subject"], name="oauth_identity_unique"),
            models.UniqueConstraint(fields=["user", "provider"], name="oauth_identity_one_per_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.login or self.subject}"
