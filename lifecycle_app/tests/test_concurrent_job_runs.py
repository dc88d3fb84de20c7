"""Two workers running the same job at once (threads with their own database connections) do each row once,
and the counts of their two JobRuns add up to the work."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment, JobRun, RunStatus
from memories_app.models import Memory, Scope
from memories_app.services import NewMemory, create_memories
from sessions_app.models import AgentSession, Event, SessionStatus
from tests.concurrency import at_once

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_session_archival_runs_archive_each_session_and_event_once(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 40
    sessions = [grow_session(world, steps=150, session_id=f"run-{n}", user_id=f"user-{n}") for n in range(6)]
    for session in sessions:
        age(session, days=100)

    runs = at_once(*[lambda: jobs.archive_sessions(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["sessions_claimed"] for run in runs) == 6
    assert sum(run.counts["events"] for run in runs) == 6 * 150
    assert sum(run.counts["operations"] for run in runs) == 6 * 3
    assert not Event.objects.exists()
    assert AgentSession.objects.filter(status=SessionStatus.ARCHIVED).count() == 6
    for session in sessions:
        ranges = sorted(
            ArchiveSegment.objects.filter(session=session, kind="events").values_list("from_version", "to_version")
        )
        # Contiguous, no overlap: 1-40, 41-80, 81-120, 121-150.
        assert ranges == [(1, 40), (41, 80), (81, 120), (121, 150)]


def test_two_event_archival_runs_archive_each_event_once(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 50
    settings.CONTEXT_WINDOW_MESSAGES = 5
    sessions = [grow_session(world, steps=420, session_id=f"run-{n}", user_id=f"user-{n}") for n in range(4)]
    for session in sessions:
        age(session, days=60)

    runs = at_once(*[lambda: jobs.archive_events(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) for run in runs), runs
    assert sum(run.counts["events"] for run in runs) == 4 * 400
    assert Event.objects.count() == 4 * 20


def test_two_eviction_runs_delete_each_memory_once(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 7
    settings.MEMORY_EVICTION_GRACE_DAYS = 0
    create_memories(
        tenant=world.acme.tenant,
        items=[NewMemory(scope=Scope.USER, content=f"fact {n}", user_id="u-1") for n in range(60)],
    )
    long_ago = timezone.now() - timedelta(days=365)
    Memory.objects.update(created_at=long_ago, updated_at=long_ago)

    runs = at_once(*[lambda: jobs.evict_memories(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) for run in runs), runs
    assert sum(run.counts["evicted"] for run in runs) == 60
    assert sum(run.counts["marked"] for run in runs) == 60
    assert not Memory.objects.alive().exists()


def test_two_checkpoint_retention_runs_remove_each_checkpoint_once(world: World, settings) -> None:
    from checkpoints_app.models import Checkpoint
    from checkpoints_app.selectors import verify_checkpoints
    from checkpoints_app.services import save_checkpoint
    from tests.factories import SessionFactory

    settings.LIFECYCLE_BATCH_SIZE = 4
    sessions = [SessionFactory.create(tenant=world.acme.tenant) for _ in range(4)]
    for session in sessions:
        for step in range(25):
            save_checkpoint(session=session, node_id="node", state={"step": step, "notes": ["x"] * (step % 4)})
    Checkpoint.objects.update(created_at=timezone.now() - timedelta(days=45))

    runs = at_once(*[lambda: jobs.apply_checkpoint_retention(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["checkpoints_deleted"] for run in runs) == 4 * 20
    for session in sessions:
        assert sorted(Checkpoint.objects.filter(session=session).values_list("sequence", flat=True)) == [
            21,
            22,
            23,
            24,
            25,
        ]
        assert verify_checkpoints(session=session).valid


def test_two_purge_runs_remove_each_deleted_memory_once(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 7
    create_memories(
        tenant=world.acme.tenant,
        items=[NewMemory(scope=Scope.USER, content=f"fact {n}", user_id="u-1") for n in range(50)],
    )
    Memory.objects.update(deleted_at=timezone.now() - timedelta(days=3))

    runs = at_once(*[lambda: jobs.purge_memories(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["memories"] for run in runs) == 50
    assert not Memory.objects.exists()


def test_two_outbox_drains_apply_each_entry_once(world: World) -> None:
    from memories_app.models import ProfileFactOutbox, Source

    ProfileFactOutbox.objects.bulk_create(
        ProfileFactOutbox(
            tenant=world.acme.tenant,
            user_id="u-1",
            fact_key=f"fact-{n}",
            operation="upsert",
            content=f"likes number {n}",
            profile_version=1,
        )
        for n in range(30)
    )

    runs = at_once(*[lambda: jobs.drain_outbox(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["applied"] for run in runs) == 30
    assert Memory.objects.filter(source=Source.PROFILE).count() == 30
    assert not ProfileFactOutbox.objects.filter(processed_at__isnull=True).exists()
