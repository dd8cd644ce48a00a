"""Production security settings. With `HTTPS_ONLY=1`, `manage.py check --deploy` is clean, session and CSRF cookies
are Secure (the session cookie HttpOnly, both SameSite), console pages and /api answers carry HSTS and the other
security headers, and plain http is redirected to https, except the health endpoints a load balancer probes.
Without it, the embedded default keeps serving plain http.

Settings are read once, when `config.settings` is imported, so each environment is tried in a fresh interpreter;
the in-process tests then apply exactly the values that interpreter computed."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import Client

import config.asgi

ROOT = Path(__file__).resolve().parents[2]
SWITCHES = ("HTTPS_ONLY", "SECURE_COOKIES", "HSTS_SECONDS", "HSTS_INCLUDE_SUBDOMAINS", "HSTS_PRELOAD",
            "TRUST_X_FORWARDED_PROTO", "DJANGO_DEBUG")
SECURITY_SETTINGS = (
    "SESSION_COOKIE_SECURE", "SESSION_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "CSRF_COOKIE_SECURE",
    "CSRF_COOKIE_SAMESITE", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY", "X_FRAME_OPTIONS",
    "SILENCED_SYSTEM_CHECKS",
)
# Imports `config.settings` afresh under each environment given as JSON in argv[1]; prints what each computed.
COMPUTE = """
import importlib, json, os, sys
sys.path[:0] = [".", "platform"]
computed = []
for switches in json.loads(sys.argv[1]):
    for name in json.loads(sys.argv[2]):
        os.environ.pop(name, None)
    os.environ.update(switches)
    module = importlib.reload(sys.modules["config.settings"]) if "config.settings" in sys.modules \
        else importlib.import_module("config.settings")
    computed.append({name: getattr(module, name) for name in json.loads(sys.argv[3])})
print(json.dumps(computed))
"""
ENVIRONMENTS = (
    {}, {"HTTPS_ONLY": "1"}, {"SECURE_COOKIES": "1"},
    {"HTTPS_ONLY": "1", "HSTS_SECONDS": "600", "HSTS_INCLUDE_SUBDOMAINS": "1", "HSTS_PRELOAD": "1"},
)
ONE_YEAR = int(timedelta(days=365).total_seconds())


def _manage(*args: str, **switches: str) -> subprocess.CompletedProcess[str]:
    """`manage.py ARGS` in a fresh interpreter with only the given security switches set."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES} | switches
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@functools.cache
def _computed() -> list[dict[str, Any]]:
    """The security settings of every environment in ENVIRONMENTS, computed in one fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCHES}
    result = subprocess.run(
        [sys.executable, "-c", COMPUTE, json.dumps(ENVIRONMENTS), json.dumps(SWITCHES), json.dumps(SECURITY_SETTINGS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def computed_settings(**switches: str) -> dict[str, Any]:
    """The security settings `config.settings` computes from these environment switches."""
    return _computed()[ENVIRONMENTS.index(switches)]


@pytest.fixture
def production(settings: Any) -> dict[str, Any]:
    """This process's settings as `HTTPS_ONLY=1` makes them."""
    values = computed_settings(HTTPS_ONLY="1")
    for name, value in values.items():
        setattr(settings, name, value)
    return values


def test_check_deploy_is_clean_with_https_only() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", HTTPS_ONLY="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_check_deploy_still_asks_for_https_without_the_switch() -> None:
    """The clean run above is down to the switch, not to checks that do not run."""
    result = _manage("check", "--deploy", "--fail-level", "WARNING", SECURE_COOKIES="1")
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout and "security.W008" in result.stderr + result.stdout


def test_https_only_turns_on_secure_cookies_hsts_and_the_redirect() -> None:
    values = computed_settings(HTTPS_ONLY="1")
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_SSL_REDIRECT"] and values["SECURE_HSTS_SECONDS"] == ONE_YEAR
    assert not values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] and not values["SECURE_HSTS_PRELOAD"]


