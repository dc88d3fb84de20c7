"""A session its client archived (completed, then archived, through the API) has its history archived too, once idle
as long as the policy says and after memories_app's distillation had its chance to read it: its events, snapshots
and journal leave Postgres, reads answer as for any archived session, a dry run counts it, and a restore gives
every row back."""

from __future__ import annotations

import pytest

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import ArchiveSegment, RunStatus, SessionArchival
from lifecycle_app.selectors import state_from_archive
from lifecycle_app.services import restore_archive
from memories_app import background
from memories_app.models import JobStatus
from memories_app.services import request_distillation
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation, SessionStatus
from sessions_app.selectors import rebuild_state

from .conftest import age, grow_session, rows_of

pytestmark = pytest.mark.django_db


def archived_by_its_client(world: World, *, steps: int, days: int) -> AgentSession:
    session = grow_session(world, steps=steps)
    for status in ("completed", "archived"):
        answer = world.acme.client.patch(f"/api/v1/sessions/{session.session_id}", {"status": status}, format="json")
        assert answer.status_code == 200, answer.content
    age(session, days=days)
    session.refresh_from_db()
    return session


def test_a_session_its_client_archived_has_its_history_archived_once_idle(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 300  # several event segments
    session = archived_by_its_client(world, steps=1000, days=91)
    states = {version: rebuild_state(session, version=version).state for version in (250, 1000)}
    before = rows_of(session)

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert preview.counts == {"sessions": 1, "events": 1000, "operations": 3, "resumed": 0}
    assert run.status == RunStatus.SUCCEEDED
    assert run.counts["sessions_claimed"] == 1 and run.counts["sessions_archived"] == 1
    assert run.counts["events"] == 1000 and run.counts["operations"] == 3
    archived = AgentSession.objects.get(pk=session.pk)
    # The client's archival stands as it was: only the history moved.
    assert (archived.status, archived.version) == (SessionStatus.ARCHIVED, session.version)
    assert not Event.objects.filter(session=session).exists()
    assert not Operation.objects.filter(session=session).exists()
    assert list(EventSnapshot.objects.filter(session=session).values_list("version", flat=True)) == [1000]
    assert SessionArchival.objects.get(session=session).state == SessionArchival.State.DONE
    assert rebuild_state(archived, version=1000).state == states[1000]
    assert state_from_archive(archived, version=250).state == states[250]
    events = world.acme.client.get(f"/api/v1/sessions/{session.session_id}/events")
    assert events.status_code == 410 and events.json()["error"]["code"] == "archived"
    assert jobs.archive_sessions(dry_run=False, triggered_by="manual").counts["sessions_claimed"] == 0

    for segment in ArchiveSegment.objects.filter(session=session).order_by("-to_version", "kind"):
        restore_archive(segment=segment)

    assert rows_of(session) == before
    assert jobs.archive_sessions(dry_run=False, triggered_by="manual").counts["sessions_claimed"] == 0


def test_a_session_its_client_archived_is_distilled_from_its_history_before_that_moves(world: World, settings) -> None:
    settings.SESSION_ARCHIVE_AFTER_DAYS = 1
    session = archived_by_its_client(world, steps=120, days=3)
    assert [found.pk for found in background.sessions_to_distill()] == [session.pk]

    # Idle longer than the policy's day, but within the distillation sweep's window: the history stays.
    assert jobs.archive_sessions(dry_run=True, triggered_by="manual").counts["sessions"] == 0
    assert jobs.archive_sessions(dry_run=False, triggered_by="manual").counts["sessions_claimed"] == 0
    job = request_distillation(session=session)
    age(session, days=10)
    # Past the window, with its distillation still to run: the history stays.
    assert jobs.archive_sessions(dry_run=False, triggered_by="manual").counts["sessions_claimed"] == 0

    distilled = background.run_promotion(job.pk)

    assert distilled is not None and distilled.status == JobStatus.DONE and distilled.request["items"]
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")
    assert run.counts["sessions_archived"] == 1 and run.counts["events"] == 120
    assert not Event.objects.filter(session=session).exists()
