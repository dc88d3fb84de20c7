"""Two archival workers on one session, or an erasure in the middle of a step: what is recorded stays exactly
as recorded, and no archive object is left that nothing records.

Each race is set up with a lock, not with timing: the first worker is held between choosing its range and
reading the rows (the events table is locked by the test, which meanwhile has the second worker, or the
erasure, do its work in the same transaction), then let go.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction

from conftest import World
from lifecycle_app import archival
from lifecycle_app.models import ArchiveSegment
from lifecycle_app.selectors import read_archive
from sessions_app.models import AgentSession, Event
from tests.concurrency import wait_until_blocked

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db(transaction=True)


def _held_worker(session_pk: Any) -> tuple[threading.Thread, list[Any]]:
    """The first worker, started while the test holds the events table: it blocks reading the rows."""
    outcome: list[Any] = []

    def work() -> None:
        try:
            outcome.append(archival.archive_events_step(session_pk, upto=100, keep_snapshot=100, limit=500, wait=True))
        except Exception as exc:  # reported by the test
            outcome.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    return worker, outcome


@contextmanager
def _first_worker_held(session_pk: Any) -> Iterator[list[Any]]:
    """Start the first worker while holding the events table, so that it waits between choosing its range and
    reading the rows; what the block does meanwhile commits with the block; the worker then goes on. Yields
    where the worker's outcome lands."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Event._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        worker, outcome = _held_worker(session_pk)
        wait_until_blocked(Event._meta.db_table, what="the first worker")
        yield outcome
    worker.join(30)


def _files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*.json.gz"))


def test_a_worker_that_lost_the_race_for_a_range_leaves_the_winners_archive_intact(
    world: World, archive_dir: Path
) -> None:
    session = grow_session(world, steps=200)
    age(session, days=40)

    with _first_worker_held(session.pk) as outcome:
        won = archival.archive_events_step(session.pk, upto=100, keep_snapshot=100, limit=500, wait=True)

    assert won is not None and won.events == 100
    assert not isinstance(outcome[0], Exception), outcome
    segments = list(ArchiveSegment.objects.filter(session=session))
    assert [(s.from_version, s.to_version, s.counts["events"]) for s in segments] == [(1, 100, 100)]
    assert len(read_archive(segments[0]).events) == 100  # its object still matches its checksum
    assert _files(archive_dir) == [segments[0].storage_key]  # the loser's own object is gone


def test_a_session_erased_during_an_archival_step_leaves_no_archive_object_behind(
    world: World, archive_dir: Path
) -> None:
    session = grow_session(world, steps=200)
    age(session, days=40)

    with _first_worker_held(session.pk) as outcome:
        AgentSession.objects.filter(pk=session.pk).delete()  # as an erasure's purge does, with what hangs off it

    assert outcome == [None]
    assert not ArchiveSegment.objects.exists()
    assert _files(archive_dir) == []
