"""Sign-in with outside accounts: GitHub, LINUX DO and any OpenID Connect server, by OAuth 2.0's authorization-code
flow. The provider's account id is linked to one user; the first sign-in opens an account (trial credit and all)
when registration is open, and a signed-in user can link or unlink providers in Settings.

GitHub: `/login/oauth/authorize`, `/login/oauth/access_token` (client id and secret in the form, JSON asked for),
`api.github.com/user`. LINUX DO: `/oauth2/authorize`, `/oauth2/token` (HTTP Basic), `/api/user`, its `trust_level`
checked against LINUXDO_MIN_TRUST_LEVEL. OpenID Connect: the configured endpoints, `sub` as the id.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from accounts.models import OAuthIdentity, User, UserStatus
from accounts.services import account_open
from config.errors import ServiceError
from config.options import option

USERNAME_CHARS = re.compile(r"[^\w.@+-]")


class OAuthError(ServiceError):
    code = "oauth_failed"


@dataclass(frozen=True)
class OAuthProvider:
    key: str
    label: str
    client_id: str
    client_secret: str
    authorize_url: str
    token_url: str
    userinfo_url: str
    scope: str
    subject_field: str
    login_fields: tuple[str, ...]
    basic_auth: bool  # client credentials as HTTP Basic (else in the form)


@dataclass(frozen=True)
class Profile:
    subject: str
    login: str
    email: str


def oauth_providers() -> dict[str, OAuthProvider]:
    """The providers this site has credentials for, in the order their buttons show."""
    found = [
        OAuthProvider("github", "GitHub", settings.GITHUB_CLIENT_ID, settings.GITHUB_CLIENT_SECRET,
                      f"{settings.GITHUB_OAUTH_URL}/login/oauth/authorize",
                      f"{settings.GITHUB_OAUTH_URL}/login/oauth/access_token", f"{settings.GITHUB_API_URL}/user",
                      "read:user user:email", "id", ("login",), basic_auth=False),
        OAuthProvider("linuxdo", "LINUX DO", settings.LINUXDO_CLIENT_ID, settings.LINUXDO_CLIENT_SECRET,
                      f"{settings.LINUXDO_OAUTH_URL}/oauth2/authorize", f"{settings.LINUXDO_OAUTH_URL}/oauth2/token",
                      f"{settings.LINUXDO_OAUTH_URL}/api/user", "", "id", ("username",), basic_auth=True),
        OAuthProvider("oidc", settings.OIDC_LABEL, settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET,
                      settings.OIDC_AUTHORIZATION_ENDPOINT, settings.OIDC_TOKEN_ENDPOINT,
                      settings.OIDC_USERINFO_ENDPOINT, "openid profile email", "sub",
                      ("preferred_username", "nickname", "name"), basic_auth=True),
    ]
    return {p.key: p for p in found if p.client_id and p.client_secret and p.authorize_url and p.token_url
            and p.userinfo_url}


def oauth_state() -> str:
    return secrets.token_urlsafe(24)


def oauth_authorize_url(provider: OAuthProvider, *, redirect_uri: str, state: str) -> str:
    query = {"response_type": "code", "client_id": provider.client_id, "redirect_uri": redirect_uri, "state": state}
    if provider.scope:
        query["scope"] = provider.scope
    separator = "&" if "?" in provider.authorize_url else "?"
    return f"{provider.authorize_url}{separator}{urlencode(query)}"


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        raise OAuthError(_("The sign-in provider answered HTTP %(status)d.") % {"status": response.status_code})
    return data


def oauth_profile(provider: OAuthProvider, *, code: str, redirect_uri: str) -> Profile:
    """Trade the authorization code for a token, then read who signed in."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    auth = (provider.client_id, provider.client_secret) if provider.basic_auth else None
    if not provider.basic_auth:
        form |= {"client_id": provider.client_id, "client_secret": provider.client_secret}
    try:
        with httpx.Client(timeout=10, trust_env=False, headers={"accept": "application/json"}) as client:
            token = _json(client.post(provider.token_url, data=form, auth=auth))
            if not token.get("access_token"):  # GitHub answers 200 with {"error": ...}
                raise OAuthError(_("The sign-in provider refused the code: %(reason)s")
                                 % {"reason": str(token.get("error_description") or token.get("error") or "?")[:200]})
            bearer = {"authorization": f"Bearer {token['access_token']}"}
            user = _json(client.get(provider.userinfo_url, headers=bearer))
    except httpx.HTTPError:
        raise OAuthError(_("The sign-in provider could not be reached. Try again."), status=503) from None
    subject = str(user.get(provider.subject_field) or "")
    if not subject:
        raise OAuthError(_("The sign-in provider did not say who you are."))
    if provider.key == "linuxdo" and int(user.get("trust_level") or 0) < settings.LINUXDO_MIN_TRUST_LEVEL:
        raise OAuthError(_("Your LINUX DO trust level is too low to sign in here."), status=403)
    login = next((str(user[f]) for f in provider.login_fields if user.get(f)), "")
    return Profile(subject=subject[:255], login=login[:255], email=str(user.get("email") or "")[:254])


def _username(login: str, provider: str) -> str:
    """A free username from the provider's name for the account (its allowed characters, 3 to 32 long)."""
    base = USERNAME_CHARS.sub("", login)[:26] or provider
    if len(base) < 3:
        base = f"{provider}_{base}"
    candidate = base
    while User.objects.filter(username__iexact=candidate).exists():
        candidate = f"{base}_{secrets.randbelow(100_000):05d}"
    return candidate


def _email_for(profile: Profile) -> str:
    """The provider's address for a new account, unless another account has it (one account per address)."""
    email = User.objects.normalize_email(profile.email)
    if not email or User.objects.filter(email__iexact=email).exists():
        return ""
    return email


@transaction.atomic
def oauth_sign_in(*, provider: OAuthProvider, profile: Profile, invite_code: str = "") -> User:
    """The user linked to this provider account; a new account (with the trial credit) when there is none and
    registration is open."""
    identity = OAuthIdentity.objects.select_related("user").filter(provider=provider.key,
                                                                     subject=profile.subject).first()
    if identity is not None:
        if identity.user.status != UserStatus.ENABLED or not identity.user.is_active:
            raise OAuthError(_("This account has been disabled."), status=403)
        return identity.user
    if not option("REGISTRATION_ENABLED"):
        raise OAuthError(_("Registration is closed."), status=403)
    user = account_open(username=_username(profile.login, provider.key), password=None, email=_email_for(profile),
                        display_name=profile.login[:64], invite_code=invite_code)
    OAuthIdentity.objects.create(user=user, provider=provider.key, subject=profile.subject, login=profile.login)
    return user


def oauth_link(*, user: User, provider: OAuthProvider, profile: Profile) -> None:
    """Link this provider account to `user` (refused when it belongs to another user, or `user` has one there)."""
    try:
        with transaction.atomic():
            OAuthIdentity.objects.create(user=user, provider=provider.key, subject=profile.subject,
                                         login=profile.login)
    except IntegrityError:
        raise OAuthError(_("This %(provider)s account is linked to another user, or yours has one already.")
                         % {"provider": provider.label}) from None


def oauth_unlink(*, user: User, provider: str) -> None:
    """Unlink a provider, unless it is the only way left to sign in (no password, no other provider)."""
    identities = OAuthIdentity.objects.filter(user=user)
    if not user.has_usable_password() and identities.exclude(provider=provider).count() == 0:
        raise OAuthError(_("Set a password first: this is the only way you sign in."))
    identities.filter(provider=provider).delete()
