"""Last-resort 404 and 500 answers, in the error shape of the protocol the path belongs to."""

from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.shortcuts import render

logger = logging.getLogger(__name__)


def error_body(path: str, status: int, message: str) -> dict:
    """OpenAI's shape on /v1, Anthropic's on /v1/messages, Google's on /v1beta, the envelope on /api."""
    if path.startswith("/v1/messages"):
        kind = "not_found_error" if status == 404 else "api_error"
        return {"type": "error", "error": {"type": kind, "message": message}}
    if path.startswith("/v1beta"):
        return {"error": {"code": status, "message": message, "status": "NOT_FOUND" if status == 404 else "INTERNAL"}}
    if path.startswith("/v1"):
        kind = "invalid_request_error" if status == 404 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return {"success": False, "message": message, "data": None}


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/v1", "/mj/", "/suno/", "/kling/", "/jimeng/"))


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    if _is_api(request.path):
        return JsonResponse(error_body(request.path, 404, f"Unknown path: {request.path}"), status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    if _is_api(request.path):
        return JsonResponse(error_body(request.path, 500, "Internal error; it has been logged."), status=500)
    return render(request, "500.html", status=500)
