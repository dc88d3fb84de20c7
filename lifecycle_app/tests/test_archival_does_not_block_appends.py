"""Event archival never makes an agent wait for cold storage: while an archive object is being written (held
open here by a storage that blocks), appends to the same session go through at once."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import FileSystemStorage
from django.db import connection

from conftest import World
from lifecycle_app import archival
from lifecycle_app.models import ArchiveSegment
from sessions_app.models import Event
from sessions_app.services import NewEvent, append_events

from .conftest import age, grow_session

pytestmark = pytest.mark.django_db(transaction=True)


class SlowStorage(FileSystemStorage):
    """Blocks every save until the test lets it go."""

    writing = threading.Event()
    release = threading.Event()

    def save(self, name: str | None, content: Any, max_length: int | None = None) -> str:
        SlowStorage.writing.set()
        assert SlowStorage.release.wait(30)
        return super().save(name, content, max_length=max_length)


def test_an_append_goes_through_while_the_archive_object_is_written(world: World, settings, tmp_path: Path) -> None:
    settings.ARCHIVE_STORAGE_BACKEND = f"{__name__}.SlowStorage"
    settings.ARCHIVE_STORAGE_OPTIONS = json.dumps({"location": str(tmp_path)})
    SlowStorage.writing.clear()
    SlowStorage.release.clear()
    session = grow_session(world, steps=200)
    age(session, days=40)
    outcome: list[Any] = []

    def archive() -> None:
        try:
            outcome.append(archival.archive_events_step(session.pk, upto=100, keep_snapshot=100, limit=500))
        finally:
            connection.close()

    worker = threading.Thread(target=archive)
    worker.start()
    try:
        assert SlowStorage.writing.wait(30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a wait for the session row would fail here
        append_events(session=session, events=[NewEvent("NODE_TRANSITION", {"node": "while-archiving"})])
    finally:
        SlowStorage.release.set()
        worker.join(30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    assert outcome and outcome[0].events == 100
    assert Event.objects.filter(session=session).order_by("version").values_list("version", flat=True)[0] == 101
    assert Event.objects.filter(session=session).count() == 101
    assert ArchiveSegment.objects.get(session=session).to_version == 100
