"""Two-factor authentication: time-based one-time codes (RFC 6238, as authenticator apps make them) and backup codes.

The secret is encrypted at rest with the key vault's key; a code is accepted once (the last step used is kept);
backup codes are shown once and stored hashed, each good for one sign-in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from typing import Any
from urllib.parse import quote, urlencode

import segno
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User, UserStatus
from config.errors import ServiceError
from config.options import option
from relay.key_vault import keys_decrypt, keys_encrypt
from tokens.keys import secret_hash

STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1  # a code from the step before or after is accepted too (clocks drift)
BACKUP_CODES = 10


class TwoFactorError(ServiceError):
    code = "two_factor_failed"


def totp_code(secret: str, step: int) -> str:
    """The code for one 30-second step (RFC 4226's HOTP over the step number, HMAC-SHA1, six digits)."""
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**DIGITS).zfill(DIGITS)


def totp_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app scans."""
    issuer = option("SITE_NAME")
    label = quote(f"{issuer}:{username}")
    return f"otpauth://totp/{label}?{urlencode({'secret': secret, 'issuer': issuer, 'digits': DIGITS})}"


def totp_qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code."""
    return segno.make(uri, error="m").svg_inline(scale=5, border=2)


def _secret(user: User) -> str:
    stored = keys_decrypt(user.totp_secret_encrypted)
    return stored[0] if stored else ""


def _matching_step(secret: str, code: str, after: int) -> int | None:
    """The step `code` belongs to, near now and later than `after`; None when it matches none."""
    now = int(time.time()) // STEP_SECONDS
    for step in range(now - DRIFT_STEPS, now + DRIFT_STEPS + 1):
        if step > after and hmac.compare_digest(totp_code(secret, step), code):
            return step
    return None


def _throttled(user: User) -> None:
    key = f"2fa-fail:{user.pk}"
    if cache.get(key, 0) >= settings.LOGIN_ATTEMPTS_PER_MINUTE:
        raise TwoFactorError(_("Too many wrong codes. Try again in a minute."), status=429, code="throttled")


def _failed(user: User) -> None:
    key = f"2fa-fail:{user.pk}"
    cache.add(key, 0, timeout=60)
    cache.incr(key)


def two_factor_begin(*, user: User) -> str:
    """A new secret for the user to add to their app; two-factor stays off until a code from it is confirmed."""
    if user.two_factor_enabled_at:
        raise TwoFactorError(_("Two-factor authentication is already on."))
    secret = base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")
    user.totp_secret_encrypted = keys_encrypt([secret])
    user.totp_last_step = 0
    user.save(update_fields=["totp_secret_encrypted", "totp_last_step"])
    return secret


@transaction.atomic
def two_factor_enable(*, user: User, code: str) -> list[str]:
    """Turn two-factor on once a code from the new secret checks out; returns the backup codes, shown only now."""
    user = User.objects.select_for_update().get(pk=user.pk)
    secret = _secret(user)
    if user.two_factor_enabled_at or not secret:
        raise TwoFactorError(_("Set up two-factor authentication first."))
    _throttled(user)
    step = _matching_step(secret, code.strip().replace(" ", ""), user.totp_last_step)
    if step is None:
        _failed(user)
        raise TwoFactorError(_("That code is not right. Check the time on your device and try the current one."))
    backup = [secrets.token_hex(5) for _ in range(BACKUP_CODES)]
    user.totp_last_step, user.two_factor_enabled_at = step, timezone.now()
    user.backup_code_hashes = [secret_hash(code) for code in backup]
    user.save(update_fields=["totp_last_step", "two_factor_enabled_at", "backup_code_hashes"])
    return backup


@transaction.atomic
def two_factor_check(*, user: User, code: str) -> None:
    """Accept a current code (once) or an unused backup code (then spent); refuse anything else."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.two_factor_enabled_at:
        return
    _throttled(user)
    code = code.strip().replace(" ", "").lower()
    step = _matching_step(_secret(user), code, user.totp_last_step) if code.isdigit() else None
    if step is not None:
        User.objects.filter(pk=user.pk).update(totp_last_step=step)
        return
    hashed = secret_hash(code)
    if code and hashed in user.backup_code_hashes:
        User.objects.filter(pk=user.pk).update(backup_code_hashes=[h for h in user.backup_code_hashes if h != hashed])
        return
    _failed(user)
    raise TwoFactorError(_("That code is not right."), status=401, code="invalid_two_factor_code")


def two_factor_disable(*, user: User, code: str) -> None:
    """Turn two-factor off with a current or backup code."""
    two_factor_check(user=user, code=code)
    two_factor_reset(user=user)


def two_factor_reset(*, user: User) -> None:
    """Turn two-factor off without a code: an operator's help for a user who lost their device."""
    User.objects.filter(pk=user.pk).update(two_factor_enabled_at=None, totp_secret_encrypted="", totp_last_step=0,
                                           backup_code_hashes=[])
    user.refresh_from_db(fields=["two_factor_enabled_at", "totp_secret_encrypted", "totp_last_step",
                                 "backup_code_hashes"])


# --- a sign-in waiting for its code -------------------------------------------------------------------------------

PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300


def login_pending_start(session: Any, user: User) -> None:
    """The password was right: remember who is signing in until the code comes (in the not-yet-signed-in session)."""
    session[PENDING_KEY] = {"user": user.pk, "at": time.time()}


def login_pending_user(session: Any) -> User | None:
    """The account whose password was given in this session in the last five minutes, still enabled."""
    pending = session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    return User.objects.filter(pk=pending.get("user"), status=UserStatus.ENABLED).first()


def login_pending_finish(session: Any, code: str) -> User:
    """Check the code for the pending sign-in; the caller logs the returned user in."""
    user = login_pending_user(session)
    if user is None:
        raise TwoFactorError(_("The sign-in expired. Enter your password again."), status=401, code="login_expired")
    two_factor_check(user=user, code=code)
    session.pop(PENDING_KEY, None)
    return user
