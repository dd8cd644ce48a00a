"""The base of every domain error a service raises; views turn it into their protocol's error shape."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal the caller can act on. `status` is the HTTP status an API answers it with."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = str(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"
