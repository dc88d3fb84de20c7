"""Exports of people whose history is partly in the archive: every event and journal record once, even when
archival moves them while the export reads; an archive object lost from storage fails the export with a clear
error instead of retrying it for ever; and an export that keeps failing is failed after its last attempt."""

from __future__ import annotations

import io
import json
import threading
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone

from compliance_app import services
from compliance_app.models import ExportRequest
from compliance_app.tasks import MAX_EXPORT_ATTEMPTS, build_export, sweep_exports
from conftest import World
from lifecycle_app.archival import archive_events_upto, claim_inactive_sessions, complete_archival
from lifecycle_app.models import ArchiveSegment
from lifecycle_app.selectors import read_archive
from lifecycle_app.storage import archive_storage
from sessions_app.models import AgentSession, Operation
from sessions_app.services import append_messages, create_session, record_operation
from tests.concurrency import wait_until_blocked

ALICE = "alice-7f3a9c"


@pytest.fixture(autouse=True)
def _archive_dir(settings: Any, tmp_path: Path) -> None:
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.ARCHIVE_STORAGE_BACKEND = ""
    settings.EVENT_SNAPSHOT_EVERY = 100


def _session(world: World, *, messages: int, operations: int = 0) -> AgentSession:
    session, _ = create_session(tenant=world.acme.tenant, user_id=ALICE, session_id="run-1")
    for start in range(0, messages, 100):
        batch = range(start, min(start + 100, messages))
        append_messages(session=session, messages=[{"role": "user", "content": f"message {n}"} for n in batch])
    for number in range(operations):
        record_operation(session=session, name="send_email", key=f"op-{number}", params={"n": number})
    session.refresh_from_db()
    return session


def _file(world: World) -> str:
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": ALICE}, format="json")
    assert filed.status_code == 201, filed.content
    return str(filed.json()["id"])


def _layer(export_id: str, layer: str) -> list[dict[str, Any]]:
    archive = ExportRequest.objects.get(pk=export_id).archive
    assert archive is not None
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as files:
        rows: list[dict[str, Any]] = json.loads(files.read(f"{layer}.json"))
        return rows


@pytest.mark.django_db
def test_an_export_built_while_event_archival_moves_events_holds_every_event_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = _session(world, messages=300)
    archive_events_upto(session.pk, upto=100, keep_snapshot=0, limit=100, wait=True)

    def read_while_archival_runs(segment: ArchiveSegment) -> Any:
        document = read_archive(segment)  # reading cold storage takes a while, and meanwhile …
        archive_events_upto(session.pk, upto=250, keep_snapshot=0, limit=100, wait=True)  # … archival runs
        return document

    monkeypatch.setattr("compliance_app.export.read_archive", read_while_archival_runs)
    export_id = _file(world)
    build_export(export_id)

    assert ExportRequest.objects.get(pk=export_id).status == "ready"
    assert ArchiveSegment.objects.filter(session=session).count() == 3  # 1-100 before, 101-200 and 201-250 during
    events = _layer(export_id, "events")
    assert [event["version"] for event in events] == list(range(1, 301))
    assert [event["archived"] for event in events] == [True] * 250 + [False] * 50


@pytest.mark.django_db(transaction=True)
def test_an_export_built_while_session_archival_moves_the_journal_holds_every_operation(world: World) -> None:
    session = _session(world, messages=120, operations=3)
    # Its events older than any idempotency lifetime (30 days at most): session archival never takes one a retried
    # append may still name by its key.
    AgentSession.objects.filter(pk=session.pk).update(last_activity_at=timezone.now() - timedelta(days=31))
    export_id = _file(world)
    ExportRequest.objects.filter(pk=export_id).update(status="pending", claimed_until=None)
    failures: list[BaseException] = []

    def build() -> None:
        try:
            build_export(export_id)
        except BaseException as exc:  # reported by the test
            failures.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=build)
    with transaction.atomic():
        # The export lists the session's archives, then waits to read the journal left in Postgres; meanwhile
        # session archival moves every event and the journal to the archive, and commits with this block.
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Operation._meta.db_table} IN ACCESS EXCLUSIVE MODE")
        worker.start()
        wait_until_blocked(Operation._meta.db_table, what="the export")
        cutoff = timezone.now() + timedelta(minutes=1)
        assert claim_inactive_sessions(world.acme.tenant.pk, cutoff=cutoff, limit=10) == [session.pk]
        assert complete_archival(session.pk, limit=500, wait=True) is not None
    worker.join(30)

    assert not failures, failures
    assert ExportRequest.objects.get(pk=export_id).status == "ready"
    assert not Operation.objects.filter(session=session).exists()
    operations = _layer(export_id, "operations")
    assert sorted((row["key"], row["archived"]) for row in operations) == [(f"op-{n}", True) for n in range(3)]
    assert [event["version"] for event in _layer(export_id, "events")] == list(range(1, 121))


@pytest.mark.django_db
def test_an_export_whose_archive_object_is_lost_fails_with_a_clear_error_and_is_not_retried(world: World) -> None:
    session = _session(world, messages=150)
    archive_events_upto(session.pk, upto=100, keep_snapshot=0, limit=100, wait=True)
    archive_storage().delete(ArchiveSegment.objects.get(session=session).storage_key)
    export_id = _file(world)

    build_export(export_id)  # what the worker runs: no exception for Celery to retry

    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "failed"
    assert "missing from archive storage" in export.error
    ExportRequest.objects.filter(pk=export_id).update(filed_at=timezone.now() - timedelta(minutes=5))
    assert sweep_exports()["requeued"] == 0


@pytest.mark.django_db
def test_an_export_whose_builds_keep_dying_is_failed_after_its_last_attempt(world: World) -> None:
    _session(world, messages=10)
    export_id = _file(world)
    for _ in range(MAX_EXPORT_ATTEMPTS):
        # A worker claims the build and is killed (out of memory, say); the sweep hands it on once its lease ends.
        assert services.claim_export(export_id=export_id, worker="worker:killed") is not None
        ExportRequest.objects.filter(pk=export_id).update(claimed_until=timezone.now() - timedelta(seconds=1))

    build_export(export_id)

    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "failed" and f"{MAX_EXPORT_ATTEMPTS} attempts" in export.error
    assert sweep_exports()["requeued"] == 0
