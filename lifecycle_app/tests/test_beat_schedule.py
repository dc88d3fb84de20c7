"""Beat runs every lifecycle job, and the apps' own global schedules for the same work give way to them (a
global run would ignore a tenant's longer retention)."""

from __future__ import annotations

from typing import Any

from lifecycle_app.tasks import TASKS
from memory_admin.celery import app


def test_beat_schedules_every_lifecycle_job_and_each_task_is_registered(settings: Any) -> None:
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    for task in TASKS.values():
        assert task.name in scheduled
        assert task.name in app.tasks


def test_the_replaced_global_schedules_are_gone(settings: Any) -> None:
    for name in (
        "checkpoints-retention",
        "memories-evict-decayed",
        "memories-purge-deleted",
        "memories-drain-profile-outbox",
    ):
        assert name not in settings.CELERY_BEAT_SCHEDULE
    # The outbox is drained as often as memories_app drained it before.
    assert settings.CELERY_BEAT_SCHEDULE["lifecycle-outbox-drain"]["schedule"] <= 30
