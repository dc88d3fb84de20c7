"""Celery tasks of the lifecycle jobs: thin, idempotent, taking names; each run leaves a JobRun row.

A lost connection retries with backoff; the steps that committed stay done, so a retry resumes.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task
from django.db import OperationalError
from django.utils import timezone

from lifecycle_app import jobs, selectors
from lifecycle_app.models import Job

_RETRY: dict[str, Any] = {
    "bind": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 2,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 5,
}


def _run(task: Task[Any, Any], job: str, dry_run: bool, triggered_by: str) -> str:
    return str(jobs.run_by_name(job, dry_run=dry_run, triggered_by=triggered_by, task_id=task.request.id or ""))


@shared_task(name="lifecycle_app.tasks.archive_inactive_sessions", **_RETRY)
def archive_inactive_sessions(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    return _run(self, Job.SESSION_ARCHIVAL, dry_run, triggered_by)


@shared_task(name="lifecycle_app.tasks.archive_old_events", **_RETRY)
def archive_old_events(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    return _run(self, Job.EVENT_ARCHIVAL, dry_run, triggered_by)


@shared_task(name="lifecycle_app.tasks.apply_checkpoint_retention", **_RETRY)
def apply_checkpoint_retention(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    return _run(self, Job.CHECKPOINT_RETENTION, dry_run, triggered_by)


@shared_task(name="lifecycle_app.tasks.evict_decayed_memories", **_RETRY)
def evict_decayed_memories(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    return _run(self, Job.MEMORY_EVICTION, dry_run, triggered_by)


@shared_task(name="lifecycle_app.tasks.purge_deleted_memories", **_RETRY)
def purge_deleted_memories(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    return _run(self, Job.MEMORY_PURGE, dry_run, triggered_by)


@shared_task(name="lifecycle_app.tasks.drain_profile_outbox", **_RETRY)
def drain_profile_outbox(self: Task[Any, Any], dry_run: bool = False, triggered_by: str = "beat") -> str:
    if triggered_by == "beat" and not dry_run and not selectors.outbox_has_work(timezone.now()):
        return ""  # beat rings every 30 s: an empty outbox leaves no run row behind
    return _run(self, Job.OUTBOX_DRAIN, dry_run, triggered_by)


TASKS = {
    Job.SESSION_ARCHIVAL: archive_inactive_sessions,
    Job.EVENT_ARCHIVAL: archive_old_events,
    Job.CHECKPOINT_RETENTION: apply_checkpoint_retention,
    Job.MEMORY_EVICTION: evict_decayed_memories,
    Job.MEMORY_PURGE: purge_deleted_memories,
    Job.OUTBOX_DRAIN: drain_profile_outbox,
}
