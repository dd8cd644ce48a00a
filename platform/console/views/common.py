"""What every console view shares: the login check that also works for htmx requests."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django_htmx.http import HttpResponseClientRedirect

View = Callable[..., HttpResponse]


def login_required(view: View) -> View:
    """Send anonymous visitors to the login page; an htmx request is redirected as a whole page, not swapped."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        htmx = getattr(request, "htmx", None)
        if htmx:
            here = htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(f"{settings.LOGIN_URL}?{urlencode({'next': here})}")
        return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': request.get_full_path()})}")

    return wrapper


def is_htmx(request: HttpRequest) -> bool:
    """Whether htmx sent the request (django-htmx's middleware sets `request.htmx`)."""
    return bool(getattr(request, "htmx", False))
