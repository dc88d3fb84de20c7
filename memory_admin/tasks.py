"""Project-wide periodic tasks."""

from __future__ import annotations

import time

from celery import shared_task

from memory_admin.health import WORKER_HEARTBEAT_KEY, redis_client


@shared_task(name="memory_admin.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Beat schedules this; a worker running it proves that beat, broker and workers are all alive."""
    redis_client().set(WORKER_HEARTBEAT_KEY, str(time.time()), ex=3600)
