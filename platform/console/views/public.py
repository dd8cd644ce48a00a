"""Pages anyone may read: the home page, models and pricing, and the API docs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.models import ModelCategory
from config.options import option
from console.forms import PricingFilterForm
from console.selectors import groups_for, home_summary, model_catalog, model_names_for
from console.views.common import is_htmx

EXAMPLE_MODEL = "demo-chat"


def relay_base_url(request: HttpRequest) -> str:
    """The base URL clients give their SDK: this server's address with /v1."""
    return request.build_absolute_uri("/v1")


def home(request: HttpRequest) -> HttpResponse:
    """What the platform offers, the groups and their ratios, the base URL and a three-step quick start."""
    return render(request, "console/home.html", {
        **home_summary(),
        "base_url": relay_base_url(request),
        "new_user_quota": option("NEW_USER_QUOTA"),
    })


def pricing(request: HttpRequest) -> HttpResponse:
    """Every model the visitor's groups can use, priced per group (per 1M tokens, per call or per minute)."""
    form = PricingFilterForm(request.GET or None, categories=list(ModelCategory.choices))
    data = form.cleaned_data if form.is_valid() else {}
    groups = groups_for(request.user)
    rows = model_catalog(groups=groups, query=data.get("q", ""), category=data.get("category", ""))
    context = {"form": form, "groups": groups, "rows": rows}
    if is_htmx(request) and request.htmx.target == "price-table":
        return render(request, "console/partials/price_table.html", context)
    return render(request, "console/pricing.html", context)


def docs(request: HttpRequest) -> HttpResponse:
    """How to call the API from curl, Python and JavaScript, filled in with this server's URL."""
    models = model_names_for(request.user)
    model = EXAMPLE_MODEL if not models or EXAMPLE_MODEL in models else models[0]
    return render(request, "console/docs.html", {
        "base_url": relay_base_url(request),
        "server_url": request.build_absolute_uri("/").rstrip("/"),
        "model": model,
    })
