"""Sign-in with outside accounts in the console: off to the provider with a one-time state, back with a code;
signed in (or a new account opened), or, for a signed-in user, the provider linked to their account."""

from __future__ import annotations

import hmac
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.oauth import (
    OAuthError,
    OAuthProvider,
    oauth_authorize_url,
    oauth_link,
    oauth_profile,
    oauth_providers,
    oauth_sign_in,
    oauth_state,
    oauth_unlink,
)
from accounts.two_factor import login_pending_start
from console.views.auth import next_url, sign_in
from console.views.common import login_required

SESSION_KEY = "oauth_pending"


def _provider(key: str) -> OAuthProvider:
    provider = oauth_providers().get(key)
    if provider is None:
        raise Http404("no such sign-in provider")
    return provider


def _redirect_uri(request: HttpRequest, provider: OAuthProvider) -> str:
    path = reverse("console:oauth_callback", args=[provider.key])
    return f"{settings.SITE_URL}{path}" if settings.SITE_URL else request.build_absolute_uri(path)


def oauth_start(request: HttpRequest, provider: str) -> HttpResponse:
    """To the provider's consent page; a signed-in user links the account instead of signing in."""
    chosen = _provider(provider)
    state = oauth_state()
    request.session[SESSION_KEY] = {
        "state": state, "provider": chosen.key, "link": request.user.is_authenticated,
        "next": next_url(request), "aff": request.GET.get("aff", "")[:16],
    }
    return redirect(oauth_authorize_url(chosen, redirect_uri=_redirect_uri(request, chosen), state=state))


def oauth_callback(request: HttpRequest, provider: str) -> HttpResponse:
    chosen = _provider(provider)
    pending = request.session.pop(SESSION_KEY, None) or {}
    linking = bool(pending.get("link")) and request.user.is_authenticated
    back = "console:settings" if linking else "console:login"
    state = request.GET.get("state", "")
    if pending.get("provider") != chosen.key or not state or not hmac.compare_digest(pending.get("state", ""), state):
        messages.error(request, _("The sign-in expired or did not start here. Try again."))
        return redirect(back)
    if request.GET.get("error") or not request.GET.get("code"):
        messages.error(request, _("%(provider)s did not let you in.") % {"provider": chosen.label})
        return redirect(back)
    try:
        profile = oauth_profile(chosen, code=request.GET["code"], redirect_uri=_redirect_uri(request, chosen))
        if linking:
            oauth_link(user=request.user, provider=chosen, profile=profile)
        else:
            user = oauth_sign_in(provider=chosen, profile=profile, invite_code=pending.get("aff", ""))
    except OAuthError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    if linking:
        messages.success(request, _("Your %(provider)s account is linked.") % {"provider": chosen.label})
        return redirect("console:settings")
    if user.two_factor_enabled_at:  # the provider vouched for who it is; the second factor still applies
        login_pending_start(request.session, user)
        return redirect(f"{reverse('console:login_code')}?{urlencode({'next': pending.get('next', '')})}")
    sign_in(request, user)
    return redirect(pending.get("next") or "console:dashboard")


@login_required
@require_POST
def oauth_unlink_view(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        oauth_unlink(user=request.user, provider=provider)
    except OAuthError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The sign-in provider is unlinked."))
    return redirect("console:settings")
