"""The playground: chat with any model the user's group offers, billed to their balance like any request."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie

from console.selectors import model_names_for
from console.views.common import login_required
from relay.playground import PATH, SESSION_KEY
from tokens.services import playground_key_issue, playground_key_valid


@login_required
@ensure_csrf_cookie  # the page's script sends the cookie's value back as X-CSRFToken
def playground(request: HttpRequest) -> HttpResponse:
    """The page; the session gets a playground key (never shown) unless it holds one that still works."""
    key = request.session.get(SESSION_KEY)
    if not isinstance(key, str) or not playground_key_valid(user=request.user, key=key):
        request.session[SESSION_KEY] = playground_key_issue(user=request.user)
    return render(request, "console/playground.html", {"models": model_names_for(request.user), "chat_url": PATH,
                                                       "csrf_cookie_name": settings.CSRF_COOKIE_NAME})
