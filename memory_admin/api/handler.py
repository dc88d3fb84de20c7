"""The WSGI application: agents' API requests take a short middleware chain, everything else the full one.

The API authenticates by key only, so sessions, CSRF, auth, messages, static files and frame options do no
useful work on `/api/v1/` yet cost about a fifth of a small request's CPU. Both chains are ordinary Django
handlers (same URLconf, signals and exception handling); they differ only in their middleware lists,
`settings.API_MIDDLEWARE` and `settings.MIDDLEWARE`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from prometheus_client import CONTENT_TYPE_LATEST

from memory_admin.health import readiness
from memory_admin.metrics import exposition, scrape_allowed

API_PREFIX = "/api/v1/"
# Liveness and readiness (memory_admin.views.healthz and readyz, the same answers), given before Django: a
# probe from the host or the orchestrator (Host: 127.0.0.1, a pod's IP) need not be among ALLOWED_HOSTS, and
# it needs nothing Django's middleware does.
ALIVE = b'{"status": "ok"}'
# Also the ASGI application's (memory_admin.asgi), which answers the same probes the same way.
PROBE_HEADERS = [
    (b"cache-control", b"max-age=0, no-cache, no-store, must-revalidate, private"),
    (b"x-content-type-options", b"nosniff"),
]
READINESS_STATUSES = {200: "200 OK", 503: "503 Service Unavailable"}


def _probe_answer(
    environ: dict[str, Any],
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    *,
    content_type: str = "application/json",
) -> list[bytes]:
    headers = [
        ("Content-Type", content_type),
        *((name.decode(), value.decode()) for name, value in PROBE_HEADERS),
        ("Content-Length", str(len(body))),
    ]
    start_response(status, headers)
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


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
        path = environ.get("PATH_INFO")
        if path in ("/healthz", "/readyz") and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if path == "/healthz":
                return _probe_answer(environ, start_response, "200 OK", ALIVE)
            status, body = readiness()
            return _probe_answer(environ, start_response, READINESS_STATUSES[status], json.dumps(body).encode())
        # A scrape with the token, or from loopback, is answered before Django too: Prometheus asks by a pod's IP
        # or a compose service's name, which ALLOWED_HOSTS does not list. Anything else (an admin's session, a
        # refusal) is Django's, as before.
        if (
            path == "/metrics"
            and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and scrape_allowed(environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR", ""))
        ):
            return _probe_answer(environ, start_response, "200 OK", exposition(), content_type=CONTENT_TYPE_LATEST)
        if environ.get("PATH_INFO", "").startswith(API_PREFIX):
            buffer_chunked_body(environ)
            return self.api(environ, start_response)
        return self.site(environ, start_response)


def buffer_chunked_body(environ: dict[str, Any]) -> None:
    """Give a body sent with `Transfer-Encoding: chunked` (the web server has taken the chunks apart) the
    Content-Length Django needs: without one it reads no body at all, and the request would look empty. Read
    up to one byte past the API's limit, so an oversized body still gets its 413."""
    if environ.get("CONTENT_LENGTH") or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    if not environ.get("wsgi.input_terminated"):  # a server that does not say where the body ends
        return
    body = environ["wsgi.input"].read(settings.API_MAX_BODY_BYTES + 1)
    environ["wsgi.input"] = BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
