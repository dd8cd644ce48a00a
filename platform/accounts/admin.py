"""Operator screens for accounts: balances are read-only here and change only through "Adjust quota"."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from accounts.models import OAuthIdentity, User, UserStatus
from accounts.services import user_adjust_quota, user_set_status
from accounts.two_factor import two_factor_reset
from billing.groups import group_default
from billing.pricing import quota_to_usd
from config.errors import ServiceError

# Far inside the BigIntegerField range, far beyond any real top-up.
MAX_ADJUSTMENT = 10**15


class QuotaAdjustForm(forms.Form):
    amount = forms.IntegerField(label=_("Amount (quota)"), min_value=-MAX_ADJUSTMENT, max_value=MAX_ADJUSTMENT)
    note = forms.CharField(label=_("Note"), max_length=255, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].help_text = gettext(
            "Positive credits the balance, negative debits it. %(quota)s quota = 1 USD."
        ) % {"quota": f"{settings.QUOTA_PER_USD:,}"}

    def clean_amount(self) -> int:
        amount = self.cleaned_data["amount"]
        if amount == 0:
            raise forms.ValidationError(_("The adjustment must not be zero."))
        return amount


def quota_text(quota: int) -> str:
    return f"{quota:,} (${quota_to_usd(quota):.2f})"


@admin.register(OAuthIdentity)
class OAuthIdentityAdmin(admin.ModelAdmin):
    """Sign-in accounts at outside providers; an operator may unlink one (delete), not make one up or change it."""

    list_display = ("user", "provider", "login", "subject", "created_at")
    list_filter = ("provider",)
    search_fields = ("user__username", "login", "subject")
    readonly_fields = ("user", "provider", "login", "subject", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        (_("Profile"), {"fields": ("display_name", "email", "phone", "first_name", "last_name")}),
        (_("Account"), {"fields": ("group", "role", "status", "invite_code", "invited_by", "access_token_hint",
                                   "two_factor_enabled_at")}),
        (_("Balance"), {"fields": ("balance", "used", "request_count", "last_checkin_date")}),
        (_("Permissions"), {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        (_("Important dates"), {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("username", "usable_password", "password1", "password2")}),
        (_("Account"), {"fields": ("group", "role", "display_name", "email")}),
    )
    readonly_fields = ("balance", "used", "request_count", "access_token_hint", "two_factor_enabled_at", "last_login",
                       "date_joined")
    list_display = (
        "username", "display_name", "email", "group", "role", "status", "balance", "used", "request_count",
        "date_joined", "last_login",
    )
    list_filter = ("status", "role", "group", "is_staff", "is_superuser")
    list_select_related = ("group",)
    search_fields = ("username", "display_name", "email", "phone", "invite_code")
    raw_id_fields = ("invited_by",)
    actions = ("enable_users", "disable_users", "reset_two_factor")

    @admin.display(description=_("balance (quota)"), ordering="quota")
    def balance(self, obj: User) -> str:
        return quota_text(obj.quota)

    @admin.display(description=_("used quota"), ordering="used_quota")
    def used(self, obj: User) -> str:
        return quota_text(obj.used_quota)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        # The add form asks for the pricing group; the default group is the usual answer.
        return {"group": group_default().pk, **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: User, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "status" in form.changed_data:
            user_set_status(user=obj, status=UserStatus(obj.status))  # keeps is_active in step

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<path:object_id>/adjust-quota/",
                self.admin_site.admin_view(self.adjust_quota_view),
                name="accounts_user_adjust_quota",
            ),
            *super().get_urls(),
        ]

    def adjust_quota_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """An intermediate form: credit or debit one user's balance through the ledger."""
        user = self.get_object(request, unquote(object_id))
        if user is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, user):
            raise PermissionDenied
        form = QuotaAdjustForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            amount = form.cleaned_data["amount"]
            try:
                user_adjust_quota(user=user, amount=amount, note=form.cleaned_data["note"], by=request.user)
            except ServiceError as exc:
                self.message_user(request, exc.message, messages.ERROR)
            else:
                log = gettext("Adjusted the balance by %(amount)+d quota.") % {"amount": amount}
                self.log_change(request, user, log)
                self.message_user(
                    request,
                    gettext("The balance of %(user)s changed by %(amount)+d; it is now %(balance)s.")
                    % {"user": user.username, "amount": amount, "balance": quota_text(user.quota)},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:accounts_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": user,
            "form": form,
            "title": gettext("Adjust the quota of %(user)s") % {"user": user.username},
            "intro": gettext("Current balance: %(balance)s.") % {"balance": quota_text(user.quota)},
            "submit_label": gettext("Adjust quota"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tool_form.html", context)

    def _set_status(self, request: HttpRequest, queryset: QuerySet[User], status: UserStatus) -> int:
        changed = 0
        for user in queryset.exclude(pk=request.user.pk).exclude(status=status):
            user_set_status(user=user, status=status)
            changed += 1
        return changed

    @admin.action(description=_("Enable selected users"), permissions=["change"])
    def enable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = self._set_status(request, queryset, UserStatus.ENABLED)
        self.message_user(
            request, ngettext("%(count)d user enabled.", "%(count)d users enabled.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable selected users"), permissions=["change"])
    def disable_users(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        count = self._set_status(request, queryset, UserStatus.DISABLED)
        message = ngettext("%(count)d user disabled.", "%(count)d users disabled.", count) % {"count": count}
        if queryset.filter(pk=request.user.pk).exists():
            message += " " + gettext("Your own account was left as it is.")
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Turn off two-factor authentication (a user who lost their device)"),
                  permissions=["change"])
    def reset_two_factor(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        users = list(queryset.filter(two_factor_enabled_at__isnull=False))
        for user in users:
            two_factor_reset(user=user)
        count = len(users)
        self.message_user(request, ngettext("Two-factor authentication turned off for %(count)d user.",
                                            "Two-factor authentication turned off for %(count)d users.", count)
                          % {"count": count}, messages.SUCCESS)
