"""Registration, login, logout and password change."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.models import User
from accounts.services import user_authenticate, user_register
from accounts.oauth import oauth_providers
from accounts.telegram import telegram_provider
from accounts.turnstile import turnstile_check, turnstile_context
from accounts.two_factor import login_pending_start
from accounts.verification import CODE_MINUTES, REGISTER, verification_send
from billing.reports import trial_credit
from config.errors import ServiceError
from config.options import option
from console.forms import LoginForm, RegisterForm
from console.views.common import login_required
from relay.client_ip import client_ip

TRIAL_SESSION_KEY = "console_trial_credit"


def next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return reverse("console:dashboard")


def sign_in(request: HttpRequest, user: User) -> None:
    """Log the user in; on their very first login, remember to show the trial credit they received."""
    first_login = user.last_login is None
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    if first_login:
        credit = trial_credit(user_id=user.pk)
        if credit > 0:
            request.session[TRIAL_SESSION_KEY] = credit


def sign_in_choices() -> dict[str, Any]:
    """The outside sign-in providers a page offers: OAuth buttons, and Telegram's widget (its bot's name)."""
    return {"oauth_providers": list(oauth_providers().values()),
            "telegram_bot": settings.TELEGRAM_BOT_NAME if telegram_provider() else ""}


def human_check(request: HttpRequest) -> str | None:
    """The Turnstile check of a posted form: None when it passed (or is off), else what to tell the user."""
    try:
        turnstile_check(request.POST.get("cf-turnstile-response", ""), client_ip(request) or "")
    except ServiceError as exc:
        return exc.message
    return None


def send_code(request: HttpRequest, purpose: str, user: User | None = None) -> tuple[bool, str]:
    """Mail a verification code to the posted address: (sent, what to tell the user)."""
    email = request.POST.get("email", "")
    try:
        verification_send(email=email, purpose=purpose, client_ip=client_ip(request) or "", user=user)
    except ServiceError as exc:
        return False, exc.message
    return True, _("A code has been sent to %(email)s; it works for %(minutes)d minutes.") % {
        "email": email, "minutes": CODE_MINUTES}


def register(request: HttpRequest) -> HttpResponse:
    """Sign up (the trial credit comes with the account), then land on the dashboard logged in. With
    EMAIL_VERIFICATION on, "Send code" mails a code to the address first."""
    if request.user.is_authenticated:
        return redirect("console:dashboard")
    if not option("REGISTRATION_ENABLED"):
        return render(request, "console/register.html", {"closed": True})
    verification = option("EMAIL_VERIFICATION")
    form = RegisterForm(request.POST or None, initial={"invite_code": request.GET.get("aff", "")},
                        verification=verification)
    context = {"new_user_quota": option("NEW_USER_QUOTA"), "verification": verification, **turnstile_context(),
               **sign_in_choices(), "aff": request.GET.get("aff", "")}
    problem = human_check(request) if request.method == "POST" else None
    if request.method == "POST" and verification and "send_code" in request.POST:
        kept = {name: request.POST.get(name, "") for name in ("username", "email", "invite_code")}
        sent, message = (False, problem) if problem else send_code(request, REGISTER)
        form = RegisterForm(initial=kept, verification=True)
        return render(request, "console/register.html", {**context, "form": form, "code_sent": sent,
                                                         "code_message": message})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if problem:
                raise ServiceError(problem)
            user = user_register(username=data["username"], password=data["password"], email=data["email"],
                                 invite_code=data["invite_code"], verification_code=data.get("verification_code", ""))
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            sign_in(request, user)
            return redirect("console:dashboard")
    return render(request, "console/register.html", {**context, "form": form})


def login_view(request: HttpRequest) -> HttpResponse:
    """Log in with the same throttled check the management API uses, then go to `next` or the dashboard."""
    if request.user.is_authenticated:
        return redirect(next_url(request))
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            problem = human_check(request)
            if problem:
                raise ServiceError(problem)
            user = user_authenticate(request=request, username=form.cleaned_data["username"],
                                     password=form.cleaned_data["password"], client_ip=client_ip(request) or "")
        except ServiceError as exc:
            form.add_error(None, exc.message)
        else:
            if user.two_factor_enabled_at:  # the password was right; the code comes next
                login_pending_start(request.session, user)
                target = reverse("console:login_code")
                return redirect(f"{target}?{urlencode({'next': next_url(request)})}")
            sign_in(request, user)
            return redirect(next_url(request))
    return render(request, "console/login.html", {"form": form, "next": request.GET.get("next", ""),
                                                  "registration_enabled": option("REGISTRATION_ENABLED"),
                                                  **sign_in_choices(), **turnstile_context()})


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out (POST only, so that a link or an image cannot log anyone out)."""
    logout(request)
    return redirect("console:home")


@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    """Change the password with Django's form (old password, validators); other sessions are logged out. An
    account opened through a sign-in provider has none yet: it sets one without the old."""
    form_class = PasswordChangeForm if request.user.has_usable_password() else SetPasswordForm
    form = form_class(user=request.user, data=request.POST or None, label_suffix="")
    if request.method == "POST" and form.is_valid():
        form.save()
        update_session_auth_hash(request, form.user)  # stay logged in here, log out other sessions
        messages.success(request, _("Your password has been changed."))
        return redirect("console:settings")
    return render(request, "console/password_change.html", {"form": form})
