"""A run whose worker was killed never finishes: the hourly purge job marks it failed ("abandoned") once it is
far older than any run takes, so the dashboard and `memory_lifecycle_jobs_running` stop showing it as running;
a run still in its first day is left alone."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conftest import World, logged_in
from lifecycle_app import jobs
from lifecycle_app.models import JobRun, RunStatus
from memory_admin.metrics import forget_scraped_figures

pytestmark = pytest.mark.django_db


def running_metric(job: str) -> float:
    forget_scraped_figures()
    text = Client().get("/metrics").content.decode()
    match = re.search(rf'^memory_lifecycle_jobs_running{{job="{job}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_a_run_a_crash_left_running_is_marked_abandoned_and_no_longer_counted_as_running(world: World) -> None:
    crashed = JobRun.objects.create(
        job="session_archival", triggered_by="beat", started_at=timezone.now() - timedelta(hours=25)
    )
    in_progress = JobRun.objects.create(
        job="event_archival", triggered_by="beat", started_at=timezone.now() - timedelta(hours=2)
    )
    assert running_metric("session_archival") == 1

    run = jobs.purge_memories(dry_run=False, triggered_by="manual")

    crashed.refresh_from_db()
    in_progress.refresh_from_db()
    assert run.counts["job_runs_abandoned"] == 1
    assert crashed.status == RunStatus.FAILED and crashed.finished_at is None
    assert [error["type"] for error in crashed.errors] == ["Abandoned"]
    assert in_progress.status == RunStatus.RUNNING
    assert running_metric("session_archival") == 0 and running_metric("event_archival") == 1
    page = logged_in(world.admin).get("/lifecycle/").content.decode()
    row = re.search(r'<tr data-job="session_archival">.*?</tr>', page, re.DOTALL)
    assert row and "status-failed" in row.group(0)
