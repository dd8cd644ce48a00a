"""Task reads for their owner: one by public id, many by ids, a kind's newest first."""

from __future__ import annotations

from relay.media_tasks.models import MediaTask
from relay.media_tasks.storable import storable_text


def media_task_of(*, user_id: int, public_id: str, kinds: tuple[str, ...]) -> MediaTask | None:
    """The user's task with this id; someone else's task is as unknown as a missing one (and so is an id no task
    could have: PostgreSQL refuses NUL characters in a query)."""
    if not storable_text(public_id):
        return None
    return MediaTask.objects.filter(user_id=user_id, public_id=public_id, kind__in=kinds).first()


def media_tasks_by_ids(*, user_id: int, public_ids: list[str], kinds: tuple[str, ...]) -> list[MediaTask]:
    """The user's tasks among `public_ids`, in the order asked; unknown ids are skipped."""
    public_ids = [i for i in public_ids[:500] if storable_text(i)]
    found = {t.public_id: t for t in MediaTask.objects.filter(user_id=user_id, public_id__in=public_ids,
                                                               kind__in=kinds)}
    return [found[i] for i in dict.fromkeys(public_ids) if i in found]


def media_tasks_recent(*, user_id: int, kinds: tuple[str, ...], endpoint_prefix: str = "", after: str = "",
                       limit: int = 20, ascending: bool = False) -> list[MediaTask]:
    qs = MediaTask.objects.filter(user_id=user_id, kind__in=kinds)
    if endpoint_prefix:
        qs = qs.filter(endpoint__startswith=endpoint_prefix)
    if after and storable_text(after):  # an unknown anchor is ignored, as OpenAI's list does
        anchor = qs.filter(public_id=after).values_list("pk", flat=True).first()
        if anchor is not None:
            qs = qs.filter(pk__gt=anchor) if ascending else qs.filter(pk__lt=anchor)
    return list(qs.order_by("pk" if ascending else "-pk")[:limit])


def media_task_with_id(*, public_id: str, kinds: tuple[str, ...]) -> MediaTask | None:
    """Whoever's task has this id: only for addresses that prove they were handed out (signed)."""
    if not storable_text(public_id):
        return None
    return MediaTask.objects.filter(public_id=public_id, kind__in=kinds).first()
