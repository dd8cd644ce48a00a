"""A forgotten password: a one-time link sent by email (Django's token, which stops working once the password
changes, a login happens, or PASSWORD_RESET_MINUTES pass), and the address it goes to, set in Settings.

The request page answers the same whether or not an account has the address, so it tells no one who is
registered."""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.contrib import messages
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from accounts.models import User
from accounts.verification import BIND, email_set
from config.errors import ServiceError
from config.options import option
from console.forms import EmailChangeForm
from console.views.auth import send_code
from console.views.common import login_required

logger = logging.getLogger("console")


class ResetRequestForm(auth_forms.PasswordResetForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class NewPasswordForm(auth_forms.SetPasswordForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


RESEND_SECONDS = 60  # one mail per address a minute, so the page cannot be used to flood an inbox


def _first_request_in_a_while(address: str) -> bool:
    key = "password-reset:" + hashlib.sha256(address.strip().lower().encode()).hexdigest()
    try:
        return bool(cache.add(key, 1, RESEND_SECONDS))
    except Exception:  # the cache (Redis) is away: resetting a password matters more than the throttle
        logger.warning("password reset throttle unavailable", exc_info=True)
        return True


class ResetRequestView(auth_views.PasswordResetView):
    form_class = ResetRequestForm
    template_name = "console/password_reset.html"
    email_template_name = "console/email/password_reset.txt"
    subject_template_name = "console/email/password_reset_subject.txt"
    success_url = reverse_lazy("console:password_reset_sent")

    @property
    def extra_email_context(self) -> dict[str, Any]:  # type: ignore[override]
        return {"site_name": option("SITE_NAME")}

    def form_valid(self, form: Any) -> HttpResponse:
        if not _first_request_in_a_while(form.cleaned_data["email"]):
            return HttpResponseRedirect(self.get_success_url())  # the same answer, no second mail
        return super().form_valid(form)


class ResetSentView(auth_views.PasswordResetDoneView):
    template_name = "console/password_reset_sent.html"


class ResetConfirmView(auth_views.PasswordResetConfirmView):
    form_class = NewPasswordForm
    template_name = "console/password_reset_confirm.html"
    success_url = reverse_lazy("console:login")

    def form_valid(self, form: Any) -> HttpResponse:
        messages.success(self.request, _("Your password has been set. Log in with it."))
        return super().form_valid(form)


@login_required
def email_change(request: HttpRequest) -> HttpResponse:
    """Set, change or remove the account's email address (the current password confirms it; with
    EMAIL_VERIFICATION on, a code mailed to the new address too)."""
    verification = option("EMAIL_VERIFICATION")
    form = EmailChangeForm(request.POST or None, user=request.user, verification=verification)
    context = {"verification": verification}
    if request.method == "POST" and verification and "send_code" in request.POST:
        sent, message = send_code(request, BIND, user=request.user)
        form = EmailChangeForm(initial={"email": request.POST.get("email", "")}, user=request.user, verification=True)
        return render(request, "console/email_change.html", {**context, "form": form, "code_sent": sent,
                                                             "code_message": message})
    if request.method == "POST" and form.is_valid():
        email = User.objects.normalize_email(form.cleaned_data["email"])
        try:
            email_set(user=request.user, email=email, code=form.cleaned_data.get("verification_code", ""))
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Your email address has been saved.") if email
                             else _("Your email address has been removed."))
            return redirect("console:settings")
    return render(request, "console/email_change.html", {**context, "form": form})
