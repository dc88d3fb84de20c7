"""The Celery app: one image runs web, worker and beat; the broker is Redis.

Worker and beat log through the service's logging (memory_admin.observability): JSON lines without exception
messages when LOG_FORMAT=json, as the web processes do, and never a task's arguments or return value.

The request id of the web request (or task) that queued a task travels in the message's headers and is bound
to the worker's log lines while the task runs, so one id follows a request through web and workers.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import structlog
from celery import Celery
from celery.signals import before_task_publish, setup_logging, task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "memory_admin.settings")

app = Celery("memory_admin")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "request_id"


@setup_logging.connect
def use_the_service_logging(loglevel: Any = None, **kwargs: Any) -> None:
    """Celery configures no logging of its own when this signal has a receiver: its loggers go to the handler
    the settings installed (memory_admin.observability.configure_logging), in LOG_FORMAT.

    The level is the stricter of LOG_LEVEL and the command line's `-l` (`make run` quiets its worker with
    `-l warning`).
    """
    from django.conf import settings

    # Reading a setting loads the settings, which configure the logging.
    wanted = logging.getLevelName(settings.LOG_LEVEL.upper())
    given = loglevel if isinstance(loglevel, int) else logging.getLevelName(str(loglevel or "").upper())
    logging.getLogger().setLevel(max(wanted, given) if isinstance(given, int) else wanted)


@before_task_publish.connect
def carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Put the current request id into the headers of a task being queued (beat's tasks have none)."""
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@task_prerun.connect
def bind_request_id(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """Bind the queuing request's id (or a fresh one) and the task to every log line of the task.

    An eager task (run inside the caller, as in tests) keeps the caller's request id and gives the caller its
    log context back when it ends.
    """
    from memory_admin.observability import accepted_request_id

    request = getattr(task, "request", None)
    current = structlog.contextvars.get_contextvars()
    if getattr(request, "is_eager", False):
        request._log_context = current  # type: ignore[union-attr]
        carried = current.get("request_id")
    else:
        carried = getattr(request, REQUEST_ID_HEADER, None)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(
        request_id=accepted_request_id(carried if isinstance(carried, str) else None),
        task=getattr(task, "name", None),
        task_id=task_id,
    )


@task_postrun.connect
def unbind_request_id(task: Any = None, **kwargs: Any) -> None:
    saved = getattr(getattr(task, "request", None), "_log_context", None)
    structlog.contextvars.clear_contextvars()
    if saved:
        structlog.contextvars.bind_contextvars(**saved)
