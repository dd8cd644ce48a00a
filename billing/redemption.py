"""Card keys (卡密): operators make batches, users redeem a code once to top up their balance."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from billing.ledger import ledger_credit
from billing.models import LedgerReason, RedemptionCode, RedemptionStatus
from config.errors import ServiceError
from tokens.keys import secret_generate, secret_hash

CODE_LENGTH = 32
MAX_BATCH = 1000


class RedemptionError(ServiceError):
    code = "redemption_failed"


def _hint(code: str) -> str:
    return f"{code[:4]}…{code[-4:]}"


@transaction.atomic
def redemption_batch_create(
    *, name: str, quota: int, count: int, created_by_id: int | None, expires_at: datetime | None = None
) -> list[str]:
    """Make `count` codes worth `quota` each; the codes are returned here and never again."""
    if not name.strip():
        raise ServiceError(_("A batch needs a name."))
    if quota <= 0:
        raise ServiceError(_("Quota must be a positive number."))
    if not 1 <= count <= MAX_BATCH:
        raise ServiceError(_("Count must be between 1 and %(max)d.") % {"max": MAX_BATCH})
    if expires_at is not None and expires_at <= timezone.now():
        raise ServiceError(_("The expiry time is in the past."))
    codes = [secret_generate(CODE_LENGTH) for _ in range(count)]
    RedemptionCode.objects.bulk_create(
        RedemptionCode(
            code_hash=secret_hash(code), code_hint=_hint(code), quota=quota, batch_name=name.strip(),
            created_by_id=created_by_id, expires_at=expires_at,
        )
        for code in codes
    )
    return codes


@transaction.atomic
def redemption_redeem(*, user_id: int, code: str) -> RedemptionCode:
    """Credit the card's quota to the user. Exactly one of any number of concurrent attempts wins."""
    code_hash = secret_hash(code.strip())
    card = RedemptionCode.objects.filter(code_hash=code_hash).first()
    if card is None:
        raise RedemptionError(_("This card key is invalid."))
    if card.status == RedemptionStatus.USED:
        raise RedemptionError(_("This card key has already been used."))
    if card.status == RedemptionStatus.DISABLED:
        raise RedemptionError(_("This card key has been disabled."))
    now = timezone.now()
    if card.expires_at is not None and card.expires_at <= now:
        raise RedemptionError(_("This card key has expired."))
    claimed = RedemptionCode.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), pk=card.pk, status=RedemptionStatus.UNUSED
    ).update(status=RedemptionStatus.USED, redeemed_by_id=user_id, redeemed_at=now)
    if claimed != 1:
        raise RedemptionError(_("This card key has already been used."))
    ledger_credit(user_id=user_id, amount=card.quota, reason=LedgerReason.REDEEM, ref=f"card:{card.pk}")
    card.refresh_from_db()
    return card


def redemption_set_status(*, card: RedemptionCode, status: RedemptionStatus) -> RedemptionCode:
    """Disable or re-enable an unused card; a card redeemed meanwhile is left as it is (one statement)."""
    if status == RedemptionStatus.USED:
        raise ServiceError(_("Cards become used only by being redeemed."))
    changed = RedemptionCode.objects.filter(pk=card.pk).exclude(status=RedemptionStatus.USED).update(status=status)
    card.refresh_from_db()
    if not changed:
        raise ServiceError(_("A used card key cannot be changed."))
    return card


def redemption_delete(*, card: RedemptionCode) -> None:
    """Delete an unused card; used cards stay, since the ledger refers to them."""
    deleted, _rows = RedemptionCode.objects.filter(pk=card.pk).exclude(status=RedemptionStatus.USED).delete()
    if not deleted:
        raise ServiceError(_("A used card key cannot be deleted."))
