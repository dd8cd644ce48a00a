"""Console forms: they parse and check input; the services they feed do the real validation and the writes."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from billing.models import UsageStatus, UserGroup
from billing.pricing import quota_to_usd
from billing.reports import local_day_start
from billing.selectors import LogFilter
from billing.topups import payment_methods, topup_currency, topup_price
from config.errors import ServiceError
from config.options import option
from console.money import usd_to_quota
from console.selectors import groups_for
from tokens.models import ApiToken
from tokens.services import allow_ips_clean

MAX_KEY_USD = Decimal("10000000")


class ConsoleForm(forms.Form):
    """Labels without the trailing colon: the layout puts them above their control."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


def split_list(text: str) -> list[str]:
    """Items separated by commas, spaces or new lines."""
    return [item for item in re.split(r"[\s,]+", text or "") if item]


class RegisterForm(ConsoleForm):
    """Sign-up; the username and password rules are checked again by `user_register`."""

    username = forms.CharField(
        label=_("Username"), max_length=32, min_length=3,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
        help_text=_("3 to 32 characters: letters, digits and @/./+/-/_."))
    password = forms.CharField(
        label=_("Password"), max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters, not only digits, not a common password."))
    password_again = forms.CharField(
        label=_("Password again"), max_length=128, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    email = forms.EmailField(label=_("Email (optional)"), required=False,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    verification_code = forms.CharField(
        label=_("Verification code"), max_length=16, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_('Press "Send code" and enter the code mailed to the address.'))
    invite_code = forms.CharField(label=_("Invite code (optional)"), max_length=16, required=False)

    def __init__(self, *args: Any, verification: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if verification:  # the address is confirmed with a code: required, and the code too
            self.fields["email"].label, self.fields["email"].required = _("Email"), True
        else:
            del self.fields["verification_code"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("password") and data.get("password_again") and data["password"] != data["password_again"]:
            self.add_error("password_again", _("The two passwords differ."))
        return data


class LoginForm(ConsoleForm):
    """Username and password; `user_authenticate` checks them."""

    username = forms.CharField(
        label=_("Username"), max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "autofocus": True}))
    password = forms.CharField(label=_("Password"), max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))


class CodeForm(ConsoleForm):
    """A code from an authenticator app, or a backup code."""

    code = forms.CharField(
        label=_("Code"), max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True,
                                      "spellcheck": "false", "autocapitalize": "none"}))


class RedeemForm(ConsoleForm):
    """A card key to redeem."""

    code = forms.CharField(
        label=_("Card key"), max_length=128,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}))


PAYMENT_METHOD_NAMES = {"alipay": _("Alipay"), "wxpay": _("WeChat Pay"), "qqpay": _("QQ Pay"),
                        "stripe": _("Card (Stripe)")}


class PayForm(ConsoleForm):
    """An online top-up: whole US dollars of quota, and how to pay (the operator's TOPUP_METHODS)."""

    amount = forms.IntegerField(label=_("Amount (US dollars of quota)"))
    method = forms.ChoiceField(label=_("Pay with"), widget=forms.RadioSelect)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        amount, low, high = self.fields["amount"], option("TOPUP_MIN_USD"), option("TOPUP_MAX_USD")
        amount.min_value, amount.max_value = low, high
        amount.widget.attrs.update(min=low, max=high)
        amount.validators = [MinValueValidator(low), MaxValueValidator(high)]
        amount.initial = max(low, 10)
        methods = payment_methods()
        self.fields["method"].choices = [(m, PAYMENT_METHOD_NAMES.get(m, m)) for m in methods]
        self.fields["method"].initial = methods[0] if methods else None
        prices = dict.fromkeys(f"{topup_price(1, m):.2f} {topup_currency(m)}" for m in methods)
        self.price_text = " / ".join(prices)


