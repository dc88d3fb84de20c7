"""The pages' answer while PostgreSQL is away: a 503 page that says to try again, where a page would fail with
a 500. The API answers the same outage with its JSON 503 (memory_admin/api/errors.py)."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django import db
from django.http import HttpRequest, HttpResponse

from memory_admin.api.errors import beyond_database_limit
from memory_admin.dashboard.views import service_unavailable

logger = structlog.get_logger("memory.dashboard")


class DatabaseUnavailableMiddleware:
    """Turns a page's lost or refused database connection into the 503 page, with Retry-After.

    Nothing was half-written (the transaction rolled back), and Django drops the broken connection at the end
    of the request, so the next one connects afresh: after a restart, the first request of each web thread
    meets its dead connection and gets this page; the next is served.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if request.path.startswith("/api/") or not isinstance(exception, (db.OperationalError, db.InterfaceError)):
            return None
        if beyond_database_limit(exception):  # a value PostgreSQL refuses: the same again would fail the same way
            return None
        # The route, as the access line gives it: a page's path can name a person (/users/<tenant>/<user id>/).
        route = getattr(getattr(request, "resolver_match", None), "route", None)
        logger.warning("layer_unavailable", error=type(exception).__name__, route=route)
        return service_unavailable(request)
