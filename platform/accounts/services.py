"""Account writes: registration, login checks, daily check-in, access tokens, operator changes."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User, UserStatus
from accounts.verification import REGISTER, email_problem, verification_check
from billing.groups import group_default
from billing.ledger import ledger_apply, ledger_credit
from billing.models import LedgerReason, UserGroup
from config.errors import ServiceError
from config.options import option
from tokens.keys import secret_generate, secret_hash

ACCESS_TOKEN_LENGTH = 40


class CheckinError(ServiceError):
    code = "already_checked_in"


def _invite_code() -> str:
    return secret_generate(8)


@transaction.atomic
def user_register(
    *, username: str, password: str, email: str = "", display_name: str = "", invite_code: str = "",
    verification_code: str = "",
) -> User:
    """Create an account in the default group and credit the trial quota (NEW_USER_QUOTA). With EMAIL_VERIFICATION
    on, the email address is required and `verification_code` must be the code mailed to it."""
    username = (username or "").strip()
    if not 3 <= len(username) <= 32:
        raise ServiceError(_("The username must be 3 to 32 characters long."))
    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise ServiceError(_("The username may contain only letters, digits and @/./+/-/_.")) from None
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError(_("This username is taken."))
    email = User.objects.normalize_email((email or "").strip())
    candidate = User(username=username, email=email)
    try:
        validate_password(password, candidate)
    except ValidationError as exc:
        raise ServiceError(" ".join(exc.messages)) from None
    if option("EMAIL_VERIFICATION") and not email:
        raise ServiceError(_("An email address is required to sign up."))
    problem = email_problem(email) if email else None
    if problem:
        raise ServiceError(problem)
    if option("EMAIL_VERIFICATION"):
        verification_check(email=email, code=verification_code, purpose=REGISTER)
    return account_open(username=username, password=password, email=email, display_name=display_name,
                        invite_code=invite_code)


def account_open(*, username: str, password: str | None, email: str = "", display_name: str = "",
                 invite_code: str = "") -> User:
    """The account itself, checked already: default group, trial credit, invitation rewards. A None password is
    unusable (accounts opened through an outside sign-in provider)."""
    inviter = User.objects.filter(invite_code=invite_code).first() if invite_code else None
    user = User.objects.create_user(
        username=username, password=password, email=email, display_name=display_name or username,
        group=group_default(), invite_code=_invite_code(), invited_by=inviter,
    )
    trial = option("NEW_USER_QUOTA")
    if trial > 0:
        ledger_credit(user_id=user.pk, amount=trial, reason=LedgerReason.SIGNUP)
    if inviter is not None and inviter.status == UserStatus.ENABLED:
        _invitation_reward(inviter=inviter, invitee=user)
    user.refresh_from_db(fields=["quota"])
    return user


def _invitation_reward(*, inviter: User, invitee: User) -> None:
    """INVITEE_QUOTA to the new account and INVITER_QUOTA to the account that invited it, through the ledger."""
    for amount, user, ref in ((option("INVITEE_QUOTA"), invitee, f"invited-by:{inviter.pk}"),
                              (option("INVITER_QUOTA"), inviter, f"invited:{invitee.pk}")):
        if amount > 0:
            ledger_credit(user_id=user.pk, amount=amount, reason=LedgerReason.INVITE, ref=ref)


def user_authenticate(*, request: HttpRequest | None, username: str, password: str, client_ip: str = "") -> User:
    """Check a username and password, with a per-user-and-IP limit on failed attempts."""
    throttle_key = f"login-fail:{(username or '').lower()}:{client_ip}"
    if cache.get(throttle_key, 0) >= settings.LOGIN_ATTEMPTS_PER_MINUTE:
        raise ServiceError(_("Too many failed attempts. Try again in a minute."), status=429, code="throttled")
    user = authenticate(request, username=username, password=password)
    if user is None:
        cache.add(throttle_key, 0, timeout=60)
        cache.incr(throttle_key)
        raise ServiceError(_("Wrong username or password."), status=401, code="invalid_credentials")
    if user.status != UserStatus.ENABLED:
        raise ServiceError(_("This account has been disabled."), status=403, code="user_disabled")
    cache.delete(throttle_key)
    return user


def access_token_issue(*, user: User) -> str:
    """A new management-API access token for the user, replacing the old one. Returned once."""
    token = secret_generate(ACCESS_TOKEN_LENGTH)
    user.access_token_hash = secret_hash(token)
    user.access_token_hint = f"{token[:4]}…{token[-4:]}"
    user.save(update_fields=["access_token_hash", "access_token_hint"])
    return token


def user_by_access_token(token: str) -> User | None:
    if not token:
        return None
    return User.objects.select_related("group").filter(access_token_hash=secret_hash(token)).first()


@transaction.atomic
def checkin_claim(*, user: User) -> int:
    """Credit today's check-in reward (a random amount in the configured range), once per local day."""
    today = timezone.localdate()
    claimed = (
        User.objects.filter(pk=user.pk)
        .filter(Q(last_checkin_date__isnull=True) | Q(last_checkin_date__lt=today))
        .update(last_checkin_date=today)
    )
    if claimed != 1:
        raise CheckinError(_("You have already checked in today."))
    low, high = sorted((option("CHECKIN_QUOTA_MIN"), option("CHECKIN_QUOTA_MAX")))
    amount = low + secrets.randbelow(high - low + 1)
    if amount > 0:
        ledger_credit(user_id=user.pk, amount=amount, reason=LedgerReason.CHECKIN, ref=f"checkin:{today.isoformat()}")
    user.refresh_from_db(fields=["quota", "last_checkin_date"])
    return amount


def user_set_status(*, user: User, status: UserStatus) -> User:
    user.status = status
    user.is_active = status == UserStatus.ENABLED  # Django then refuses the user's sessions too
    user.save(update_fields=["status", "is_active"])
    return user


def user_set_group(*, user: User, group: UserGroup) -> User:
    user.group = group
    user.save(update_fields=["group"])
    return user


def user_adjust_quota(*, user: User, amount: int, note: str = "", by: User | None = None) -> User:
    """An operator's credit or debit, recorded in the ledger; a debit cannot take the balance below zero."""
    if amount == 0:
        raise ServiceError(_("The adjustment must not be zero."))
    ref = f"admin:{by.pk}" if by is not None else "admin"
    ledger_apply(user_id=user.pk, amount=amount, reason=LedgerReason.ADMIN_ADJUST, ref=ref, note=note[:255])
    user.refresh_from_db(fields=["quota"])
    return user
