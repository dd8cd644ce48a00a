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
    Profile,
    oauth_authorize_url,
    oauth_link,
    oauth_profile,
    oauth_providers,
    oauth_sign_in,
    oauth_state,
    oauth_unlink,
)
from accounts.telegram import telegram_profile, telegram_provider
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
    except OAuthError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    return _arrived(request, chosen, profile, linking=linking, next_page=pending.get("next", ""),
                    invite_code=pending.get("aff", ""))


def _arrived(request: HttpRequest, provider: OAuthProvider, profile: Profile, *, linking: bool, next_page: str,
             invite_code: str) -> HttpResponse:
    """The provider said who this is: link it to the signed-in user, or sign its user in (opening one if new)."""
    try:
        if linking:
            oauth_link(user=request.user, provider=provider, profile=profile)
        else:
            user = oauth_sign_in(provider=provider, profile=profile, invite_code=invite_code)
    except OAuthError as exc:
        messages.error(request, exc.message)
        return redirect("console:settings" if linking else "console:login")
    if linking:
        messages.success(request, _("Your %(provider)s account is linked.") % {"provider": provider.label})
        return redirect("console:settings")
    if user.two_factor_enabled_at:  # the provider vouched for who it is; the second factor still applies
        login_pending_start(request.session, user)
        return redirect(f"{reverse('console:login_code')}?{urlencode({'next': next_page})}")
    sign_in(request, user)
    return redirect(next_page or "console:dashboard")


@require_POST
def telegram_auth(request: HttpRequest) -> HttpResponse:
    """The Telegram Login Widget's data, posted by the console page with its CSRF token."""
    provider = telegram_provider()
    if provider is None:
        raise Http404("Telegram sign-in is off")
    linking = request.user.is_authenticated
    try:
        profile = telegram_profile(request.POST.dict())
    except OAuthError as exc:
        messages.error(request, exc.message)
        return redirect("console:settings" if linking else "console:login")
    return _arrived(request, provider, profile, linking=linking, next_page=next_url(request),
                    invite_code=request.POST.get("aff", "")[:16])


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
