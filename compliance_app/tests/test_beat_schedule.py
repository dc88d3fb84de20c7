"""Beat picks up purges and exports whose worker died, and deletes expired export archives."""

from __future__ import annotations

from typing import Any

from compliance_app.tasks import resume_purges, sweep_exports
from memory_admin.celery import app


def test_beat_schedules_the_purge_and_export_sweeps_and_their_tasks_are_registered(settings: Any) -> None:
    schedules = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    for task in (resume_purges, sweep_exports):
        assert task.name in app.tasks
        # Well inside the purge lease (10 min) and an export's lifetime (hours).
        assert 0 < schedules[task.name] <= 300
