"""Session archival on real data: an idle session is archived, its history leaves Postgres for the archive
(the session row and the snapshot at its head stay), the run is recorded, and a restore brings back identical
rows."""

from __future__ import annotations

import pytest

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment, Job, JobRun, RunStatus, SessionArchival
from lifecycle_app.selectors import read_archive
from lifecycle_app.services import restore_archive
from memory_admin.errors import NotFound
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation, SessionStatus
from sessions_app.selectors import rebuild_state

from .conftest import age, grow_session, rows_of

pytestmark = pytest.mark.django_db


def test_an_idle_session_is_archived_down_to_its_row_and_head_snapshot(world: World) -> None:
    session = grow_session(world, steps=1234)
    head_state = rebuild_state(session, version=session.head_version).state
    age(session, days=91)

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    session.refresh_from_db()
    assert session.status == SessionStatus.ARCHIVED
    assert Event.objects.filter(session=session).count() == 0
    assert Operation.objects.filter(session=session).count() == 0
    assert list(EventSnapshot.objects.filter(session=session).values_list("version", flat=True)) == [1234]
    assert rebuild_state(session, version=1234).state == head_state
    assert SessionArchival.objects.get(session=session).state == SessionArchival.State.DONE
    assert run.status == RunStatus.SUCCEEDED and run.job == Job.SESSION_ARCHIVAL and run.finished_at is not None
    assert run.counts["sessions_archived"] == 1
    assert run.counts["events"] == 1234 and run.counts["operations"] == 3
    assert run.counts["snapshots"] == 12  # 100 … 1200; the one at the head stays
    assert run.counts["archive_bytes"] == sum(ArchiveSegment.objects.values_list("stored_bytes", flat=True))


def test_a_recently_active_session_is_left_alone(world: World) -> None:
    session = grow_session(world, steps=120)
    age(session, days=89)

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    session.refresh_from_db()
    assert session.status == SessionStatus.ACTIVE
    assert Event.objects.filter(session=session).count() == 120
    assert run.counts["sessions_claimed"] == 0


@pytest.mark.parametrize("use", ["checkpoint", "langgraph step", "journal", "status and metadata update"])
def test_a_session_in_use_without_new_events_is_not_archived_as_idle(world: World, use: str) -> None:
    # Only event appends move last_activity_at: an agent that saved checkpoints, LangGraph steps or journal
    # records for 90 days, or resumed its session a minute ago, lost it (and its pending operations) to archival.
    session = grow_session(world, steps=120)
    age(session, days=91)
    client, base = world.acme.client, f"/api/v1/sessions/{session.session_id}"
    if use == "status and metadata update":
        answer = client.patch(base, {"status": "paused", "metadata": {"resumed": True}}, format="json")
    elif use == "checkpoint":
        answer = client.post(f"{base}/checkpoints", {"node_id": "n", "state": {"step": 1}}, format="json")
    elif use == "langgraph step":
        step = {"ops": [{"op": "checkpoint", "checkpoint_id": "1f0-1", "checkpoint": {"v": 4}, "metadata": {}}]}
        answer = client.post(f"/api/v1/langgraph/threads/{session.session_id}/saves", step, format="json")
    else:
        answer = client.post(f"{base}/operations", {"name": "charge", "key": "k-1"}, format="json")
    assert answer.status_code in (200, 201), answer.content

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert preview.counts["sessions"] == 0 and run.counts["sessions_archived"] == 0
    session.refresh_from_db()
    assert session.status == (SessionStatus.PAUSED if use == "status and metadata update" else SessionStatus.ACTIVE)


def test_restoring_every_archive_gives_back_identical_rows(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 300  # several event segments
    session = grow_session(world, steps=1000)
    age(session, days=120)
    before = rows_of(session)
    jobs.archive_sessions(dry_run=False, triggered_by="manual")
    assert ArchiveSegment.objects.filter(session=session, kind="events").count() == 4

    for segment in ArchiveSegment.objects.filter(session=session).order_by("-to_version", "kind"):
        restore_archive(segment=segment)

    assert rows_of(session) == before
    assert not ArchiveSegment.objects.filter(session=session).exists()
    with pytest.raises(NotFound):  # a second restore of the same segment (was a raw DoesNotExist)
        restore_archive(segment=segment)


def test_archived_payloads_are_the_stored_bytes_not_decoded_text(world: World) -> None:
    session = grow_session(world, steps=40)
    stored = {e.version: bytes(e.payload) for e in Event.objects.filter(session=session)}
    age(session, days=100)

    jobs.archive_sessions(dry_run=False, triggered_by="manual")

    segment = ArchiveSegment.objects.get(session=session, kind="events")
    document = read_archive(segment)
    assert {row.version: bytes(row.payload) for row in document.event_rows(session.pk)} == stored
    assert "user_id" not in document.__dict__ and session.user_id not in str(document.__dict__)


def test_a_dry_run_reports_the_same_numbers_and_changes_nothing(world: World) -> None:
    session = grow_session(world, steps=250)
    age(session, days=100)
    before = rows_of(session)

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")

    assert rows_of(session) == before
    assert AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE
    assert preview.dry_run and preview.counts == {"sessions": 1, "events": 250, "operations": 3, "resumed": 0}
    assert JobRun.objects.filter(dry_run=True).count() == 1


def test_an_archival_interrupted_midway_is_finished_by_the_next_run(world: World, settings) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from lifecycle_app import archival

    settings.LIFECYCLE_BATCH_SIZE = 100
    session = grow_session(world, steps=350)
    age(session, days=100)
    before = rows_of(session)
    # A worker claimed the session and archived one segment, then died.
    cutoff = timezone.now() - timedelta(days=90)
    assert archival.claim_inactive_sessions(world.acme.tenant.pk, cutoff=cutoff, limit=10) == [session.pk]
    first = archival.archive_events_step(session.pk, upto=350, keep_snapshot=350, limit=100)
    assert first is not None and first.events == 100

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.counts["sessions_claimed"] == 0 and run.counts["sessions_archived"] == 1
    assert run.counts["events"] == 250
    assert SessionArchival.objects.get(session=session).state == SessionArchival.State.DONE
    assert not Event.objects.filter(session=session).exists()
    ranges = sorted(
        ArchiveSegment.objects.filter(session=session, kind="events").values_list("from_version", "to_version")
    )
    assert ranges == [(1, 100), (101, 200), (201, 300), (301, 350)]
    assert jobs.archive_sessions(dry_run=False, triggered_by="manual").counts["events"] == 0  # nothing twice
    for segment in ArchiveSegment.objects.filter(session=session).order_by("-to_version", "kind"):
        restore_archive(segment=segment)
    restored = rows_of(session)
    assert {**restored, "snapshots": [row for row in restored["snapshots"] if row[1] != 350]} == before
