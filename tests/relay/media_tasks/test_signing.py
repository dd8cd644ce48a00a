"""Kling's JWT and Volcengine's V4 signature, checked by independent verifiers (the fake upstreams' own)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

from relay.media_tasks.signing import (
    jwt_hs256,
    kling_token,
    volc_canonical_request,
    volc_sign,
)
from tests.fakes.task_upstreams import jwt_valid, volc_valid


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_kling_token_is_a_valid_hs256_jwt_for_thirty_minutes():
    token = kling_token("ak", "sk", now=1_700_000_000)
    assert token.split(".")[0] == "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
    assert _claims(token) == {"iss": "ak", "exp": 1_700_001_800, "nbf": 1_699_999_995}
    assert jwt_valid(kling_token("ak", "sk"), "ak", "sk")
    assert not jwt_valid(kling_token("ak", "other"), "ak", "sk")
    assert jwt_hs256({"a": 1}, "s") != jwt_hs256({"a": 1}, "t")


def test_volcengine_signature_verifies_and_covers_body_and_query():
    url = "https://visual.volcengineapi.com/?Version=2022-08-31&Action=CVSync2AsyncSubmitTask"
    body = b'{"req_key":"jimeng_vgfm_t2v_l20","prompt":"koi"}'
    headers = {k.lower(): v for k, v in volc_sign("POST", url, body, "volc-ak", "volc-sk").items()}
    query = "Version=2022-08-31&Action=CVSync2AsyncSubmitTask"
    assert volc_valid("POST", "/", query, headers, body)
    assert not volc_valid("POST", "/", query, headers, body + b" ")
    assert not volc_valid("POST", "/", query.replace("Submit", "Get"), headers, body)
    assert headers["authorization"].startswith("HMAC-SHA256 Credential=volc-ak/")
    assert "/cn-north-1/cv/request, SignedHeaders=content-type;host;x-content-sha256;x-date, " in \
        headers["authorization"]


def test_volcengine_canonical_request_layout():
    at = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    headers = volc_sign("POST", "https://visual.volcengineapi.com/?B=2&A=1", b"{}", "ak", "sk", now=at)
    assert headers["X-Date"] == "20240102T030405Z"
    request, signed = volc_canonical_request("POST", "https://visual.volcengineapi.com/?B=2&A=1",
                                             {"host": "visual.volcengineapi.com", "x-date": "20240102T030405Z"},
                                             "e3b0")
    assert request == "POST\n/\nA=1&B=2\nhost:visual.volcengineapi.com\nx-date:20240102T030405Z\n\nhost;x-date\ne3b0"
    assert signed == "host;x-date"
