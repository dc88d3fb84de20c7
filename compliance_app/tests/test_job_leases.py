"""The purge and export jobs keep their lease while they make progress, however long they run; a run that was
taken over all the same (it blocked in one batch for longer than the lease) stops at its next progress report
and records nothing, leaving the job to the run that took it over: no job is purged, verified or built twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from compliance_app import export as export_module
from compliance_app import services, tasks, verification
from compliance_app.export import build_archive
from compliance_app.models import AuditEntry, ErasureRequest, ExportRequest
from conftest import World
from sessions_app.models import AgentSession
from sessions_app.services import append_messages, create_session

pytestmark = pytest.mark.django_db

ALICE = "alice-lease-1"
SHORT_LEASE = timedelta(seconds=1)


def _erased(world: World) -> ErasureRequest:
    session, _ = create_session(tenant=world.acme.tenant, user_id=ALICE, session_id="alice-lease-s")
    append_messages(session=session, messages=[{"role": "user", "content": f"message {n}"} for n in range(6)])
    filed = services.file_erasure(tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="cora")
    return services.approve_erasure(request_id=filed.pk, decided_by="staff:ann")


def _filed_export(world: World) -> str:
    session, _ = create_session(tenant=world.acme.tenant, user_id=ALICE, session_id="alice-lease-s")
    append_messages(session=session, messages=[{"role": "user", "content": "hello"}])
    filed = world.acme.client.post("/api/v1/export-requests", {"user_id": ALICE}, format="json")
    assert filed.status_code == 201, filed.content
    return str(filed.json()["id"])


def _lapse(model: type[ErasureRequest] | type[ExportRequest], pk: Any) -> None:
    model.objects.filter(pk=pk).update(claimed_until=timezone.now() - timedelta(seconds=1))


def _actions(**job: Any) -> list[str]:
    return list(AuditEntry.objects.filter(**job).values_list("action", flat=True))


@override_settings(ERASURE_PURGE_BATCH=1)
def test_a_purge_that_reports_progress_keeps_its_claim_past_its_first_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _erased(world)
    monkeypatch.setattr(services, "PURGE_LEASE", SHORT_LEASE)
    monkeypatch.setattr(tasks, "PROGRESS_EVERY_SECONDS", 0)
    record = services.record_purge_progress
    started, second_claims = time.monotonic(), list[ErasureRequest | None]()

    def slow_batches(**progress: Any) -> None:
        time.sleep(0.25)
        record(**progress)
        if time.monotonic() - started > 1.5 * SHORT_LEASE.total_seconds() and not second_claims:
            # What the beat's re-queued message would do, well past the lease the run was first given.
            second_claims.append(services.claim_purge(request_id=request.pk, worker="worker:second"))

    monkeypatch.setattr(services, "record_purge_progress", slow_batches)
    tasks.purge_erasure(str(request.pk))

    assert second_claims == [None]
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    actions = _actions(erasure=request)
    assert (actions.count("purge_started"), actions.count("purged"), actions.count("verified")) == (1, 1, 1)


def test_a_verification_scan_longer_than_the_lease_keeps_the_claim_and_is_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _erased(world)
    monkeypatch.setattr(services, "PURGE_LEASE", SHORT_LEASE)
    monkeypatch.setattr(tasks, "PROGRESS_EVERY_SECONDS", 0)
    like, second_claims = verification._like, list[ErasureRequest | None]()
    started: list[float] = []

    def slow_text_pass(text: str) -> str:
        # A big database: each table of the text pass takes a while, the whole pass longer than the lease.
        started[:] = started or [time.monotonic()]
        if not second_claims:
            time.sleep(0.1)
            if time.monotonic() - started[0] > 1.5 * SHORT_LEASE.total_seconds():
                # What the beat's re-queued message would do, well past the lease record_purge gave the run.
                second_claims.append(services.claim_purge(request_id=request.pk, worker="worker:second"))
        return like(text)

    monkeypatch.setattr(verification, "_like", slow_text_pass)
    tasks.purge_erasure(str(request.pk))

    assert second_claims == [None]
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert _actions(erasure=request).count("verified") == 1


@override_settings(ERASURE_PURGE_BATCH=1)
def test_a_purge_taken_over_after_its_lease_lapsed_stops_at_its_next_progress_and_records_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = _erased(world)
    monkeypatch.setattr(tasks, "PROGRESS_EVERY_SECONDS", 0)
    record = services.record_purge_progress
    takeover: list[ErasureRequest | None] = []

    def blocked_past_its_lease(**progress: Any) -> None:
        if not takeover:  # the first batch was blocked (a row lock) until the lease lapsed and another run claimed
            _lapse(ErasureRequest, request.pk)
            takeover.append(services.claim_purge(request_id=request.pk, worker="worker:second"))
        record(**progress)

    monkeypatch.setattr(services, "record_purge_progress", blocked_past_its_lease)
    tasks.purge_erasure(str(request.pk))  # ends quietly: no exception for Celery to retry

    first = ErasureRequest.objects.get(pk=request.pk)
    assert first.status == "purging" and first.purged_at is None and first.user_id == ALICE
    assert "purged" not in _actions(erasure=request) and "verified" not in _actions(erasure=request)
    monkeypatch.undo()

    # The run that took over does the work and records it, once.
    second = takeover[0]
    assert second is not None and second.claim_token is not None
    removed = services.purge(request=second)
    services.record_purge(request_id=second.pk, removed=removed, worker="worker:second", claim=second.claim_token)
    second.refresh_from_db()
    services.record_verification(request_id=second.pk, findings={}, worker="worker:second", claim=second.claim_token)

    done = ErasureRequest.objects.get(pk=request.pk)
    assert done.status == "verified" and done.purged["events"] == 6
    actions = _actions(erasure=request)
    assert (actions.count("purged"), actions.count("verified")) == (1, 1)


def test_an_export_build_that_reports_progress_keeps_its_claim_past_its_first_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_id = _filed_export(world)
    monkeypatch.setattr(services, "EXPORT_LEASE", SHORT_LEASE)
    record = services.record_export_progress
    started, second_claims = time.monotonic(), list[ExportRequest | None]()

    def slow_layers(**progress: Any) -> None:
        time.sleep(0.25)
        record(**progress)
        if time.monotonic() - started > 1.5 * SHORT_LEASE.total_seconds() and not second_claims:
            second_claims.append(services.claim_export(export_id=export_id, worker="worker:second"))

    monkeypatch.setattr(services, "record_export_progress", slow_layers)
    tasks.build_export(export_id)

    assert second_claims == [None]
    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "ready" and export.started_at is not None
    actions = _actions(export_id=export_id)
    assert (actions.count("export_started"), actions.count("export_generated")) == (1, 1)


def test_an_export_build_taken_over_after_its_lease_lapsed_stops_at_its_next_layer_and_stores_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_id = _filed_export(world)
    record = services.record_export_progress
    takeover: list[ExportRequest | None] = []

    def blocked_past_its_lease(**progress: Any) -> None:
        if not takeover:
            _lapse(ExportRequest, export_id)
            takeover.append(services.claim_export(export_id=export_id, worker="worker:second"))
        record(**progress)

    monkeypatch.setattr(services, "record_export_progress", blocked_past_its_lease)
    tasks.build_export(export_id)  # ends quietly: no exception for Celery to retry

    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "running" and export.archive is None
    # The first build left the second's claim as it was: its start, its attempt, its lease.
    second = takeover[0]
    assert second is not None and second.claim_token is not None
    assert (export.started_at, export.claim_token) == (second.started_at, second.claim_token)
    assert export.claimed_until is not None and export.claimed_until > timezone.now()
    assert _actions(export_id=export_id).count("export_started") == 2
    assert "export_generated" not in _actions(export_id=export_id)
    monkeypatch.undo()

    archive, manifest = build_archive(second, generated_at=timezone.now(), max_bytes=10**8, on_layer=lambda *_: None)
    finished = services.finish_export(
        export_id=export_id, archive=archive, manifest=manifest, worker="worker:second", claim=second.claim_token
    )
    assert finished is not None and finished.status == "ready"
    assert _actions(export_id=export_id).count("export_generated") == 1


def test_an_export_build_with_a_layer_longer_than_its_lease_keeps_its_claim(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    export_id = _filed_export(world)
    session = AgentSession.objects.get(session_id="alice-lease-s")
    append_messages(session=session, messages=[{"role": "user", "content": f"message {n}"} for n in range(6)])
    monkeypatch.setattr(services, "EXPORT_LEASE", SHORT_LEASE)
    monkeypatch.setattr(export_module, "ROWS_PER_REPORT", 1)
    events = export_module.Builder._events
    second_claims: list[ExportRequest | None] = []

    def slow_events(builder: export_module.Builder) -> Iterator[dict[str, Any]]:
        started = time.monotonic()
        for row in events(builder):
            time.sleep(0.3)  # one layer outlasts the lease: 7 rows
            if time.monotonic() - started > 1.5 * SHORT_LEASE.total_seconds() and not second_claims:
                second_claims.append(services.claim_export(export_id=export_id, worker="worker:second"))
            yield row

    monkeypatch.setattr(export_module.Builder, "_events", slow_events)
    tasks.build_export(export_id)

    assert second_claims == [None]
    export = ExportRequest.objects.get(pk=export_id)
    assert export.status == "ready" and export.progress["layers"]["events"] == 7
    assert _actions(export_id=export_id).count("export_started") == 1
