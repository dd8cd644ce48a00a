"""Pricing groups and model prices: the writes operators make, and the reads users see."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext as _

from billing.models import ModelPrice, UserGroup
from config.errors import NotFound, ServiceError


def group_default() -> UserGroup:
    """The group new users join (DEFAULT_GROUP, ratio 1), created on first use."""
    group, _created = UserGroup.objects.get_or_create(
        name=settings.DEFAULT_GROUP, defaults={"ratio": Decimal(1), "description": "Default group"}
    )
    return group


def group_get(*, name: str) -> UserGroup:
    group = UserGroup.objects.filter(name=name).first()
    if group is None:
        raise NotFound(_("Unknown group: %(name)s") % {"name": name})
    return group


def group_save(*, group: UserGroup | None = None, **fields: Any) -> UserGroup:
    """Create a group, or update the given one with `fields`."""
    group = group or UserGroup()
    for name, value in fields.items():
        setattr(group, name, value)
    if UserGroup.objects.filter(name=group.name).exclude(pk=group.pk).exists():
        raise ServiceError(_("A group with this name already exists."))
    group.save()
    return group


@transaction.atomic
def group_delete(*, group: UserGroup) -> None:
    if group.name == settings.DEFAULT_GROUP:
        raise ServiceError(_("The default group cannot be deleted."))
    if group.users.exists():
        raise ServiceError(_("Move this group's users to another group first."))
    group.delete()


def groups_selectable() -> list[UserGroup]:
    return list(UserGroup.objects.filter(selectable=True))


def price_save(*, price: ModelPrice | None = None, **fields: Any) -> ModelPrice:
    price = price or ModelPrice()
    for name, value in fields.items():
        setattr(price, name, value)
    if ModelPrice.objects.filter(model=price.model).exclude(pk=price.pk).exists():
        raise ServiceError(_("This model already has a price."))
    price.save()
    return price