def test_the_embedded_default_serves_plain_http() -> None:
    values = computed_settings()
    assert not values["SECURE_SSL_REDIRECT"] and values["SECURE_HSTS_SECONDS"] == 0
    assert not values["SESSION_COOKIE_SECURE"] and not values["CSRF_COOKIE_SECURE"]


def test_secure_cookies_alone_keeps_its_old_meaning() -> None:
    values = computed_settings(SECURE_COOKIES="1")
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert not values["SECURE_SSL_REDIRECT"] and values["SECURE_HSTS_SECONDS"] == 0


def test_hsts_lifetime_subdomains_and_preload_are_the_operators_choice(settings: Any, db: Any) -> None:
    values = computed_settings(HTTPS_ONLY="1", HSTS_SECONDS="600", HSTS_INCLUDE_SUBDOMAINS="1", HSTS_PRELOAD="1")
    assert values["SILENCED_SYSTEM_CHECKS"] == []  # nothing left to silence once both are chosen
    for name, value in values.items():
        setattr(settings, name, value)
    response = Client().get("/api/status", secure=True)
    assert response.headers["Strict-Transport-Security"] == "max-age=600; includeSubDomains; preload"


@pytest.mark.parametrize("path", ["/api/user/login", "/login/"])
def test_login_cookies_are_secure_httponly_and_samesite(path: str, production: dict[str, Any], make_user: Any) -> None:
    make_user("carol", password="s3cret-pass-word")
    client = Client()
    client.get("/login/", secure=True)  # the console's login form sets the CSRF cookie first
    if path.startswith("/api/"):
        response = client.post(path, {"username": "carol", "password": "s3cret-pass-word"},
                               content_type="application/json", secure=True)
        assert response.status_code == 200, response.content
    else:
        response = client.post(path, {"username": "carol", "password": "s3cret-pass-word"}, secure=True)
        assert response.status_code == 302, response.content
    session, csrf = response.cookies["sessionid"], response.cookies["csrftoken"]
    assert session["secure"] and session["httponly"] and session["samesite"] == production["SESSION_COOKIE_SAMESITE"]
    assert csrf["secure"] and csrf["samesite"] == production["CSRF_COOKIE_SAMESITE"]
    assert production["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")


@pytest.mark.parametrize("path", ["/login/", "/api/status"])
def test_security_headers_on_console_pages_and_api_answers(path: str, production: dict[str, Any], db: Any) -> None:
    response = Client().get(path, secure=True)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == f"max-age={ONE_YEAR}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == production["SECURE_REFERRER_POLICY"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_plain_http_is_redirected_to_https(production: dict[str, Any], db: Any) -> None:
    for path in ("/login/", "/api/status"):
        response = Client().get(path, HTTP_HOST="modelgate.example")
        assert response.status_code == 301 and response.url == f"https://modelgate.example{path}"
        assert "Strict-Transport-Security" not in response.headers  # HSTS is only ever sent over https


def test_health_endpoints_answer_plain_http_from_a_load_balancer(
    production: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch, db: Any,
) -> None:
    """Through the real ASGI entry: /healthz, /readyz and /metrics are answered before Django, so never redirected."""
    settings.REDIS_URL = None  # readiness then asks the database only (no Redis client bound to this test's loop)
    monkeypatch.setattr(config.asgi, "django_asgi", ASGIHandler())  # built under the production settings
    monkeypatch.setattr(config.asgi.relay_app, "listen_for_changes", lambda: None)

    async def fetch(path: str) -> httpx.Response:
        transport = httpx.ASGITransport(app=config.asgi.http_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://modelgate.example") as client:
            return await client.get(path)

    assert asyncio.run(fetch("/login/")).status_code == 301  # Django itself does redirect
    for path in ("/healthz", "/readyz", "/metrics"):
        assert asyncio.run(fetch(path)).status_code == 200, path
