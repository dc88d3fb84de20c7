"""Refuse API requests that could only fail deeper down: a host not served, oversized bodies, NUL characters in
the URL."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse

from memory_admin.api.errors import json_error

# An oversized body is read and dropped up to this many times the limit before the 413 goes out: a client that
# writes its whole request before reading (asyncio's streams) would otherwise find the connection closed under
# its write and never see the answer. Past it the connection is closed, as before.
DRAIN_LIMITS = 32
_DRAIN_CHUNK = 256 * 1024


class ApiRequestGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/"):
            refusal = self._refusal(request)
            if refusal is not None:
                return refusal
        return self.get_response(request)

    def _refusal(self, request: HttpRequest) -> HttpResponse | None:
        # As the pages do (CommonMiddleware asks): the API answers only to its ALLOWED_HOSTS. Else the check
        # fell on whichever answer happened to build a link (a page's `next`), as an unexplained 400.
        try:
            request.get_host()
        except DisallowedHost:
            return json_error(request, 400, "bad_request", "This host name is not among the service's ALLOWED_HOSTS.")
        # PostgreSQL cannot compare text with U+0000, so an id or filter holding one can match nothing.
        if "\x00" in request.path:
            return json_error(request, 404, "not_found", "No such resource.")
        if any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists()):
            return json_error(request, 400, "bad_request", "Query parameters may not contain the NUL character.")
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return json_error(request, 400, "bad_request", "Content-Length is not a number.")
        if length > settings.API_MAX_BODY_BYTES:
            _drain(request, length)
            return json_error(
                request,
                413,
                "payload_too_large",
                f"The request body is {length} bytes; the limit is {settings.API_MAX_BODY_BYTES}.",
                {"limit_bytes": settings.API_MAX_BODY_BYTES},
            )
        return None


def _drain(request: HttpRequest, length: int) -> None:
    """Read what the client sends of a refused body (within DRAIN_LIMITS of the limit), without keeping it."""
    stream = request.META.get("wsgi.input")  # None under ASGI, whose server has read the body already
    left = min(length, settings.API_MAX_BODY_BYTES * DRAIN_LIMITS)
    try:
        while stream is not None and left > 0:
            chunk = stream.read(min(_DRAIN_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
    except OSError:  # the client went away: nobody waits for the answer
        return
