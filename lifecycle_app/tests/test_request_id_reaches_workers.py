"""One request id follows a request into the Celery worker: an admin starts a job from the dashboard with an
X-Request-ID, a real worker (consuming from the real Redis broker) runs it, and the job's run row and log
lines carry that id."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

from conftest import World, logged_in
from lifecycle_app.models import Job, JobRun
from memory_admin.celery import app

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_job_started_from_the_dashboard_runs_under_the_requests_id(world: World) -> None:
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        response = logged_in(world.admin).post(
            f"/lifecycle/jobs/{Job.MEMORY_EVICTION}/", {"dry_run": "1"}, HTTP_X_REQUEST_ID="req-lifecycle-42"
        )
        assert response.status_code == 302
        deadline = time.monotonic() + 30
        while not JobRun.objects.filter(finished_at__isnull=False).exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    run = JobRun.objects.get()
    assert run.request_id == "req-lifecycle-42"
    assert run.triggered_by == "admin:ada-admin" and run.dry_run and run.task_id


def test_a_task_queued_outside_any_request_gets_a_fresh_id(world: World) -> None:
    from lifecycle_app.tasks import evict_decayed_memories

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        evict_decayed_memories.delay(dry_run=True, triggered_by="manual")
        deadline = time.monotonic() + 30
        while not JobRun.objects.filter(finished_at__isnull=False).exists() and time.monotonic() < deadline:
            time.sleep(0.1)

    run = JobRun.objects.get()
    assert len(run.request_id) == 32
