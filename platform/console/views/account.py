"""The signed-in user's own account: dashboard, top-up with card keys, daily check-in, settings."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import trigger_client_event

from accounts.models import OAuthIdentity
from accounts.oauth import oauth_providers
from accounts.services import CheckinError, access_token_issue, checkin_claim
from accounts.telegram import telegram_provider
from billing.redemption import RedemptionError, redemption_redeem
from billing.reports import credits_recent, invitations
from billing.topups import payment_methods
from config.options import option
from console.forms import PayForm, RedeemForm
from console.money import quota_usd_text
from console.selectors import checked_in_today, dashboard as dashboard_data
from console.views.auth import TRIAL_SESSION_KEY
from console.views.common import is_htmx, login_required

# An htmx event sent with every balance change; parts of a page that show credits reload on it.
BALANCE_CHANGED = "balance-changed"


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Balance, spend today and this month, request count, daily spend and spend by model."""
    return render(request, "console/dashboard.html", {
        "data": dashboard_data(user=request.user),
        "trial_credit": request.session.pop(TRIAL_SESSION_KEY, None),
    })


@login_required
def topup(request: HttpRequest) -> HttpResponse:
    """The balance, the card-key form, the daily check-in and the latest credits."""
    return render(request, "console/topup.html", {
        "form": RedeemForm(),
        "credits": credits_recent(user_id=request.user.pk),
        "checked_in": checked_in_today(request.user),
        "pay_form": PayForm() if payment_methods() else None,
    })


@login_required
@require_POST
def redeem(request: HttpRequest) -> HttpResponse:
    """Redeem a card key; the form comes back with the result and the balance on the page is updated."""
    form = RedeemForm(request.POST)
    card = None
    if form.is_valid():
        try:
            card = redemption_redeem(user_id=request.user.pk, code=form.cleaned_data["code"])
        except RedemptionError as exc:
            form.add_error("code", exc.message)
        else:
            request.user.refresh_from_db(fields=["quota"])
            form = RedeemForm()
    if not is_htmx(request):
        if card is not None:
            messages.success(request, _("Card key redeemed: %(amount)s added to your balance.")
                             % {"amount": quota_usd_text(card.quota)})
            return redirect("console:topup")
        return render(request, "console/topup.html", {
            "form": form, "credits": credits_recent(user_id=request.user.pk),
            "checked_in": checked_in_today(request.user), "pay_form": PayForm() if payment_methods() else None,
        })
    response = render(request, "console/partials/redeem_result.html", {"form": form, "card": card})
    return trigger_client_event(response, BALANCE_CHANGED) if card is not None else response


@login_required
@require_POST
def checkin(request: HttpRequest) -> HttpResponse:
    """Claim today's check-in reward once; afterwards the button stays disabled until tomorrow."""
    amount, error = None, ""
    try:
        amount = checkin_claim(user=request.user)
    except CheckinError as exc:
        error = exc.message
    if not is_htmx(request):
        if amount is not None:
            messages.success(request, _("Checked in: %(amount)s added to your balance.")
                             % {"amount": quota_usd_text(amount)})
        else:
            messages.info(request, error)
        return redirect("console:dashboard")
    response = render(request, "console/partials/checkin_result.html", {
        "checked_in": True, "reward": amount, "error": error,
    })
    return trigger_client_event(response, BALANCE_CHANGED) if amount is not None else response


def _settings_context(request: HttpRequest) -> dict:
    code = request.user.invite_code or ""
    invite_url = f"{request.build_absolute_uri(reverse('console:register'))}?aff={code}" if code else ""
    linked = {i.provider: i for i in OAuthIdentity.objects.filter(user=request.user)}
    providers = [*oauth_providers().values(), *filter(None, [telegram_provider()])]
    sign_ins = [{"provider": p, "identity": linked.get(p.key)} for p in providers]
    return {"invite_url": invite_url, "invites": invitations(user_id=request.user.pk),
            "inviter_quota": option("INVITER_QUOTA"), "invitee_quota": option("INVITEE_QUOTA"), "sign_ins": sign_ins,
            "telegram_bot": settings.TELEGRAM_BOT_NAME if telegram_provider() else ""}


@login_required
def settings_view(request: HttpRequest) -> HttpResponse:
    """Profile, password, and the management-API access token."""
    return render(request, "console/settings.html", _settings_context(request))


@login_required
@require_POST
def access_token(request: HttpRequest) -> HttpResponse:
    """Issue a new management-API access token (replacing the old one) and show it once."""
    token = access_token_issue(user=request.user)
    if is_htmx(request):
        return render(request, "console/partials/access_token.html", {"new_access_token": token})
    return render(request, "console/settings.html", {**_settings_context(request), "new_access_token": token})
