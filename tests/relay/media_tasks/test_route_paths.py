"""The relay looks a path up among its operations before asking the task routes: no path may be both."""

from __future__ import annotations

from relay.paths import OPERATIONS
from relay.media_tasks import routes


def test_no_operation_path_is_also_a_task_route():
    assert [path for path in OPERATIONS if routes.owns(path)] == []
    assert routes.owns("/v1/videos") and routes.owns("/mj-fast/mj/submit/imagine")  # the check can say yes
