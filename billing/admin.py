"""Operator screens for billing: groups and prices are edited here; the ledger and usage logs are only read."""

from __future__ import annotations

import csv
import re
from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.http import content_disposition_header
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from billing.groups import group_delete
from billing.models import (
    LedgerEntry,
    ModelPrice,
    RedemptionCode,
    RedemptionStatus,
    TopUpOrder,
    TopUpStatus,
    UsageLog,
    UserGroup,
)
from billing.redemption import MAX_BATCH, redemption_batch_create, redemption_set_status
from billing.topups import topup_order_complete
from config.errors import ServiceError
from tokens.keys import secret_hash


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records written only by the services (ledger, relay): operators may look, never add, edit or delete."""

    show_full_result_count = False  # these tables grow without bound; skip the second COUNT(*)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(UserGroup)
class UserGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "ratio", "selectable", "rpm_limit", "concurrency_limit", "user_count", "description")
    list_editable = ("ratio", "selectable")
    list_filter = ("selectable",)
    search_fields = ("name", "description")

    def get_queryset(self, request: HttpRequest) -> QuerySet[UserGroup]:
        return super().get_queryset(request).annotate(user_count=Count("users"))

    @admin.display(description=_("users"), ordering="user_count")
    def user_count(self, obj: UserGroup) -> int:
        return obj.user_count

    def has_delete_permission(self, request: HttpRequest, obj: UserGroup | None = None) -> bool:
        if obj is not None and obj.name == settings.DEFAULT_GROUP:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: UserGroup) -> None:
        group_delete(group=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[UserGroup]) -> None:
        for group in queryset:
            try:
                group_delete(group=group)
            except ServiceError as exc:
                self.message_user(request, f"{group.name}: {exc.message}", messages.ERROR)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model", "provider", "category", "context_window", "model_ratio", "completion_ratio", "cache_ratio",
        "price_per_call", "price_per_minute",
    )
    list_editable = ("model_ratio", "completion_ratio", "cache_ratio", "price_per_call")
    list_filter = ("category", "provider")
    search_fields = ("model", "provider")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "amount", "reason", "balance_after", "ref", "note")
    list_filter = ("reason", "created_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "ref", "note")
    date_hierarchy = "created_at"


class PricedModelFilter(admin.SimpleListFilter):
    """Models from the price list: a DISTINCT over the whole usage log would be slow on a busy site."""

    title = _("model")
    parameter_name = "model"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [(name, name) for name in ModelPrice.objects.values_list("model", flat=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[UsageLog]) -> QuerySet[UsageLog]:
        return queryset.filter(model=self.value()) if self.value() else queryset


@admin.register(UsageLog)
class UsageLogAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at", "user", "token_name", "model", "upstream", "prompt_tokens", "completion_tokens", "quota",
        "latency_ms", "status", "status_code", "request_id",
    )
    list_filter = ("status", PricedModelFilter, "provider", "is_stream", "created_at")
    list_select_related = ("user", "upstream")
    search_fields = ("user__username", "request_id", "model", "token_name")
    date_hierarchy = "created_at"


class RedemptionBatchForm(forms.Form):
    name = forms.CharField(label=_("Batch name"), max_length=64)
    quota = forms.IntegerField(label=_("Quota per card"), min_value=1, max_value=10**15)
    count = forms.IntegerField(label=_("Number of cards"), min_value=1, max_value=MAX_BATCH, initial=10)
    expires_at = forms.DateTimeField(
        label=_("Expires"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("Optional; in the site's time zone."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["quota"].help_text = gettext("%(quota)s quota = 1 USD.") % {
            "quota": f"{settings.QUOTA_PER_USD:,}"
        }


def batch_csv(*, codes: list[str], name: str, quota: int, expires_at: datetime | None) -> HttpResponse:
    """The codes of a new batch as a CSV download; this is the only time they are ever shown."""
    filename = "card-keys-" + re.sub(r'[\s/\\:*?"<>|]+', "-", name) + ".csv"
    response = HttpResponse(
        content_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": content_disposition_header(True, filename)},
    )
    writer = csv.writer(response)
    writer.writerow(["code", "quota", "batch", "expires_at"])
    expiry = expires_at.isoformat() if expires_at else ""
    writer.writerows([code, quota, name, expiry] for code in codes)
    return response


@admin.register(RedemptionCode)
class RedemptionCodeAdmin(admin.ModelAdmin):
    list_display = (
        "code_hint", "batch_name", "quota", "status", "redeemed_by", "redeemed_at", "expires_at", "created_at",
    )
    list_filter = ("status", "batch_name", "created_at")
    list_select_related = ("redeemed_by",)
    search_fields = ("code_hint", "batch_name", "redeemed_by__username")
    search_help_text = _("A batch name, a user, the start of a code, or a whole code.")
    date_hierarchy = "created_at"
    fields = (
        "code_hint", "batch_name", "quota", "status", "expires_at", "created_by", "created_at", "redeemed_by",
        "redeemed_at",
    )
    readonly_fields = ("code_hint", "quota", "status", "created_by", "created_at", "redeemed_by", "redeemed_at")
    actions = ("disable_cards", "enable_cards")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # cards come in batches: see batch_view

    def has_batch_permission(self, request: HttpRequest) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.add_{opts.model_name}")

    def has_delete_permission(self, request: HttpRequest, obj: RedemptionCode | None = None) -> bool:
        if obj is not None and obj.status == RedemptionStatus.USED:
            return False  # the ledger's "card:<id>" references point at it (bulk delete then refuses, too)
        return super().has_delete_permission(request, obj)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[RedemptionCode], search_term: str
    ) -> tuple[QuerySet[RedemptionCode], bool]:
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            found |= queryset.filter(code_hash=secret_hash(search_term.strip()))
        return found, may_have_duplicates

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        extra_context = {"has_batch_permission": self.has_batch_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_urls(self) -> list[URLPattern]:
        return [
            path("batch/", self.admin_site.admin_view(self.batch_view), name="billing_redemptioncode_batch"),
            *super().get_urls(),
        ]

    def batch_view(self, request: HttpRequest) -> HttpResponse:
        """Make a batch of card keys and download their codes as CSV."""
        if not self.has_batch_permission(request):
            raise PermissionDenied
        form = RedemptionBatchForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            name = data["name"].strip()
            try:
                codes = redemption_batch_create(
                    name=name, quota=data["quota"], count=data["count"], created_by_id=request.user.pk,
                    expires_at=data["expires_at"],
                )
            except ServiceError as exc:
                form.add_error(None, exc.message)
            else:
                self.message_user(
                    request,
                    ngettext(
                        "Created %(count)d card key in batch %(name)s.",
                        "Created %(count)d card keys in batch %(name)s.",
                        len(codes),
                    ) % {"count": len(codes), "name": name},
                    messages.SUCCESS,
                )
                return batch_csv(codes=codes, name=name, quota=data["quota"], expires_at=data["expires_at"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": gettext("Create a batch of card keys"),
            "intro": gettext("The codes are downloaded as a CSV file once; they cannot be shown again."),
            "submit_label": gettext("Create and download CSV"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/tool_form.html", context)

    def _set_status(
        self, queryset: QuerySet[RedemptionCode], *, source: RedemptionStatus, target: RedemptionStatus
    ) -> tuple[int, int]:
        changed = 0
        with transaction.atomic():
            # Locked, so that a card redeemed meanwhile is not flipped back from "used".
            cards = RedemptionCode.objects.select_for_update().filter(pk__in=queryset.values("pk"), status=source)
            for card in cards:
                redemption_set_status(card=card, status=target)
                changed += 1
        return changed, queryset.count() - changed

    def _report(self, request: HttpRequest, changed_text: str, skipped: int) -> None:
        message = changed_text
        if skipped:
            message += " " + ngettext(
                "%(count)d card key was skipped (used, or already in that state).",
                "%(count)d card keys were skipped (used, or already in that state).",
                skipped,
            ) % {"count": skipped}
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Disable selected unused card keys"), permissions=["change"])
    def disable_cards(self, request: HttpRequest, queryset: QuerySet[RedemptionCode]) -> None:
        changed, skipped = self._set_status(queryset, source=RedemptionStatus.UNUSED, target=RedemptionStatus.DISABLED)
        text = ngettext("%(count)d card key disabled.", "%(count)d card keys disabled.", changed) % {"count": changed}
        self._report(request, text, skipped)

    @admin.action(description=_("Re-enable selected disabled card keys"), permissions=["change"])
    def enable_cards(self, request: HttpRequest, queryset: QuerySet[RedemptionCode]) -> None:
        changed, skipped = self._set_status(queryset, source=RedemptionStatus.DISABLED, target=RedemptionStatus.UNUSED)
        text = ngettext(
            "%(count)d card key re-enabled.", "%(count)d card keys re-enabled.", changed
        ) % {"count": changed}
        self._report(request, text, skipped)


@admin.register(TopUpOrder)
class TopUpOrderAdmin(ReadOnlyAdmin):
    list_display = ("trade_no", "user", "amount_usd", "money", "method", "status", "created_at", "paid_at")
    list_filter = ("status", "method")
    search_fields = ("trade_no", "gateway_trade_no", "user__username")
    actions = ("complete_orders",)

    @admin.action(description=_("Mark as paid and credit the balance (orders the gateway never confirmed)"))
    def complete_orders(self, request: HttpRequest, queryset: QuerySet[TopUpOrder]) -> None:
        credited = sum(topup_order_complete(trade_no=order.trade_no, gateway_trade_no="manual")
                       for order in queryset.filter(status=TopUpStatus.PENDING))
        self.message_user(request, ngettext("%(count)d order credited.", "%(count)d orders credited.", credited)
                          % {"count": credited}, messages.SUCCESS)
