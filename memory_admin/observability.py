"""Structured logs with a request id that follows a request through the web process and its Celery tasks.

Log lines never carry personal data: no request bodies, no query strings (they can hold user ids), no
message or memory text. Code that logs passes ids and counts only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

logger = structlog.get_logger("memory.http")


# These loggers put details after a colon: Django the request path ("Internal Server Error: /api/v1/sessions/…",
# paths carry session and user ids), Celery an exception's text or a task's return value ("Task …[id] raised
# unexpected: IntegrityError(…)"). Only the part before the colon is kept.
_DETAIL_AFTER_COLON = ("django.request", "django.server", "django.security", "celery.app.trace")


def _exception_summary(exc_info: Any) -> dict[str, Any] | None:
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return None
    frames = traceback.extract_tb(exc_info[2])
    return {
        "type": exc_info[0].__name__,
        "frames": [f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno} {frame.name}" for frame in frames[-8:]],
    }


def drop_personal_data(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Production logs keep an exception's type and where it was raised, never its message (a database
    driver's message quotes row values: "Key (user_id)=(…) already exists"), nor what Django and Celery put after a
    colon in theirs."""
    summary = _exception_summary(event_dict.pop("exc_info", None))
    if summary is not None:
        event_dict["exception"] = summary
    if str(event_dict.get("logger")).startswith(_DETAIL_AFTER_COLON) and isinstance(event_dict.get("event"), str):
        event_dict["event"] = event_dict["event"].split(":", 1)[0]
    return event_dict


class WithoutTaskDetails(logging.Filter):
    """Celery's task lines without what could be personal data, in every format: a task's return value
    ("succeeded in 0.01s: {…}"), an exception's text ("raised unexpected: IntegrityError('Key (user_id)=(…)')",
    "retry: …"). The exception's type and frames still come with the record (see `drop_personal_data`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            for detail in ("%(return_value)s", "%(exc)s"):
                if detail in record.msg:
                    record.msg = record.msg.split(detail, 1)[0].rstrip(": ")
        return True


SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")


def configure_logging(log_format: str, level: str) -> None:
    """JSON lines in production (without exception messages or paths, see `drop_personal_data`), coloured
    key=value lines with full tracebacks for people in development."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        shared.append(drop_personal_data)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    global _json_handler
    _json_handler = handler if log_format == "json" else None
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    # The servers set up loggers of their own, with plain-text handlers, before they load the application:
    # their lines (uvicorn's "Invalid HTTP request received.", an exception granian caught) come through ours.
    # Their levels stay as the server's options set them.
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = []
        server_logger.propagate = True
    # Django's own request logger repeats what our access line says, with the full path; keep it quiet.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    logging.getLogger("django.server").setLevel(logging.WARNING)
    trace = logging.getLogger("celery.app.trace")
    trace.filters = [existing for existing in trace.filters if not isinstance(existing, WithoutTaskDetails)]
    trace.addFilter(WithoutTaskDetails())


# The handler JSON lines go to, when that is the format: the access line is written to it directly.
_json_handler: logging.StreamHandler[Any] | None = None
_access_logger = logging.getLogger("memory.http")


def log_request(*, request_id: str, method: str, route: str | None, status: int, duration_ms: float) -> None:
    """The access line of a request: its id, method, route (never the path: paths carry session and user ids),
    status and duration. In the JSON format it is written straight to the log handler, with the fields the
    structlog pipeline gives every line (event, level, logger, timestamp): that pipeline costs a tenth of a
    small API request's CPU for a line whose content is always the same shape.
    """
    handler = _json_handler
    if handler is None:
        logger.info(
            "request", request_id=request_id, method=method, route=route, status=status, duration_ms=duration_ms
        )
        return
    if not _access_logger.isEnabledFor(logging.INFO):
        return
    line = json.dumps(
        {
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "event": "request",
            "level": "info",
            "logger": "memory.http",
            "timestamp": datetime.now(UTC).isoformat()[:-6] + "Z",
        }
    )
    with handler.lock or contextlib.nullcontext():
        handler.stream.write(line + "\n")
        handler.flush()


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str:
    """The caller's request id when it is well-formed, else a fresh one."""
    if value and _VALID_REQUEST_ID.fullmatch(value):
        return value
    return new_request_id()


class RequestIdMiddleware:
    """Binds a request id to every log line of a request, echoes it in the response, logs one access line."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = accepted_request_id(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id  # type: ignore[attr-defined]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if not request.path.startswith(("/healthz", "/readyz", "/metrics", "/static/")):
            log_request(
                request_id=request_id,
                method=request.method or "",
                route=getattr(getattr(request, "resolver_match", None), "route", None),
                status=response.status_code,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
        structlog.contextvars.clear_contextvars()
        return response
