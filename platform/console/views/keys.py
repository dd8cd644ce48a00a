"""API keys: list, create (the key shown once), edit, enable or disable, delete. Actions answer htmx with
partials (a table row, the list) and plain form posts with a redirect or a full page."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import User
from config.errors import NotFound, ServiceError
from console.forms import TokenForm
from console.selectors import model_names_for
from console.views.common import is_htmx, login_required
from tokens.models import ApiToken, TokenStatus
from tokens.services import token_create, token_delete, token_of, token_update, tokens_of


def _own_token(user: User, token_id: int) -> ApiToken:
    try:
        return token_of(user=user, token_id=token_id)
    except NotFound:
        raise Http404(_("Token not found.")) from None


def _page(request: HttpRequest, **extra: Any) -> HttpResponse:
    context = {
        "tokens": tokens_of(user=request.user),
        "form": TokenForm(user=request.user),
        "models": model_names_for(request.user),
        **extra,
    }
    return render(request, "console/keys.html", context)


@login_required
def keys(request: HttpRequest) -> HttpResponse:
    """The user's keys and the form to create one."""
    return _page(request)


@login_required
@require_POST
def key_create(request: HttpRequest) -> HttpResponse:
    """Create a key and show it once; htmx gets a fresh form with the key and the list swapped out of band."""
    form = TokenForm(request.POST, user=request.user)
    token, key = None, ""
    if form.is_valid():
        try:
            token, key = token_create(user=request.user, **form.service_fields())
        except ServiceError as exc:
            form.add_error(None, exc.message)
    if not is_htmx(request):
        if token is None:
            return _page(request, form=form, form_open=True)
        return _page(request, new_token=token, new_key=key)
    if token is None:
        return render(request, "console/partials/key_form.html",
                      {"form": form, "models": model_names_for(request.user)})
    return render(request, "console/partials/key_created.html", {
        "new_token": token, "new_key": key, "tokens": tokens_of(user=request.user),
        "form": TokenForm(user=request.user), "models": model_names_for(request.user),
    })


@login_required
def key_row(request: HttpRequest, token_id: int) -> HttpResponse:
    """One key's table row (to put back after an edit is cancelled)."""
    return render(request, "console/partials/key_row.html", {"token": _own_token(request.user, token_id)})


@login_required
def key_edit(request: HttpRequest, token_id: int) -> HttpResponse:
    """Edit a key in its table row (htmx) or on its own page; the quota is set only if the user changed it."""
    token = _own_token(request.user, token_id)
    form = TokenForm(request.POST or None, user=request.user, token=token)
    if request.method == "POST" and form.is_valid():
        try:
            token = token_update(token=token, user=request.user, **form.service_fields(changed_only=True))
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            if is_htmx(request):
                return render(request, "console/partials/key_row.html", {"token": token, "flash": True})
            messages.success(request, _("Key “%(name)s” saved.") % {"name": token.name})
            return redirect("console:keys")
    context = {"token": token, "form": form, "models": model_names_for(request.user)}
    if is_htmx(request):
        return render(request, "console/partials/key_edit_row.html", context)
    return render(request, "console/key_edit.html", context)


@login_required
@require_POST
def key_toggle(request: HttpRequest, token_id: int) -> HttpResponse:
    """Enable a disabled key or disable an enabled one."""
    token = _own_token(request.user, token_id)
    status = TokenStatus.DISABLED if token.status == TokenStatus.ENABLED else TokenStatus.ENABLED
    token = token_update(token=token, user=request.user, status=status)
    if is_htmx(request):
        return render(request, "console/partials/key_row.html", {"token": token, "flash": True})
    return redirect("console:keys")


@login_required
def key_delete(request: HttpRequest, token_id: int) -> HttpResponse:
    """GET asks for confirmation (without JavaScript); POST deletes and answers with the updated list."""
    token = _own_token(request.user, token_id)
    if request.method != "POST":
        return render(request, "console/key_delete.html", {"token": token})
    name = token.name
    token_delete(token=token)
    if is_htmx(request):
        return render(request, "console/partials/key_list.html", {"tokens": tokens_of(user=request.user)})
    messages.success(request, _("Key “%(name)s” deleted.") % {"name": name})
    return redirect("console:keys")
