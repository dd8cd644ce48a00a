"""API token writes and reads. A user only ever reaches their own tokens through these."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import User
from billing.models import UserGroup
from config.errors import NotFound, ServiceError
from tokens.keys import api_key_generate, secret_hash
from tokens.models import ApiToken, TokenStatus

MAX_TOKENS_PER_USER = 500
EDITABLE = {
    "name", "status", "remain_quota", "unlimited_quota", "expires_at", "group", "model_limits", "allow_ips",
    "rpm_limit", "concurrency_limit",
}


def allow_ips_clean(values: list[str]) -> list[str]:
    """IP addresses and CIDR ranges, normalised; anything else is refused."""
    cleaned = []
    for value in values:
        try:
            cleaned.append(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            raise ServiceError(_("Not an IP address or CIDR range: %(value)s") % {"value": value}) from None
    return cleaned


def _group_check(*, user: User, group: UserGroup | None) -> None:
    if group is not None and not group.selectable and group.pk != user.group_id and not user.is_platform_admin:
        raise ServiceError(_("The group %(name)s is not available.") % {"name": group.name})


def _fields_check(*, user: User, fields: dict[str, Any]) -> dict[str, Any]:
    unknown = set(fields) - EDITABLE
    if unknown:
        raise ServiceError(_("Unknown fields: %(names)s") % {"names": ", ".join(sorted(unknown))})
    if "name" in fields:
        fields["name"] = (fields["name"] or "").strip()
        if not 1 <= len(fields["name"]) <= 64:
            raise ServiceError(_("The name must be 1 to 64 characters long."))
    if fields.get("remain_quota") is not None and fields["remain_quota"] < 0:
        raise ServiceError(_("The quota cannot be negative."))
    expires_at: datetime | None = fields.get("expires_at")
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(_("The expiry time is in the past."))
    if "allow_ips" in fields:
        fields["allow_ips"] = allow_ips_clean(fields["allow_ips"] or [])
    if "model_limits" in fields:
        fields["model_limits"] = sorted({m.strip() for m in fields["model_limits"] or [] if m.strip()})
    if "group" in fields:
        _group_check(user=user, group=fields["group"])
    return fields


@transaction.atomic
def token_create(*, user: User, name: str, **fields: Any) -> tuple[ApiToken, str]:
    """A new token and its full key; the key is returned here only, and stored as a hash."""
    fields = _fields_check(user=user, fields={"name": name, **fields})
    if tokens_of(user=user).count() >= MAX_TOKENS_PER_USER:
        raise ServiceError(_("You have reached the maximum number of tokens."))
    return _token_with_new_key(user=user, **fields)


def _token_with_new_key(*, user: User, **fields: Any) -> tuple[ApiToken, str]:
    """The row for a freshly generated key (stored as a hash, with the ends kept to recognise it), and the key."""
    key = api_key_generate()
    token = ApiToken.objects.create(
        user=user, key_hash=secret_hash(key), key_prefix=key[:7], key_suffix=key[-4:], **fields
    )
    return token, key


def token_update(*, token: ApiToken, user: User, **fields: Any) -> ApiToken:
    fields = _fields_check(user=user, fields=fields)
    if fields.get("status") not in (None, *TokenStatus.values):
        raise ServiceError(_("Unknown status."))
    for name, value in fields.items():
        setattr(token, name, value)
    token.save()
    return token


def token_delete(*, token: ApiToken) -> None:
    token.delete()


def tokens_of(*, user: User) -> QuerySet[ApiToken]:
    """The user's keys (the playground's own key is not one of them)."""
    return ApiToken.objects.filter(user=user, playground=False).select_related("group").order_by("-id")


def playground_key_issue(*, user: User) -> str:
    """A new key for the console playground (unlimited: the balance is the limit), replacing the user's last one.
    It is never shown: the playground's requests are sent with it by the relay, on the user's session."""
    ApiToken.objects.filter(user=user, playground=True).delete()
    _token, key = _token_with_new_key(user=user, name="Playground", unlimited_quota=True, playground=True)
    return key


def playground_key_valid(*, user: User, key: str) -> bool:
    return ApiToken.objects.filter(user=user, playground=True, key_hash=secret_hash(key),
                                   status=TokenStatus.ENABLED).exists()


def token_of(*, user: User, token_id: int) -> ApiToken:
    """The user's own token, or NotFound (also when it exists but belongs to someone else)."""
    token = tokens_of(user=user).filter(pk=token_id).first()
    if token is None:
        raise NotFound(_("Token not found."))
    return token


def token_by_key(key: str) -> ApiToken | None:
    return ApiToken.objects.select_related("user", "group", "user__group").filter(key_hash=secret_hash(key)).first()
