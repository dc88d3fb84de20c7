"""An archival step whose worker is killed between writing its archive object and recording it leaves an object
no segment names. The next run removes it once it is older than any step lasts, a step that waited that long
writes its object again, and erasing the person removes every object of their sessions, recorded or not.

The killed step is reproduced by writing exactly what a step writes before it records anything: the object of
the next range under an attempt's own key.
"""

from __future__ import annotations

import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from compliance_app import services as compliance
from compliance_app.tasks import purge_erasure
from conftest import World
from lifecycle_app import archival, jobs
from lifecycle_app.archive import pack
from lifecycle_app.models import ArchiveKind, ArchiveSegment
from lifecycle_app.selectors import read_archive
from lifecycle_app.storage import archive_storage
from sessions_app.models import AgentSession
from tests.concurrency import wait_until_blocked

from .conftest import age, grow_session


def _killed_step(session: AgentSession, *, attempt: str, hours_ago: float = 0) -> str:
    """What a step killed right after writing its object leaves: the object, and nothing that records it."""
    first = archival.archived_through(session.pk) + 1
    key = archival.segment_key(session, ArchiveKind.EVENTS, first, first + 99, attempt=attempt)
    data, _ = pack(archival._events_document(session, first, first + 99, keep_snapshot=0))
    archive_storage().put(key, data)
    _written(key, hours_ago=hours_ago)
    return key


def _written(key: str, *, hours_ago: float) -> None:
    path = Path(archive_storage().root) / key  # type: ignore[attr-defined]
    when = (timezone.now() - timedelta(hours=hours_ago)).timestamp()
    os.utime(path, (when, when))


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def _recorded() -> set[str]:
    return set(ArchiveSegment.objects.values_list("storage_key", flat=True))


@pytest.mark.django_db
def test_the_next_run_removes_an_object_a_killed_step_left_once_it_is_older_than_any_step_lasts(
    world: World, archive_dir: Path, settings: Any
) -> None:
    settings.CONTEXT_WINDOW_MESSAGES = 5
    session = grow_session(world, steps=250)
    age(session, days=40)
    killed_yesterday = _killed_step(session, attempt="0badc0de", hours_ago=25)
    killed_just_now = _killed_step(session, attempt="5ca1ab1e")  # or a step still running: left alone

    run = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert run.counts["events"] == 200
    assert killed_yesterday not in _files(archive_dir)
    assert _files(archive_dir) == _recorded() | {killed_just_now}
    for segment in ArchiveSegment.objects.all():
        assert read_archive(segment).events  # every recorded object is still there, intact


@pytest.mark.django_db
def test_erasing_the_person_removes_every_object_of_their_sessions_recorded_or_not(
    world: World, archive_dir: Path, django_capture_on_commit_callbacks: Any
) -> None:
    session = grow_session(world, steps=250)
    age(session, days=40)
    archival.archive_events_upto(session.pk, upto=100, keep_snapshot=100, limit=100, wait=True)
    orphan = _killed_step(session, attempt="0badc0de")
    assert _files(archive_dir) == _recorded() | {orphan}

    request = compliance.file_erasure(
        tenant=world.acme.tenant, user_id="user-1", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    compliance.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    with django_capture_on_commit_callbacks(execute=True):
        purge_erasure(str(request.pk))

    assert not ArchiveSegment.objects.exists()
    assert _files(archive_dir) == set()


@pytest.mark.django_db(transaction=True)
def test_a_step_that_waited_so_long_its_object_was_removed_as_an_orphan_writes_it_again(
    world: World, archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(archival, "ORPHAN_GRACE", timedelta(seconds=1))  # a day, in a test's time
    session = grow_session(world, steps=200)
    age(session, days=40)
    outcome: list[Any] = []

    def step() -> None:
        try:
            outcome.append(archival.archive_events_step(session.pk, upto=100, keep_snapshot=100, limit=500, wait=True))
        except Exception as exc:  # reported by the test
            outcome.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=step)
    with transaction.atomic():
        # Another transaction holds the session row: the step writes its object, then waits for the row.
        AgentSession.objects.select_for_update().get(pk=session.pk)
        worker.start()
        wait_until_blocked(what="the step")
        (written,) = _files(archive_dir)
        time.sleep(1.2)  # it waits longer than the grace
        assert archival.remove_orphans(session.pk) == 1
        assert _files(archive_dir) == set()
    worker.join(30)

    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    assert outcome[0].events == 100
    (segment,) = ArchiveSegment.objects.filter(session=session)
    assert segment.storage_key == written
    assert len(read_archive(segment).events) == 100
