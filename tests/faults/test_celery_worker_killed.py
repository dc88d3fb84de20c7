"""A Celery worker process killed (SIGKILL) in the middle of a lifecycle job: the broker hands the job to the
next worker process (late acknowledgement, rejected when its worker is lost), which resumes it from what had
committed, and every row is archived exactly once.

The worker is a real `celery worker` process on the test database, consuming from a Redis of this test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from celery import Celery
from django.db import connection
from django.utils import timezone

from conftest import World
from lifecycle_app.models import ArchiveSegment, Job, JobRun, SessionArchival
from sessions_app.models import AgentSession, Event, EventType, SessionStatus
from sessions_app.services import NewEvent, append_events, create_session
from tests.faults.servers import throwaway_redis

pytestmark = pytest.mark.django_db(transaction=True)

SESSIONS = 8
EVENTS = 120
BATCH = 10  # events per archive segment: many short steps, so the kill lands mid-job


def _idle_sessions(world: World) -> None:
    for number in range(SESSIONS):
        session, _ = create_session(tenant=world.acme.tenant, user_id=f"user-{number}", session_id=f"idle-{number}")
        for start in range(0, EVENTS, 40):
            append_events(
                session=session,
                events=[
                    NewEvent(EventType.MESSAGE_ADDED, {"role": "user", "content": f"s{number} m{start + i}"})
                    for i in range(40)
                ],
            )
    long_ago = timezone.now() - timedelta(days=400)
    AgentSession.objects.filter(tenant=world.acme.tenant).update(
        last_activity_at=long_ago, created_at=long_ago, updated_at=long_ago
    )
    Event.objects.filter(session__tenant=world.acme.tenant).update(created_at=long_ago)


def _worker(broker_url: str, archive_dir: Path) -> subprocess.Popen[bytes]:
    settings_dict = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST']}:"
        f"{settings_dict['PORT']}/{settings_dict['NAME']}",
        "REDIS_URL": broker_url,
        "CELERY_BROKER_URL": broker_url,
        "LIFECYCLE_BATCH_SIZE": str(BATCH),
        "ARCHIVE_DIR": str(archive_dir),
        "ARCHIVE_STORAGE_BACKEND": "",
        "LOG_LEVEL": "warning",
    }
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "memory_admin", "-q", "worker", "-l", "warning"]
    argv += ["-P", "prefork", "-c", "1", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _wait(predicate: object, *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_whose_worker_process_is_killed_resumes_and_archives_each_event_once(
    world: World, tmp_path: Path
) -> None:
    _idle_sessions(world)
    total = SESSIONS * EVENTS
    with throwaway_redis(tmp_path / "broker") as broker:
        worker = _worker(broker.url, tmp_path / "archive")
        try:
            # Not the current app: the service's shared tasks must keep publishing to the suite's broker after
            # this test (they resolve the current app, and this broker is gone then).
            sender = Celery("fault-tests", broker=broker.url, set_as_current=False)
            sender.send_task(
                "lifecycle_app.tasks.archive_inactive_sessions", kwargs={"triggered_by": "fault-test"}, retry=False
            )
            _wait(lambda: ArchiveSegment.objects.count() >= 12, timeout=60, what="the job to be under way")
            pool = psutil.Process(worker.pid).children()
            assert len(pool) == 1
            os.kill(pool[0].pid, signal.SIGKILL)
            archived_at_kill = total - Event.objects.count()

            _wait(
                lambda: SessionArchival.objects.filter(state=SessionArchival.State.DONE).count() == SESSIONS,
                timeout=60,
                what="the job to finish after the kill",
            )
        finally:
            with_children = [worker.pid, *(child.pid for child in psutil.Process(worker.pid).children())]
            for pid in with_children:
                os.kill(pid, signal.SIGKILL)
            worker.wait(10)

    assert 0 < archived_at_kill < total, "the kill landed in the middle of the job"
    assert not Event.objects.filter(session__tenant=world.acme.tenant).exists()
    assert AgentSession.objects.filter(status=SessionStatus.ARCHIVED).count() == SESSIONS
    for session in AgentSession.objects.filter(tenant=world.acme.tenant):
        ranges = sorted(
            ArchiveSegment.objects.filter(session=session, kind="events").values_list("from_version", "to_version")
        )
        expected = [(start, start + BATCH - 1) for start in range(1, EVENTS + 1, BATCH)]
        assert ranges == expected, f"{session.session_id}: each event in exactly one segment"
    runs = JobRun.objects.filter(job=Job.SESSION_ARCHIVAL).order_by("started_at")
    assert runs.count() == 2, "the killed run and the one that resumed it"
    assert runs.last().finished_at is not None  # type: ignore[union-attr]
    print(
        f"\nFAULT celery worker SIGKILL: {total} events in {SESSIONS} sessions, {archived_at_kill} archived when the "
        f"worker process died; after resuming {total} archived once each, 0 twice; job runs {runs.count()}"
    )
