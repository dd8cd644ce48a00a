"""Checks shared by the security tests: each protocol's error shape, and the books before and after a request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts.models import User
from billing.ledger import ledger_sum
from billing.models import LedgerEntry

MJ_ACCEPTED = {1, 21, 22}  # midjourney-proxy's codes for a task taken (protocols.md 7)


def protocol_of(path: str) -> str:
    """The wire format a path answers in: Midjourney's, Suno's, Kling's, Anthropic's, Gemini's or OpenAI's."""
    if path.startswith(("/mj/", "/mj-fast/", "/mj-relax/", "/mj-turbo/")):
        return "midjourney"
    if path.startswith("/suno/"):
        return "suno"
    if path.startswith("/kling/"):
        return "kling"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1beta/") or ":generateContent" in path or ":streamGenerateContent" in path:
        return "gemini"
    return "openai"


def error_shaped(protocol: str, body: Any) -> bool:
    """Whether `body` is an error in `protocol`'s own shape."""
    if not isinstance(body, dict):
        return False
    if protocol == "midjourney":  # {code, description, result}: code 4 validation, 3 not found, 9 system
        return (isinstance(body.get("code"), int) and not isinstance(body["code"], bool)
                and body["code"] not in MJ_ACCEPTED and isinstance(body.get("description"), str))
    if protocol == "suno":  # {code: "<error code>", message, data: null}
        return (isinstance(body.get("code"), str) and body["code"] != "success"
                and isinstance(body.get("message"), str) and body.get("data") is None)
    if protocol == "kling":  # {code: 1000-5999, message, request_id}
        return (isinstance(body.get("code"), int) and not isinstance(body["code"], bool) and body["code"] >= 1000
                and isinstance(body.get("message"), str) and isinstance(body.get("request_id"), str))
    error = body.get("error")
    if protocol == "anthropic":
        return body.get("type") == "error" and isinstance(error, dict) and isinstance(error.get("message"), str)
    if protocol == "gemini":
        return isinstance(error, dict) and isinstance(error.get("message"), str) and "status" in error
    return (isinstance(error, dict) and isinstance(error.get("message"), str) and isinstance(error.get("type"), str)
            and "code" in error)


def accepted(protocol: str, status: int, body: Any) -> bool:
    """Whether a task route took the request (Midjourney answers refusals with HTTP 200 and its own code)."""
    if status != 200:
        return False
    if protocol == "midjourney" and isinstance(body, dict) and "code" in body:
        return body["code"] in MJ_ACCEPTED
    if protocol == "suno" and isinstance(body, dict) and "code" in body:
        return body["code"] == "success"
    if protocol == "kling" and isinstance(body, dict):
        return body.get("code") == 0
    return True


@dataclass(frozen=True)
class Books:
    """What a rejected request must not change: the ledger's rows, the user's ledger sum and balance."""

    rows: int
    ledger: int
    quota: int

    @classmethod
    def of(cls, user: User) -> Books:
        quota = User.objects.filter(pk=user.pk).values_list("quota", flat=True).get()
        return cls(LedgerEntry.objects.count(), ledger_sum(user_id=user.pk), quota)

    def balanced(self) -> bool:
        return self.ledger == self.quota
