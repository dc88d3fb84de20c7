"""The WSGI application: agents' API requests take a short middleware chain, everything else the full one.

The API authenticates by key only, so sessions, CSRF, auth, messages, static files and frame options do no
useful work on `/api/v1/` yet cost about a fifth of a small request's CPU. Both chains are ordinary Django
handlers (same URLconf, signals and exception handling); they differ only in their middleware lists,
`settings.API_MIDDLEWARE` and `settings.MIDDLEWARE`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

API_PREFIX = "/api/v1/"


class _ApiWSGIHandler(WSGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        # Django builds a handler's chain from settings.MIDDLEWARE; this handler's chain is API_MIDDLEWARE.
        # Swapped only while the chain is built, once per process at start-up, before any request.
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = settings.API_MIDDLEWARE
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


class SplitWSGIHandler:
    def __init__(self) -> None:
        self.api = _ApiWSGIHandler()
        self.site = WSGIHandler()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        handler = self.api if environ.get("PATH_INFO", "").startswith(API_PREFIX) else self.site
        return handler(environ, start_response)
