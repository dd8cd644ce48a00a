"""The Tasks page: the user's own generation tasks, refreshed by htmx only while one is still running."""

from __future__ import annotations

from relay.media_tasks.models import MediaTask, TaskStatus


def _task(user, public_id: str, status: str, **fields) -> MediaTask:
    return MediaTask.objects.create(public_id=public_id, user=user, kind=fields.pop("kind", "video"),
                                    action="generate", model="demo-video", endpoint="/v1/video/generations",
                                    status=status, **fields)


def test_only_the_users_tasks_are_listed_and_running_ones_poll(console, user, other_user, htmx):
    _task(user, "task-mine-1", TaskStatus.IN_PROGRESS, progress=40, quota_reserved=5_000)
    _task(other_user, "task-theirs", TaskStatus.SUCCESS)
    page = console.get("/tasks/")
    html = page.content.decode()
    assert page.status_code == 200 and "task-mine-1" in html and "task-theirs" not in html
    assert 'hx-trigger="every 5s"' in html and 'value="40"' in html
    partial = console.get("/tasks/", **htmx("task-table")).content.decode()
    assert partial.startswith('<div id="task-table"') and "<html" not in partial


def test_finished_tasks_show_results_and_stop_polling(console, user):
    _task(user, "task-done", TaskStatus.SUCCESS, progress=100, result_url="https://cdn.example/v.mp4",
          quota_charged=5_000, settled_at="2026-11-22T08:00:00Z")
    _task(user, "task-failed", TaskStatus.FAILURE, fail_reason="upstream refused the prompt", kind="music",
          settled_at="2026-11-22T08:00:00Z")
    html = console.get("/tasks/").content.decode()
    assert "https://cdn.example/v.mp4" in html and "upstream refused the prompt" in html
    assert "every 5s" not in html
    only_music = console.get("/tasks/?kind=music").content.decode()
    assert "task-failed" in only_music and "task-done" not in only_music


def test_tasks_need_a_login_and_speak_chinese(client, console, user):
    assert client.get("/tasks/").status_code == 302
    assert "任务" in console.get("/tasks/", HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()
