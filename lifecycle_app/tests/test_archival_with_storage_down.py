"""Cold storage that cannot be written: each session's archival fails with its error, nothing leaves Postgres, and
the run is recorded as failed, not succeeded (the dashboard and `memory_lifecycle_job_runs` read the run's
status); the next run, with storage back, does the work."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import RunStatus, SessionArchival
from sessions_app.models import Event

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def storage_down(settings, tmp_path: Path) -> Path:
    """ARCHIVE_DIR is a regular file: nothing can be written under it."""
    working: Path = settings.ARCHIVE_DIR
    settings.ARCHIVE_DIR = tmp_path / "not-a-dir"
    settings.ARCHIVE_DIR.write_text("a file, not a directory")
    return working


def test_session_archival_that_cannot_write_to_storage_is_a_failed_run_and_the_next_run_finishes_it(
    world: World, settings, storage_down: Path
) -> None:
    sessions = [grow_session(world, steps=120, session_id=f"run-{number}") for number in range(2)]
    for session in sessions:
        age(session, days=91)

    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert run.counts["sessions_claimed"] == 2 and run.counts["sessions_archived"] == 0
    assert {error.get("session") for error in run.errors} >= {str(session.pk) for session in sessions}
    assert Event.objects.filter(session__in=sessions).count() == 240
    assert set(SessionArchival.objects.values_list("state", flat=True)) == {SessionArchival.State.PENDING}

    settings.ARCHIVE_DIR = storage_down
    again = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert again.status == RunStatus.SUCCEEDED and again.errors == []
    assert again.counts["sessions_archived"] == 2 and again.counts["events"] == 240
    assert not Event.objects.filter(session__in=sessions).exists()


def test_event_archival_that_cannot_write_to_storage_is_a_failed_run_and_the_next_run_finishes_it(
    world: World, settings, storage_down: Path
) -> None:
    session = grow_session(world, steps=600)
    age(session, days=40)

    run = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert run.counts["events"] == 0 and run.errors[0]["session"] == str(session.pk)
    assert Event.objects.filter(session=session).count() == 600

    settings.ARCHIVE_DIR = storage_down
    again = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert again.status == RunStatus.SUCCEEDED and again.counts["events"] > 0
