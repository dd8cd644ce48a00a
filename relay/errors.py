"""Relay errors; `relay.wires.error_body` renders them in the caller's protocol."""

from __future__ import annotations


class RelayError(Exception):
    """A request the relay answers with an error of its own (not an upstream's passed-through body)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type, code, param
        self.headers = headers or {}


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> RelayError:
    return RelayError(400, message, param=param, code=code)


def content_refused(message: str) -> RelayError:
    """The upstream answered, refusing to make what was asked (safety filters): the caller's to change, not an
    upstream fault to fail over on."""
    return RelayError(400, message, code="content_policy_violation")


def unauthorized(message: str) -> RelayError:
    return RelayError(401, message, code="invalid_api_key")


def forbidden(message: str, code: str) -> RelayError:
    return RelayError(403, message, type="insufficient_quota" if code == "insufficient_quota" else "permission_error",
                      code=code)


def not_found(message: str, code: str = "model_not_found") -> RelayError:
    return RelayError(404, message, code=code)


def unavailable(message: str) -> RelayError:
    return RelayError(503, message, type="server_error", code="no_upstream_available")


def upstream_failed(message: str, status: int = 502) -> RelayError:
    return RelayError(status, message, type="upstream_error", code="upstream_error")


def upstream_rate_limited(message: str, retry_after: int) -> RelayError:
    """Every upstream tried answered 429: the caller may retry after the last one's Retry-After."""
    return RelayError(429, f"The upstream is rate limited; retry after {retry_after} s. {message}".strip(),
                      type="rate_limit_error", code="upstream_rate_limited", headers={"retry-after": str(retry_after)})


def key_rate_limited(limit: int, retry_after: int, headers: dict[str, str] | None = None) -> RelayError:
    """The key's requests-per-minute limit is spent; `headers` are the rate-limit headers the answer carries."""
    return RelayError(429, f"Rate limit reached: {limit} requests per minute for this key.", type="rate_limit_error",
                      code="rate_limit_exceeded", headers=(headers or {}) | {"retry-after": str(retry_after)})


def key_too_many_concurrent(limit: int, headers: dict[str, str] | None = None) -> RelayError:
    """Every one of the key's concurrency slots is taken."""
    return RelayError(429, f"Too many concurrent requests: at most {limit} for this key.", type="rate_limit_error",
                      code="concurrency_limit_exceeded", headers=(headers or {}) | {"retry-after": "1"})
