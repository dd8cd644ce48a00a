"""The console playground's chat route (`/pg/chat/completions`): the signed-in browser session instead of a key.

The console page keeps a playground key in the user's server-side session (never shown); the relay finds it from
the session cookie and relays the request as if sent with it. Writes need the CSRF cookie's value in
`X-CSRFToken` (a cross-site page cannot read it) and, when the browser sends one, a same-site `Origin`.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie
from importlib import import_module
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user
from django.http import HttpRequest

from relay import errors
from relay.http import RelayRequest
from relay.snapshots import in_thread
from tokens.services import playground_key_valid

PATH = "/pg/chat/completions"
SESSION_KEY = "playground_key"


def _cookies(req: RelayRequest) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(req.headers.get("cookie", ""))
    except CookieError:
        return {}
    return {name: morsel.value for name, morsel in jar.items()}


def _session_key(session_key: str) -> str | None:
    """The playground key of the session's signed-in, enabled user, if the session has one that still works."""
    request = HttpRequest()
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(request)  # checks the session against the user's password hash, as Django does per request
    if not user.is_authenticated or not user.is_active:
        return None
    key = request.session.get(SESSION_KEY)
    return key if isinstance(key, str) and playground_key_valid(user=user, key=key) else None


async def playground_key(req: RelayRequest) -> str:
    """The key a playground request is relayed with; 401/403 in OpenAI's shape otherwise."""
    cookies = _cookies(req)
    token, sent = cookies.get(settings.CSRF_COOKIE_NAME, ""), req.headers.get("x-csrftoken", "")
    if not token or not hmac.compare_digest(token, sent):
        raise errors.forbidden("The playground needs the page's CSRF token in X-CSRFToken.", "csrf_failed")
    origin = req.headers.get("origin")
    if origin and urlsplit(origin).netloc != req.headers.get("host", ""):
        raise errors.forbidden("The playground answers its own pages only.", "csrf_failed")
    session_key = cookies.get(settings.SESSION_COOKIE_NAME, "")
    key = await in_thread(_session_key)(session_key) if session_key else None
    if key is None:
        raise errors.unauthorized("Sign in to the console and open the playground again.")
    return key
