"""The API client of the tests: requests reach the service as the web server hands them over.

The web server runs `memory_admin.wsgi.application`, which offers every request to the hot lane first
(memory_admin.api.hot) and passes the rest to Django. DRF's APIClient calls Django's handler directly, so
its requests would never meet the lane; `AgentClient` offers each one to the lane first, so every API test
covers whichever lane a real request would take.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIRequest
from django.http import HttpResponse
from django.test import override_settings
from rest_framework.test import APIClient, ForceAuthClientHandler

from memory_admin.api.hot.lane import HotLane
from memory_admin.api.hot.routes import hot_routes


@cache
def _lane() -> HotLane:
    def unused(environ: dict[str, Any], start_response: Any) -> Any:
        raise AssertionError("the client hands unserved requests to Django itself")

    return HotLane(unused, hot_routes())


class _LaneFirstHandler(ForceAuthClientHandler):
    def __call__(self, environ: dict[str, Any]) -> Any:
        if getattr(self, "_force_user", None) is not None:  # forced authentication is Django's business
            return super().__call__(environ)
        started: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            started.update(status=int(status.split(" ", 1)[0]), headers=headers)

        served = _lane().serve(environ, start_response)
        if served is None:
            return super().__call__(environ)
        body = b"".join(served)
        close = getattr(served, "close", None)
        if close is not None:  # as a WSGI server does once the response is sent
            close()
        response = HttpResponse(body, status=started["status"])
        for name, value in started["headers"]:
            response[name] = value
        response.wsgi_request = WSGIRequest(environ)  # type: ignore[attr-defined]
        response.served_by_hot_lane = True  # type: ignore[attr-defined]
        return response


def served_by_hot_lane(response: Any) -> bool:
    return bool(getattr(response, "served_by_hot_lane", False))


class _ApiChainHandler(ForceAuthClientHandler):
    """Django's handler with the middleware chain API requests take in production (settings.API_MIDDLEWARE)."""

    def load_middleware(self, is_async: bool = False) -> None:
        with override_settings(MIDDLEWARE=settings.API_MIDDLEWARE):
            super().load_middleware(is_async)


class DjangoApiClient(APIClient):
    """Straight to Django, through the API's middleware chain, never the hot lane: what the lane is compared with."""

    def __init__(self, enforce_csrf_checks: bool = False, **defaults: Any) -> None:
        super().__init__(enforce_csrf_checks=enforce_csrf_checks, **defaults)
        self.handler = _ApiChainHandler(enforce_csrf_checks)


class AgentClient(APIClient):
    def __init__(self, enforce_csrf_checks: bool = False, **defaults: Any) -> None:
        super().__init__(enforce_csrf_checks=enforce_csrf_checks, **defaults)
        self.handler = _LaneFirstHandler(enforce_csrf_checks)
