"""The forget-me workflow's rules: four eyes, rejection, repeats, crashes, unknown people, the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, transaction
from django.utils import timezone

from compliance_app import scope, services
from compliance_app.models import AuditEntry, ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World
from memories_app.models import HiddenOwner, Memory
from memory_admin.errors import Conflict, NotFound
from sessions_app.services import append_messages, create_session

pytestmark = pytest.mark.django_db


def _file(world: World, user_id: str = "alice-123", filed_by: str = "staff:cora") -> ErasureRequest:
    return services.file_erasure(
        tenant=world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by=filed_by
    )


def test_the_person_who_filed_cannot_approve_with_four_eyes_on(world: World) -> None:
    request = _file(world)
    with pytest.raises(Conflict, match="Four eyes"):
        services.approve_erasure(request_id=request.pk, decided_by="staff:cora")
    assert ErasureRequest.objects.get(pk=request.pk).status == "pending"


def test_a_rejected_request_erases_nothing_and_cannot_be_approved_later(world: World) -> None:
    create_session(tenant=world.acme.tenant, user_id="alice-123", session_id="s")
    request = _file(world)

    services.reject_erasure(request_id=request.pk, decided_by="staff:ann", reason="identity not confirmed")

    assert world.acme.client.get("/api/v1/sessions/s").status_code == 200
    with pytest.raises(Conflict):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")


def test_approving_twice_and_purging_twice_are_harmless(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice-123", session_id="s")
    append_messages(session=session, messages=[{"role": "user", "content": "hello"}])
    request = _file(world)

    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    purge_erasure(str(request.pk))

    request.refresh_from_db()
    assert request.status == "verified"
    assert request.purged["events"] == 1
    assert list(AuditEntry.objects.filter(erasure=request).values_list("action", flat=True)).count("approved") == 1


def test_a_purge_whose_worker_died_is_taken_over_after_its_lease_and_finishes(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice-123", session_id="s")
    append_messages(session=session, messages=[{"role": "user", "content": "hello"}])
    request = _file(world)
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    crashed = services.claim_purge(request_id=request.pk, worker="worker:dead")
    assert crashed is not None

    purge_erasure(str(request.pk))  # the lease is still held: nothing happens
    assert ErasureRequest.objects.get(pk=request.pk).status == "purging"
    ErasureRequest.objects.filter(pk=request.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    purge_erasure(str(request.pk))

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"


def test_an_unknown_person_previews_zero_everywhere_and_erases_cleanly(world: World) -> None:
    request = _file(world, user_id="nobody-we-know")
    from compliance_app.selectors import current_preview

    assert set(current_preview(request).values()) == {0}
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"


def test_the_audit_log_refuses_updates_and_deletes(world: World) -> None:
    _file(world)
    entry = AuditEntry.objects.get()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEntry.objects.filter(pk=entry.pk).delete()


def test_an_agent_key_files_and_polls_for_its_own_tenant_only(world: World) -> None:
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": "alice-123", "legal_basis": "gdpr_art_17"}, format="json"
    )
    assert filed.status_code == 201
    request_id = filed.json()["id"]

    assert world.acme.client.get(f"/api/v1/erasure-requests/{request_id}").json()["status"] == "pending"
    assert world.outsider.client.get(f"/api/v1/erasure-requests/{request_id}").status_code == 404
    assert world.outsider.client.get("/api/v1/erasure-requests").json()["results"] == []
    assert world.acme.client.get(f"/api/v1/erasure-requests/{request_id}/receipt").status_code == 409


@pytest.mark.parametrize(
    "body",
    [{"user_id": "", "legal_basis": "gdpr_art_17"}, {"user_id": "a", "legal_basis": "because"}, {"user_id": "a"}],
)
def test_a_malformed_request_is_refused_and_nothing_is_filed(world: World, body: dict[str, str]) -> None:
    response = world.acme.client.post("/api/v1/erasure-requests", body, format="json")
    assert response.status_code == 400
    assert not ErasureRequest.objects.exists()


def test_erasure_removes_archived_events_and_their_archive_files(
    world: World, django_capture_on_commit_callbacks
) -> None:
    from lifecycle_app.archival import archive_events_upto
    from lifecycle_app.models import ArchiveSegment
    from lifecycle_app.storage import archive_storage

    session, _ = create_session(tenant=world.acme.tenant, user_id="alice-123", session_id="s")
    append_messages(session=session, messages=[{"role": "user", "content": f"m{i}"} for i in range(5)])
    with django_capture_on_commit_callbacks(execute=True):
        archive_events_upto(session.pk, upto=3, keep_snapshot=0, limit=100, wait=True)
    keys = list(ArchiveSegment.objects.filter(session=session).values_list("storage_key", flat=True))
    assert keys
    request = _file(world)

    from compliance_app.selectors import current_preview

    assert current_preview(request)["archived_sessions"] == len(keys)
    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    with django_capture_on_commit_callbacks(execute=True):
        purge_erasure(str(request.pk))

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert not ArchiveSegment.objects.exists()
    for key in keys:
        with pytest.raises(NotFound):
            archive_storage().get(key)


def test_approval_hides_every_memory_of_the_person_at_once_without_rewriting_them_and_the_purge_removes_them(
    world: World,
) -> None:
    client = world.acme.client
    for index in range(3):
        body = {"scope": "user", "user_id": "alice-123", "content": f"alice likes tea {index}"}
        assert client.post("/api/v1/memories", body, format="json").status_code == 201
    body = {"scope": "user", "user_id": "bob-456", "content": "bob likes tea"}
    assert client.post("/api/v1/memories", body, format="json").status_code == 201
    request = _file(world)

    services.approve_erasure(request_id=request.pk, decided_by="staff:ann")

    # One marker row, no rewritten memories: the rows wait for the purge, unseen.
    assert Memory.objects.filter(user_id="alice-123", deleted_at__isnull=True).count() == 3
    assert HiddenOwner.objects.filter(tenant=world.acme.tenant, user_id="alice-123").count() == 1
    listed = client.get("/api/v1/memories").json()["results"]
    assert [memory["user_id"] for memory in listed] == ["bob-456"]
    found = client.post("/api/v1/memories/search", {"query": "likes tea", "user_id": "alice-123"}, format="json")
    assert found.status_code == 200 and found.json()["results"] == []
    assert client.post("/api/v1/memories/search", {"query": "likes tea", "user_id": "bob-456"}, format="json").json()[
        "results"
    ]

    purge_erasure(str(request.pk))

    request.refresh_from_db()
    assert request.status == "verified"
    assert request.purged["memories"] == 3
    # The record of what approval erased is whole: rows counted by the purge before its first delete.
    assert request.preview["memories"] == request.preview["memory_vectors"] == 3
    assert set(request.preview) == set(scope.LAYERS)
    assert not Memory.objects.filter(user_id="alice-123").exists()
    assert not HiddenOwner.objects.exists()
