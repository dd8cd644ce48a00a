"""Upstream writes for operators; keys go in encrypted and never come back out."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from billing.groups import group_default
from billing.models import UserGroup
from config.errors import ServiceError
from relay.invalidation import rows_changed
from relay.key_vault import key_fingerprint, keys_parse
from relay.models import Upstream, UpstreamStatus
from relay.overrides import header_override_problem, param_override_problem, status_code_mapping_problem
from relay.providers import PROVIDERS
from relay.upstream_alerts import upstream_alert

FIELDS = {
    "name", "type", "base_url", "served_models", "model_mapping", "priority", "weight", "status", "test_model",
    "connect_timeout", "first_byte_timeout", "total_timeout", "extras", "param_override", "header_override",
    "system_prompt", "system_prompt_prepend", "status_code_mapping",
}


def _groups(names: list[str]) -> list[UserGroup]:
    found = {g.name: g for g in UserGroup.objects.filter(name__in=names)}
    missing = [n for n in names if n not in found]
    if missing:
        raise ServiceError(_("Unknown groups: %(names)s") % {"names": ", ".join(missing)})
    return [found[n] for n in names]


@transaction.atomic
def upstream_save(
    *, upstream: Upstream | None = None, keys: str | list[str] | None = None, groups: list[str] | None = None,
    **fields: Any,
) -> Upstream:
    """Create or update an upstream. `keys` replaces the stored keys when given; `groups` are group names."""
    creating = upstream is None or upstream.pk is None
    upstream = upstream or Upstream()
    unknown = set(fields) - FIELDS
    if unknown:
        raise ServiceError(_("Unknown fields: %(names)s") % {"names": ", ".join(sorted(unknown))})
    for name, value in fields.items():
        setattr(upstream, name, value)
    problem = (param_override_problem(upstream.param_override) or header_override_problem(upstream.header_override)
               or status_code_mapping_problem(upstream.status_code_mapping))
    if problem:
        raise ServiceError(problem)
    if upstream.type not in PROVIDERS:
        raise ServiceError(_("Unknown provider type: %(type)s") % {"type": upstream.type})
    if not upstream.base_url and not PROVIDERS[upstream.type].default_base_url and upstream.type != "demo":
        raise ServiceError(_("This provider type needs a base URL."))
    if keys is not None:
        try:
            upstream.set_keys(keys_parse(keys))
        except ValueError as exc:
            raise ServiceError(str(exc)) from exc
    if creating and not upstream.key_count and upstream.type != "demo":
        raise ServiceError(_("At least one key is required."))
    if "status" in fields and fields["status"] == UpstreamStatus.ENABLED:
        upstream.status_reason = ""
    upstream.save()
    if groups is not None:
        upstream.groups.set(_groups(groups))
    elif creating:
        upstream.groups.set([group_default()])
    return upstream


def upstream_set_status(*, upstream: Upstream, status: UpstreamStatus, reason: str = "") -> Upstream:
    upstream.status = status
    upstream.status_reason = reason[:255]
    upstream.save(update_fields=["status", "status_reason", "updated_at"])
    return upstream


@transaction.atomic
def upstream_key_disable(*, upstream_id: int, key: str, reason: str) -> bool:
    """Leave out one key the upstream refused; False (nothing changed) when it is the last key still in use, for
    the caller to disable the whole upstream instead."""
    upstream = Upstream.objects.select_for_update().filter(pk=upstream_id).first()
    if upstream is None:
        return True
    fingerprint = key_fingerprint(key)
    disabled = dict(upstream.disabled_keys or {})
    if fingerprint in disabled:
        return True
    if not [k for k in upstream.active_keys() if key_fingerprint(k) != fingerprint]:
        return False
    disabled[fingerprint] = reason[:255]
    Upstream.objects.filter(pk=upstream_id).update(disabled_keys=disabled)
    rows_changed()
    transaction.on_commit(lambda: upstream_alert(upstream_id=upstream_id, upstream_name=upstream.name, reason=reason,
                                                 key=fingerprint))
    return True


@transaction.atomic
def upstream_keys_enable(*, upstream: Upstream, fingerprints: list[str] | None = None) -> int:
    """Put disabled keys back in use (all, or those named); returns how many. The row's keys are read again under
    its lock (as `upstream_key_disable` writes them): a key disabled since `upstream` was read stays disabled."""
    current = Upstream.objects.select_for_update().filter(pk=upstream.pk).values_list("disabled_keys", flat=True)
    disabled = dict(current.first() or {})
    back = [f for f in disabled if fingerprints is None or f in fingerprints]
    for fingerprint in back:
        del disabled[fingerprint]
    upstream.disabled_keys = disabled
    if back:
        Upstream.objects.filter(pk=upstream.pk).update(disabled_keys=disabled)
        rows_changed()
    return len(back)


def upstream_auto_disable(*, upstream_id: int, reason: str) -> None:
    """Taken out of rotation by the relay; the periodic test puts it back when it answers again."""
    changed = Upstream.objects.filter(pk=upstream_id, status=UpstreamStatus.ENABLED).update(
        status=UpstreamStatus.AUTO_DISABLED, status_reason=reason[:255]
    )
    if changed:
        rows_changed()
        name = Upstream.objects.filter(pk=upstream_id).values_list("name", flat=True).first() or str(upstream_id)
        upstream_alert(upstream_id=upstream_id, upstream_name=name, reason=reason)
