"""The user's generation tasks (Midjourney, music, video, audio): status and progress, refreshed while unfinished."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from console.views.common import is_htmx, login_required
from relay.media_tasks.models import TERMINAL, MediaTask, TaskKind

PAGE_SIZE = 30


@login_required
def tasks(request: HttpRequest) -> HttpResponse:
    """Newest first, optionally one kind; htmx re-asks for the table every few seconds while a task is running."""
    kind = request.GET.get("kind", "")
    rows = MediaTask.objects.filter(user_id=request.user.pk).order_by("-pk")
    if kind in TaskKind.values:
        rows = rows.filter(kind=kind)
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "kind": kind, "kinds": TaskKind.choices,
               "running": any(task.status not in TERMINAL for task in page.object_list)}
    if is_htmx(request) and request.htmx.target == "task-table":
        return render(request, "console/partials/task_table.html", context)
    return render(request, "console/tasks.html", context)
