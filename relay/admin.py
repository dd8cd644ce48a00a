"""Operator screen for upstreams. Keys are write-only: typed in, encrypted, and never shown again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_post_parameters

from billing.groups import group_default
from relay.key_vault import keys_parse
from relay.probe import upstream_test
from relay.models import MediaTask, Upstream, UpstreamStatus
from relay.overrides import header_override_problem, param_override_problem, status_code_mapping_problem
from relay.providers import PROVIDERS
from relay.upstream_balance import BalanceUnavailable, upstream_balance_refresh
from relay.upstreams import FIELDS as UPSTREAM_FIELDS
from relay.upstreams import upstream_keys_enable, upstream_save, upstream_set_status


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that never renders a value, not even the one just submitted (as PasswordInput does)."""

    def format_value(self, value: Any) -> None:
        return None


class UpstreamAdminForm(forms.ModelForm):
    base_url = Upstream._meta.get_field("base_url").formfield(assume_scheme="https")  # Django 6's default, now
    keys = forms.CharField(
        label=_("API keys"), required=False,
        widget=WriteOnlyTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"}),
    )

    class Meta:
        model = Upstream
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            help_text = gettext(
                "One key per line (Vertex AI: the service account's JSON key file as it is; Bedrock: "
                "ACCESS_KEY|SECRET_KEY|REGION or an API key). They are stored encrypted and never shown again."
            )
        else:
            help_text = ngettext(
                "Leave empty to keep the %(count)d stored key. Keys entered here (one per line) replace it.",
                "Leave empty to keep the %(count)d stored keys. Keys entered here (one per line) replace them all.",
                self.instance.key_count,
            ) % {"count": self.instance.key_count}
        self.fields["keys"].help_text = help_text

    def clean_keys(self) -> list[str]:
        try:
            return keys_parse(self.cleaned_data.get("keys") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_served_models(self) -> list[str]:
        value = self.cleaned_data["served_models"] or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
            raise forms.ValidationError(_('Enter a list of model names, for example ["gpt-4o", "gpt-4o-mini"].'))
        return [item.strip() for item in value]

    def clean_model_mapping(self) -> dict[str, str]:
        value = self.cleaned_data["model_mapping"] or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) and v.strip() for v in value.values()):
            raise forms.ValidationError(
                _('Enter an object of model names, for example {"gpt-4o": "gpt-4o-2024-11-20"}.')
            )
        return value

    def clean_param_override(self) -> dict[str, Any]:
        value = self.cleaned_data["param_override"] or {}
        problem = param_override_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_status_code_mapping(self) -> dict[str, int]:
        value = self.cleaned_data["status_code_mapping"] or {}
        problem = status_code_mapping_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean_header_override(self) -> dict[str, str]:
        value = self.cleaned_data["header_override"] or {}
        problem = header_override_problem(value)
        if problem:
            raise forms.ValidationError(problem)
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        provider = PROVIDERS.get(cleaned.get("type") or "")
        if provider is None:
            return cleaned
        if self.instance.pk is None and not cleaned.get("keys") and provider.key != "demo":
            self.add_error("keys", gettext("At least one key is required."))
        if not cleaned.get("base_url") and not provider.default_base_url and provider.key != "demo":
            self.add_error("base_url", gettext("This provider type needs a base URL."))
        return cleaned


