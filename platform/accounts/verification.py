"""Email verification codes: six digits mailed to an address, good for ten minutes, five tries, used once.

With EMAIL_VERIFICATION on, an account is opened (and an address changed) only with a code sent to the address,
and no two accounts share one: the trial credit comes once per mailbox. EMAIL_DOMAIN_WHITELIST limits the domains.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from django.conf import settings
from django.core.cache import cache
from django.core.mail import send_mail
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from accounts.models import User
from config.errors import ServiceError
from config.options import option

log = logging.getLogger(__name__)
REGISTER, BIND = "register", "bind"
CODE_MINUTES = 10
RESEND_SECONDS = 60  # one mail per address a minute
SENDS_PER_IP = 10  # mails one client may ask for in CODE_MINUTES
MAX_TRIES = 5


def _digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def _code_hash(code: str, digest: str) -> str:
    return hmac.new(settings.SECRET_KEY.encode(), f"{digest}:{code}".encode(), hashlib.sha256).hexdigest()


def email_problem(email: str, *, user: User | None = None) -> str | None:
    """Why this address cannot be an account's (malformed, a domain not accepted, another account's), if it cannot."""
    try:
        validate_email(email)
    except ValidationError:
        return _("Enter a valid email address.")
    domains = [d.lower().lstrip("@") for d in option("EMAIL_DOMAIN_WHITELIST") if d]
    if domains and email.rsplit("@", 1)[1].lower() not in domains:
        return _("Accounts use email addresses at %(domains)s.") % {"domains": ", ".join(domains)}
    taken = User.objects.filter(email__iexact=email.strip())
    if option("EMAIL_VERIFICATION") and taken.exclude(pk=user.pk if user else None).exists():
        return _("This email address is already in use.")
    return None


def verification_send(*, email: str, purpose: str, client_ip: str = "", user: User | None = None) -> None:
    """Mail a new code to `email` (the previous one stops working); raises ServiceError when it cannot."""
    email = User.objects.normalize_email((email or "").strip())
    problem = email_problem(email, user=user)
    if problem:
        raise ServiceError(problem)
    digest = _digest(email)
    if not cache.add(f"verify-sent:{purpose}:{digest}", 1, RESEND_SECONDS):
        raise ServiceError(_("A code was sent to this address less than a minute ago."), status=429, code="throttled")
    ip_key = f"verify-ip:{client_ip}"
    cache.add(ip_key, 0, CODE_MINUTES * 60)
    if cache.incr(ip_key) > SENDS_PER_IP:
        raise ServiceError(_("Too many codes asked for. Try again later."), status=429, code="throttled")
    code = f"{secrets.randbelow(1_000_000):06d}"
    cache.set(f"verify:{purpose}:{digest}", {"hash": _code_hash(code, digest), "tries": 0}, CODE_MINUTES * 60)
    context = {"code": code, "minutes": CODE_MINUTES, "site_name": option("SITE_NAME")}
    try:
        send_mail(render_to_string("console/email/verification_subject.txt", context).strip(),
                  render_to_string("console/email/verification.txt", context), None, [email])
    except Exception:  # SMTP down or refusing: say so, and let the address ask again at once
        log.warning("verification mail to an address failed", exc_info=True)
        cache.delete_many([f"verify:{purpose}:{digest}", f"verify-sent:{purpose}:{digest}"])
        raise ServiceError(_("The code could not be sent. Try again later."), status=503) from None


def verification_check(*, email: str, code: str, purpose: str) -> None:
    """Accept the code mailed to `email` once; raises ServiceError for a wrong, used or expired one."""
    digest = _digest(User.objects.normalize_email((email or "").strip()))
    key = f"verify:{purpose}:{digest}"
    stored = cache.get(key)
    if not stored or not code:
        raise ServiceError(_("Ask for a verification code first; codes last %(minutes)d minutes.")
                           % {"minutes": CODE_MINUTES})
    if stored["tries"] >= MAX_TRIES:
        cache.delete(key)
        raise ServiceError(_("Too many wrong codes: ask for a new one."))
    if not hmac.compare_digest(stored["hash"], _code_hash(str(code).strip(), digest)):
        cache.set(key, {**stored, "tries": stored["tries"] + 1}, CODE_MINUTES * 60)
        raise ServiceError(_("The verification code is wrong."))
    cache.delete(key)


def email_set(*, user: User, email: str, code: str = "") -> None:
    """Give `user` this address (or none); a new address passes the same checks as at sign-up, its code included
    when EMAIL_VERIFICATION is on."""
    if email and email.lower() != (user.email or "").lower():
        problem = email_problem(email, user=user)
        if problem:
            raise ServiceError(problem)
        if option("EMAIL_VERIFICATION"):
            verification_check(email=email, code=code, purpose=BIND)
    User.objects.filter(pk=user.pk).update(email=email)
