"""Two-factor authentication in the console: setting it up and off in Settings, and the code step of signing in."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.two_factor import (
    TwoFactorError, login_pending_finish, login_pending_user, totp_qr_svg, totp_uri, two_factor_begin,
    two_factor_disable, two_factor_enable,
)
from console.forms import CodeForm
from console.views.auth import next_url, sign_in
from console.views.common import login_required


def login_code(request: HttpRequest) -> HttpResponse:
    """After the password: the code from the user's app (or a backup code), then signed in."""
    if login_pending_user(request.session) is None:
        return redirect("console:login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = login_pending_finish(request.session, form.cleaned_data["code"])
        except TwoFactorError as exc:
            form.add_error("code", exc.message)
        else:
            sign_in(request, user)
            return redirect(next_url(request))
    return render(request, "console/login_code.html", {"form": form, "next": request.GET.get("next", "")})


@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """Off: a new secret as a QR code to scan and a code to confirm it. On: the form that turns it off."""
    user = request.user
    form = CodeForm(request.POST or None)
    if user.two_factor_enabled_at:
        return render(request, "console/two_factor.html", {"form": form})
    if request.method == "POST" and form.is_valid():
        try:
            backup_codes = two_factor_enable(user=user, code=form.cleaned_data["code"])
        except TwoFactorError as exc:
            form.add_error("code", exc.message)
        else:
            return render(request, "console/two_factor_on.html", {"backup_codes": backup_codes})
    secret = two_factor_begin(user=user)
    return render(request, "console/two_factor.html", {
        "form": form, "secret": secret, "qr_svg": totp_qr_svg(totp_uri(secret, user.username)),
    })


@login_required
@require_POST
def two_factor_off(request: HttpRequest) -> HttpResponse:
    form = CodeForm(request.POST)
    if form.is_valid():
        try:
            two_factor_disable(user=request.user, code=form.cleaned_data["code"])
        except TwoFactorError as exc:
            form.add_error("code", exc.message)
        else:
            messages.success(request, _("Two-factor authentication is off."))
            return redirect("console:settings")
    return render(request, "console/two_factor.html", {"form": form})
