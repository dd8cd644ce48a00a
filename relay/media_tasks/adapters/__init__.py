"""Task adapters by upstream type; `adapter_for` says which one speaks to an upstream for a kind, if any."""

from __future__ import annotations

from relay.media_tasks.adapters.base import TaskAdapter
from relay.media_tasks.adapters.demo import DemoTaskAdapter
from relay.media_tasks.adapters.jimeng import JimengAdapter
from relay.media_tasks.adapters.kling import KlingAdapter
from relay.media_tasks.adapters.midjourney import MidjourneyAdapter
from relay.media_tasks.adapters.openai_videos import OpenAIVideosAdapter
from relay.media_tasks.adapters.suno import SunoAdapter
from relay.snapshots import UpstreamInfo

BY_TYPE: dict[str, TaskAdapter] = {
    "demo": DemoTaskAdapter(), "midjourney": MidjourneyAdapter(), "suno": SunoAdapter(), "kling": KlingAdapter(),
    "jimeng": JimengAdapter(),
}
BY_FAMILY: dict[str, TaskAdapter] = {"openai": OpenAIVideosAdapter()}


def adapter_for(upstream: UpstreamInfo, kind: str) -> TaskAdapter | None:
    adapter = BY_TYPE.get(upstream.type) or BY_FAMILY.get(upstream.provider.family)
    return adapter if adapter is not None and kind in adapter.kinds else None
