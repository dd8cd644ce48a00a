"""Run-time site options in the admin: pick an option, enter its value; delete the row to use the setting again."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from config.errors import ServiceError
from config.models import SiteOption
from config.options import OPTIONS, option_parse, options_changed


class SiteOptionForm(forms.ModelForm):
    name = forms.ChoiceField(label=_("Option"), choices=[(name, f"{name}: {spec.label}") for name, spec in
                                                         OPTIONS.items()])
    value = forms.CharField(label=_("Value"), required=False, widget=forms.Textarea(attrs={"rows": 3}),
                            help_text=_("Whole numbers for quota, true/false, comma-separated lists, or text."))

    class Meta:
        model = SiteOption
        fields = ("name", "value")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        value = self.initial.get("value")
        if isinstance(value, list):
            self.initial["value"] = ", ".join(value)
        elif isinstance(value, bool):
            self.initial["value"] = "true" if value else "false"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "name" in cleaned:
            try:
                cleaned["value"] = option_parse(cleaned["name"], cleaned.get("value", ""))
            except ServiceError as exc:
                self.add_error("value", exc.message)
        return cleaned


@admin.register(SiteOption)
class SiteOptionAdmin(admin.ModelAdmin):
    form = SiteOptionForm
    list_display = ("name", "label", "value", "updated_at")

    @admin.display(description=_("Meaning"))
    def label(self, obj: SiteOption) -> str:
        spec = OPTIONS.get(obj.name)
        return str(spec.label) if spec else ""

    def save_model(self, request: HttpRequest, obj: SiteOption, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        options_changed()

    def delete_model(self, request: HttpRequest, obj: SiteOption) -> None:
        super().delete_model(request, obj)
        options_changed()

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[SiteOption]) -> None:
        super().delete_queryset(request, queryset)
        options_changed()
