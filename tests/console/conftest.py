"""Console fixtures: a logged-in client, htmx request headers, and a headless Chromium for the browser tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "console"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def console(user) -> Client:
    """A test client logged in as `user` (alice), in English."""
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


@pytest.fixture
def htmx():
    """Headers that make a test-client request look like htmx's (optionally naming the swap target)."""

    def make(target: str | None = None) -> dict[str, str]:
        headers = {"HTTP_HX_REQUEST": "true"}
        if target:
            headers["HTTP_HX_TARGET"] = target
        return headers

    return make


@pytest.fixture(scope="module")
def browser(_live_server) -> Iterator[object]:
    """One Chromium per test module, closed before the live server stops so that no idle connection delays it.

    While Playwright's sync API is active it runs an event loop in this thread, so Django would refuse the
    (synchronous) ORM calls the tests make, and asyncio.run() would fail for any later test: the loop is kept
    to the browser tests' module, and Django is told the ORM calls are safe only for as long.
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as p:
            instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield instance
            instance.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, live):
    """A fresh browser page (English, desktop size) against the live server, with short bounded waits."""
    context = browser.new_context(base_url=live.url, locale="en-US", extra_http_headers={"Accept-Language": "en"},
                                  viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    context.set_default_timeout(5_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.js_errors = errors
    yield tab
    context.close()


@pytest.fixture
def shot():
    """Save a screenshot under test-output/console/ for people to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    return save
