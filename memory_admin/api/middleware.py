"""Refuse oversized API bodies before anything reads them."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from memory_admin.api.errors import json_error


class BodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return json_error(request, 400, "bad_request", "Content-Length is not a number.")
            if length > settings.API_MAX_BODY_BYTES:
                return json_error(
                    request,
                    413,
                    "payload_too_large",
                    f"The request body is {length} bytes; the limit is {settings.API_MAX_BODY_BYTES}.",
                    {"limit_bytes": settings.API_MAX_BODY_BYTES},
                )
        return self.get_response(request)
