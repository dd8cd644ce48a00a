"""The operators' site statistics page."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from console.site_stats import site_stats
from console.views.common import login_required


@login_required
def site(request: HttpRequest) -> HttpResponse:
    """Spend, requests, top users and upstream errors for the whole site; operators only (others get a 404)."""
    if not request.user.is_platform_admin:
        raise Http404
    return render(request, "console/site_stats.html", {"stats": site_stats()})
