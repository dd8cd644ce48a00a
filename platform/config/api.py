"""The management API's envelope `{"success", "message", "data"}`, its error handler and its pagination."""

from __future__ import annotations

from typing import Any, Callable, Iterable

from django.core.exceptions import ObjectDoesNotExist
from django.core.paginator import Paginator
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, parsers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import ServiceError

MAX_PAGE_SIZE = 100


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; input nested too deeply for Python is malformed (400), not a crash (500)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError(_("JSON parse error - nested too deeply.")) from None


def ok(data: Any = None, message: str = "", *, http_status: int = status.HTTP_200_OK) -> Response:
    return Response({"success": True, "message": message, "data": data}, status=http_status)


def fail(message: str, *, http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"success": False, "message": message, "data": None}, status=http_status)


def validated(serializer_class: type, request: Request) -> dict:
    """The request's data checked by `serializer_class`; a 400 in the envelope otherwise."""
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _flatten(detail: Any, prefix: str = "") -> list[str]:
    """DRF's nested validation detail as `field: message` lines."""
    if isinstance(detail, dict):
        lines: list[str] = []
        for key, value in detail.items():
            label = "" if key == "non_field_errors" else f"{prefix}{key}"
            lines += _flatten(value, f"{label}." if label else "")
        return lines
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, prefix)]
    name = prefix.rstrip(".")
    return [f"{name}: {detail}" if name else str(detail)]


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """Every API error in the envelope, with the right status; never a traceback."""
    if isinstance(exc, ServiceError):
        return fail(exc.message, http_status=exc.status)
    if isinstance(exc, (Http404, ObjectDoesNotExist)):
        return fail(_("Not found."), http_status=status.HTTP_404_NOT_FOUND)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        message = "; ".join(_flatten(exc.detail)) or _("Invalid request.")
    elif isinstance(exc, exceptions.APIException):
        message = str(exc.detail)
    else:
        message = _("Request failed.")
    response.data = {"success": False, "message": message, "data": None}
    return response


def page_params(request: Request) -> tuple[int, int]:
    """`p` (from 1) and `page_size` (1..100) from the query string, forgiving bad values."""

    def number(name: str, default: int) -> int:
        try:
            return int(request.query_params.get(name, default))
        except (TypeError, ValueError):
            return default

    return max(number("p", 1), 1), min(max(number("page_size", 10), 1), MAX_PAGE_SIZE)


def paginated(request: Request, items: Iterable, render: Callable[[Any], dict]) -> Response:
    """A page of `items` as `{items, total, page, page_size}`."""
    page, page_size = page_params(request)
    paginator = Paginator(items, page_size)
    rows = list(paginator.get_page(page).object_list) if page <= max(paginator.num_pages, 1) else []
    return ok({"items": [render(row) for row in rows], "total": paginator.count, "page": page, "page_size": page_size})


class IsPlatformAdmin(BasePermission):
    """Operators only: role admin or superuser."""

    message = "Administrator access is required."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_platform_admin)