@admin.register(Upstream)
class UpstreamAdmin(admin.ModelAdmin):
    form = UpstreamAdminForm
    list_display = (
        "name", "type", "status", "priority", "weight", "keys_in_use", "models_count", "last_test_latency_ms",
        "balance_shown",
    )
    list_filter = ("type", "status", "groups")
    search_fields = ("name", "base_url")
    filter_horizontal = ("groups",)
    fieldsets = (
        (None, {"fields": ("name", "type", "base_url", "keys", "key_count")}),
        (_("Routing"), {"fields": ("served_models", "model_mapping", "groups", "priority", "weight")}),
        (_("Status"), {"fields": ("status", "status_reason", "test_model", "last_test_latency_ms", "last_tested_at")}),
        (_("Overrides"), {
            "classes": ("collapse",),
            "fields": ("param_override", "header_override", "system_prompt", "system_prompt_prepend",
                       "status_code_mapping"),
        }),
        (_("Timeouts and provider settings"), {
            "classes": ("collapse",),
            "fields": ("connect_timeout", "first_byte_timeout", "total_timeout", "extras"),
        }),
        (_("History"), {"fields": ("created_at", "updated_at")}),
    )
    readonly_fields = ("key_count", "last_test_latency_ms", "last_tested_at", "created_at", "updated_at")
    actions = ("enable_upstreams", "disable_upstreams", "test_upstreams", "update_balances", "enable_keys")

    @method_decorator(sensitive_post_parameters("keys"))  # keep keys out of error reports
    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description=_("models"))
    def models_count(self, obj: Upstream) -> int:
        return len(obj.served_models or [])

    @admin.display(description=_("keys"))
    def keys_in_use(self, obj: Upstream) -> str:
        """All keys, or "in use / all" when some were disabled after the upstream refused them."""
        off = len(obj.disabled_keys or {})
        return f"{obj.key_count - off} / {obj.key_count}" if off else str(obj.key_count)

    @admin.action(description=_("Put disabled keys back in use"), permissions=["change"])
    def enable_keys(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        back = sum(upstream_keys_enable(upstream=upstream) for upstream in queryset)
        self.message_user(request, ngettext("%(count)d key is back in use.", "%(count)d keys are back in use.",
                                            back) % {"count": back}, messages.SUCCESS)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"groups": [group_default().pk], **super().get_changeform_initial_data(request)}

    def save_model(self, request: HttpRequest, obj: Upstream, form: forms.ModelForm, change: bool) -> None:
        # The form has already put its values on `obj`; naming the changed ones lets the service react
        # (enabling clears the status reason). Groups are saved afterwards by save_related.
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in UPSTREAM_FIELDS}
        upstream_save(upstream=obj, keys=form.cleaned_data["keys"] or None, **fields)

    def _set_status(
        self, queryset: QuerySet[Upstream], *, status: UpstreamStatus, reason: str = ""
    ) -> tuple[int, int]:
        changed = 0
        for upstream in queryset:
            if upstream.status != status:
                upstream_set_status(upstream=upstream, status=status, reason=reason)
                changed += 1
        return changed, len(queryset) - changed

    @admin.action(description=_("Enable selected upstreams"), permissions=["change"])
    def enable_upstreams(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        changed, unchanged = self._set_status(queryset, status=UpstreamStatus.ENABLED)
        message = ngettext("%(count)d upstream enabled.", "%(count)d upstreams enabled.", changed) % {"count": changed}
        if unchanged:
            message += " " + ngettext(
                "%(count)d was already enabled.", "%(count)d were already enabled.", unchanged
            ) % {"count": unchanged}
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Disable selected upstreams"), permissions=["change"])
    def disable_upstreams(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        reason = gettext("Disabled by %(user)s.") % {"user": request.user.get_username()}
        changed, unchanged = self._set_status(queryset, status=UpstreamStatus.DISABLED, reason=reason)
        message = ngettext(
            "%(count)d upstream disabled.", "%(count)d upstreams disabled.", changed
        ) % {"count": changed}
        if unchanged:
            message += " " + ngettext(
                "%(count)d was already disabled.", "%(count)d were already disabled.", unchanged
            ) % {"count": unchanged}
        self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Test selected upstreams (one-token request)"), permissions=["change"])
    def test_upstreams(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        for upstream in queryset[:20]:
            result = upstream_test(upstream=upstream)
            level = messages.SUCCESS if result.ok else messages.ERROR
            outcome = gettext("answered") if result.ok else result.message
            self.message_user(request, f"{upstream.name}: {outcome} ({result.latency_ms} ms)", level)

    @admin.action(description=_("Ask selected upstreams for their balance"), permissions=["change"])
    def update_balances(self, request: HttpRequest, queryset: QuerySet[Upstream]) -> None:
        for upstream in queryset[:20]:
            try:
                balance = upstream_balance_refresh(upstream=upstream)
            except BalanceUnavailable as exc:
                self.message_user(request, f"{upstream.name}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{upstream.name}: {balance.amount} {balance.currency}", messages.SUCCESS)

    @admin.display(description=_("balance"))
    def balance_shown(self, obj: Upstream) -> str:
        return f"{obj.balance.normalize():f} {obj.balance_currency}" if obj.balance is not None else "-"


@admin.register(MediaTask)
class MediaTaskAdmin(admin.ModelAdmin):
    """Generation tasks, read only: the poller and settlement write them."""

    list_display = ("submitted_at", "public_id", "user", "kind", "action", "model", "upstream", "status", "progress",
                    "quota_reserved", "quota_charged", "settled_at")
    list_filter = ("kind", "status", "submitted_at")
    list_select_related = ("user", "upstream")
    search_fields = ("public_id", "upstream_task_id", "user__username", "model")
    date_hierarchy = "submitted_at"
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
