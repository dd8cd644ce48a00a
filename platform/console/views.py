"""Console pages. Views parse, call one selector or service, and render."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.models import ModelPrice, UserGroup
from relay.models import Upstream, UpstreamStatus
from relay.providers import PROVIDERS


def home(request: HttpRequest) -> HttpResponse:
    """What the platform offers, the groups and their ratios, the base URL and a three-step quick start."""
    families = sorted({
        PROVIDERS[t].label for t in Upstream.objects.filter(status=UpstreamStatus.ENABLED).values_list("type", flat=True)
        if t in PROVIDERS
    })
    base_url = request.build_absolute_uri("/v1")
    return render(request, "console/home.html", {
        "site_name": settings.SITE_NAME,
        "groups": UserGroup.objects.filter(selectable=True).order_by("ratio", "name"),
        "families": families,
        "model_count": ModelPrice.objects.count(),
        "base_url": base_url,
        "new_user_quota_usd": settings.NEW_USER_QUOTA / settings.QUOTA_PER_USD,
    })
