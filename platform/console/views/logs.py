"""Usage logs: filters, totals for the filter, pages appended with htmx, CSV export."""

from __future__ import annotations

import csv
from collections.abc import Iterator

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.models import UsageLog, UsageStatus
from billing.pricing import quota_to_usd
from billing.reports import log_facets, log_totals
from billing.selectors import usage_logs
from console.forms import LogFilterForm
from console.views.common import is_htmx, login_required

PAGE_SIZE = 50
CSV_MAX_ROWS = 100_000


def _filter_form(request: HttpRequest) -> LogFilterForm:
    models, tokens = log_facets(user_id=request.user.pk)
    return LogFilterForm(request.GET or None, models=models, tokens=tokens)


@login_required
def logs(request: HttpRequest) -> HttpResponse:
    """The filtered logs with their totals; htmx asks for the results only, or for the next page's rows."""
    form = _filter_form(request)
    rows = usage_logs(user_id=request.user.pk, f=form.log_filter())
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page}
    target = request.htmx.target if is_htmx(request) else None
    if target == "log-more":
        return render(request, "console/partials/log_rows.html", context)
    context["totals"] = log_totals(rows)
    if target == "log-results":
        return render(request, "console/partials/log_results.html", context)
    return render(request, "console/logs.html", context)


class _Echo:
    """A file-like object whose write returns the line, so csv.writer yields text instead of writing it."""

    def write(self, value: str) -> str:
        return value


def _csv_lines(rows: Iterator[UsageLog]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield "\ufeff"  # a byte-order mark, so spreadsheet programs read the Chinese text as UTF-8
    yield writer.writerow([
        _("Time"), _("API key"), _("Model"), _("Endpoint"), _("Stream"), _("Prompt tokens"),
        _("Completion tokens"), _("Cached tokens"), _("Quota"), _("Cost (USD)"), _("Latency (ms)"), _("Status"),
        _("Request ID"),
    ])
    statuses = dict(UsageStatus.choices)
    for log in rows:
        yield writer.writerow([
            timezone.localtime(log.created_at).strftime("%Y-%m-%d %H:%M:%S"), log.token_name, log.model,
            log.endpoint, _("yes") if log.is_stream else _("no"), log.prompt_tokens, log.completion_tokens,
            log.cached_tokens, log.quota, f"{quota_to_usd(log.quota):f}", log.latency_ms,
            str(statuses.get(log.status, log.status)), log.request_id,
        ])


@login_required
def logs_csv(request: HttpRequest) -> HttpResponse:
    """The filtered logs as CSV (newest first, at most CSV_MAX_ROWS rows)."""
    form = _filter_form(request)
    rows = usage_logs(user_id=request.user.pk, f=form.log_filter())[:CSV_MAX_ROWS].iterator(chunk_size=2000)
    name = f"usage-{timezone.localdate().isoformat()}.csv"
    response = HttpResponse("".join(_csv_lines(rows)), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
