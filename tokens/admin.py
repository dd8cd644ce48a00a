"""Operator screen for API tokens: limits and status can be changed; the key itself is never shown."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from accounts.models import User
from billing.models import UserGroup
from config.errors import ServiceError
from tokens.models import ApiToken
from tokens.services import EDITABLE, allow_ips_clean, token_update


class ApiTokenAdminForm(forms.ModelForm):
    """Checks what `token_update` would refuse, so that a mistake is a form error and not a server error."""

    operator: User | None = None  # the admin making the change; set by ApiTokenAdmin.get_form

    class Meta:
        model = ApiToken
        fields = "__all__"

    def clean_group(self) -> UserGroup | None:
        group = self.cleaned_data["group"]
        operator = self.operator
        if (
            group is not None and "group" in self.changed_data and not group.selectable
            and operator is not None and not operator.is_platform_admin and group.pk != operator.group_id
        ):
            raise forms.ValidationError(gettext("The group %(name)s is not available.") % {"name": group.name})
        return group

    def clean_remain_quota(self) -> int:
        value = self.cleaned_data["remain_quota"]
        if value is not None and value < 0:
            raise forms.ValidationError(_("The quota cannot be negative."))
        return value

    def clean_expires_at(self) -> datetime | None:
        value = self.cleaned_data["expires_at"]
        if "expires_at" in self.changed_data and value is not None and value <= timezone.now():
            raise forms.ValidationError(_("The expiry time is in the past."))
        return value

    def clean_allow_ips(self) -> list[str]:
        value = self.cleaned_data["allow_ips"] or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError(_("Enter a list of IP addresses or CIDR ranges."))
        try:
            return allow_ips_clean(value)
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None

    def clean_model_limits(self) -> list[str]:
        value = self.cleaned_data["model_limits"] or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise forms.ValidationError(_("Enter a list of model names."))
        return value


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenAdminForm
    list_display = (
        "name", "user", "masked_key", "status", "remain_quota", "used_quota", "unlimited_quota", "expires_at",
        "group", "last_used_at",
    )
    list_filter = ("status", "unlimited_quota", "group", "expires_at", "last_used_at")
    list_select_related = ("user", "group")
    search_fields = ("name", "user__username", "key_prefix")
    search_help_text = _("A token name, a username, or the start of a key (sk-…).")
    fieldsets = (
        (None, {"fields": ("name", "user", "masked_key", "status")}),
        (_("Quota"), {"fields": ("unlimited_quota", "remain_quota", "used_quota", "expires_at")}),
        (_("Limits"), {"fields": ("group", "model_limits", "allow_ips", "rpm_limit", "concurrency_limit")}),
        (_("Activity"), {"fields": ("created_at", "last_used_at")}),
    )
    readonly_fields = ("user", "masked_key", "used_quota", "created_at", "last_used_at")

    @admin.display(description=_("key"))
    def masked_key(self, obj: ApiToken) -> str:
        return obj.masked_key

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # users create their own tokens; the key is shown to them once

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, **kwargs: Any) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, **kwargs)
        form.operator = request.user  # a class made for this request by modelform_factory
        return form

    def save_model(self, request: HttpRequest, obj: ApiToken, form: forms.ModelForm, change: bool) -> None:
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in EDITABLE}
        token_update(token=obj, user=request.user, **changed)