class TokenForm(ConsoleForm):
    """Create or edit an API key. Quota is entered in USD and stored as quota (500,000 per USD)."""

    name = forms.CharField(label=_("Name"), max_length=64)
    unlimited = forms.BooleanField(label=_("Unlimited quota (limited by your balance only)"), required=False,
                                   initial=True)
    quota_usd = forms.DecimalField(
        label=_("Key quota (USD)"), required=False, min_value=Decimal(0), max_value=MAX_KEY_USD, max_digits=14,
        decimal_places=6, widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        help_text=_("What this key may spend in total; 1 USD = 500,000 quota."),
        show_hidden_initial=True)  # an edit sets the quota only if the user changed what they were shown
    expires_at = forms.DateTimeField(
        label=_("Expires"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Empty: never expires."))
    group = forms.ChoiceField(label=_("Group"), required=False)
    model_limits = forms.CharField(
        label=_("Allowed models"), required=False, max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=_("Separated by commas or new lines. Empty: every model."))
    allow_ips = forms.CharField(
        label=_("Allowed IPs"), required=False, max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text=_("IP addresses or CIDR ranges, separated by commas or new lines. Empty: any IP."))

    def __init__(self, *args: Any, user: User, token: ApiToken | None = None, **kwargs: Any) -> None:
        if token is not None:
            kwargs.setdefault("initial", self.initial_from(token))
            kwargs.setdefault("auto_id", f"id_key{token.pk}_%s")  # unique ids beside the create form
        super().__init__(*args, **kwargs)
        self.user = user
        self.groups = {g.name: g for g in groups_for(user)}
        choices = [("", _("My account's group"))]
        for group in self.groups.values():
            label = f"{group.name} ({group.ratio.normalize():f}x)"
            choices.append((group.name, f"{label} · {group.description}" if group.description else label))
        if token is not None and token.group is not None and token.group.name not in self.groups:
            self.groups[token.group.name] = token.group  # keep a group an operator set, even if no longer offered
            choices.append((token.group.name, token.group.name))
        self.fields["group"].choices = choices

    @staticmethod
    def initial_from(token: ApiToken) -> dict[str, Any]:
        """The form's values for an existing key (expiry in local time, quota in USD, lists one per line)."""
        expires = timezone.localtime(token.expires_at) if token.expires_at else None
        return {
            "name": token.name,
            "unlimited": token.unlimited_quota,
            "quota_usd": Decimal(f"{quota_to_usd(token.remain_quota).normalize():f}"),
            "expires_at": expires,
            "group": token.group.name if token.group else "",
            "model_limits": "\n".join(token.model_limits or []),
            "allow_ips": "\n".join(token.allow_ips or []),
        }

    def clean_allow_ips(self) -> list[str]:
        try:
            return allow_ips_clean(split_list(self.cleaned_data.get("allow_ips", "")))
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_model_limits(self) -> list[str]:
        return split_list(self.cleaned_data.get("model_limits", ""))

    def clean_expires_at(self) -> Any:
        value = self.cleaned_data.get("expires_at")
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(_("The expiry time is in the past."))
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not data.get("unlimited") and data.get("quota_usd") is None and "quota_usd" not in self.errors:
            self.add_error("quota_usd", _("Enter the key's quota, or make it unlimited."))
        return data

    def service_fields(self, *, changed_only: bool = False) -> dict[str, Any]:
        """The cleaned data as `token_create` / `token_update` arguments."""
        data = self.cleaned_data
        group: UserGroup | None = self.groups.get(data["group"]) if data.get("group") else None
        fields = {
            "name": data["name"],
            "unlimited_quota": bool(data["unlimited"]),
            "expires_at": data.get("expires_at"),
            "group": group,
            "model_limits": data["model_limits"],
            "allow_ips": data["allow_ips"],
        }
        if data.get("quota_usd") is not None and (not changed_only or "quota_usd" in self.changed_data):
            fields["remain_quota"] = usd_to_quota(data["quota_usd"])
        return fields


STATUS_CHOICES = [("", _("Any status")), *UsageStatus.choices]


class LogFilterForm(ConsoleForm):
    """The usage log filters, read from the query string."""

    start = forms.DateField(label=_("From"), required=False,
                            widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    end = forms.DateField(label=_("To"), required=False,
                          widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"))
    model = forms.ChoiceField(label=_("Model"), required=False)
    token = forms.ChoiceField(label=_("API key"), required=False)
    status = forms.ChoiceField(label=_("Status"), required=False, choices=STATUS_CHOICES)

    def __init__(self, *args: Any, models: list[str], tokens: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [("", _("All models")), *((m, m) for m in models)]
        self.fields["token"].choices = [("", _("All keys")), *((t, t) for t in tokens)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", _("The end date is before the start date."))
        return data

    def log_filter(self) -> LogFilter:
        """The filter for `usage_logs`; dates are whole local days, both ends included."""
        data = self.cleaned_data if self.is_valid() else {}
        start: date | None = data.get("start")
        end: date | None = data.get("end")
        return LogFilter(
            start=local_day_start(start) if start else None,
            end=local_day_start(end + timedelta(days=1)) - timedelta(microseconds=1) if end else None,
            model=data.get("model", ""),
            token_name=data.get("token", ""),
            status=data.get("status", ""),
        )


class PricingFilterForm(ConsoleForm):
    """Search and category filters of the pricing table."""

    q = forms.CharField(label=_("Search models"), required=False, max_length=128,
                        widget=forms.SearchInput(attrs={"placeholder": _("Model or provider")}))
    category = forms.ChoiceField(label=_("Category"), required=False)

    def __init__(self, *args: Any, categories: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["category"].choices = [("", _("All categories")), *categories]


class EmailChangeForm(ConsoleForm):
    """The address password-reset links go to; the current password confirms the change."""

    email = forms.EmailField(label=_("Email"), required=False, max_length=254,
                             widget=forms.EmailInput(attrs={"autocomplete": "email"}),
                             help_text=_("Password-reset links are sent here. Leave it empty to remove it."))
    password = forms.CharField(label=_("Current password"), max_length=128, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    verification_code = forms.CharField(
        label=_("Verification code"), max_length=16, required=False,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text=_('Press "Send code" and enter the code mailed to the new address.'))

    def __init__(self, *args: Any, user: Any, verification: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        if not verification:
            del self.fields["verification_code"]

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            raise forms.ValidationError(_("The password is not right."))
        return password
