"""Two requests for the same person: the second erases only them (what is left of them, or nothing), never what
belongs to no one in particular — the tenant's global memories, sessions without a user."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import selectors, services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import postgres_rows_containing
from conftest import World, logged_in
from memories_app.models import Memory
from memory_admin.errors import Conflict
from sessions_app.services import create_session

pytestmark = pytest.mark.django_db

LENA = "lena-twice-1"


def _person_and_the_tenants_global_memories(world: World) -> None:
    client = world.acme.client
    memory = {"scope": "user", "user_id": LENA, "content": "lena likes tea"}
    assert client.post("/api/v1/memories", memory, format="json").status_code == 201
    for text in ("Office opens at 9", "Refunds take 5 days"):
        assert client.post("/api/v1/memories", {"scope": "global", "content": text}, format="json").status_code == 201


def _file(world: World) -> str:
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": LENA, "legal_basis": "gdpr_art_17"}, format="json"
    )
    assert filed.status_code == 201, filed.content
    request_id: str = filed.json()["id"]
    return request_id


def _approve(request_id: str, capture: Any) -> None:
    with capture(execute=True):
        services.approve_erasure(request_id=request_id, decided_by="staff:ann")


def _global_memories(world: World) -> int:
    return Memory.objects.filter(tenant=world.acme.tenant, scope="global", deleted_at__isnull=True).count()


def test_two_requests_approved_one_after_the_other_leave_the_tenants_global_memories_alone(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _person_and_the_tenants_global_memories(world)
    first, second = _file(world), _file(world)
    _approve(first, django_capture_on_commit_callbacks)
    _approve(second, django_capture_on_commit_callbacks)

    purge_erasure(first)
    purge_erasure(second)

    assert _global_memories(world) == 2
    for request_id in (first, second):
        request = ErasureRequest.objects.get(pk=request_id)
        assert request.status == "verified", request.verification
        assert request.purged.get("memories", 0) <= 1, request.purged


def test_a_request_still_pending_when_the_person_is_erased_previews_only_them_and_verifies_once_approved(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _person_and_the_tenants_global_memories(world)
    first, second = _file(world), _file(world)
    _approve(first, django_capture_on_commit_callbacks)
    purge_erasure(first)
    assert ErasureRequest.objects.get(pk=first).status == "verified"

    pending = ErasureRequest.objects.get(pk=second)
    assert pending.status == "pending" and pending.user_id == LENA
    assert selectors.current_preview(pending)["memories"] == 0
    _approve(second, django_capture_on_commit_callbacks)
    purge_erasure(second)

    assert ErasureRequest.objects.get(pk=second).status == "verified"
    assert _global_memories(world) == 2


def test_a_request_that_lost_its_user_id_previews_nothing_and_is_refused_approval_not_a_server_error(
    world: World,
) -> None:
    # A row an older version left behind: a later erasure of the person blanked their other requests.
    _person_and_the_tenants_global_memories(world)
    create_session(tenant=world.acme.tenant, user_id="", session_id="anonymous-s")
    request_id = _file(world)
    ErasureRequest.objects.filter(pk=request_id).update(user_id="")
    blank = ErasureRequest.objects.get(pk=request_id)

    assert not any(selectors.current_preview(blank).values())
    with pytest.raises(Conflict):
        services.approve_erasure(request_id=request_id, decided_by="staff:ann")
    page = logged_in(world.compliance).post(f"/compliance/erasures/{request_id}/", {"action": "approve"}, follow=True)

    assert page.status_code == 200 and b"no longer names" in page.content
    assert ErasureRequest.objects.get(pk=request_id).status == "pending"
    assert _global_memories(world) == 2
    assert world.acme.client.get("/api/v1/sessions/anonymous-s").status_code == 200


def test_an_approved_request_that_lost_its_user_id_is_purged_without_touching_anyone_elses_data(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _person_and_the_tenants_global_memories(world)
    create_session(tenant=world.acme.tenant, user_id="", session_id="anonymous-s")
    first, second = _file(world), _file(world)
    _approve(first, django_capture_on_commit_callbacks)
    _approve(second, django_capture_on_commit_callbacks)
    purge_erasure(first)
    # As an older version left it: the first erasure's verification blanked the second request.
    ErasureRequest.objects.filter(pk=second).update(user_id="")

    purge_erasure(second)
    purge_erasure(second)

    request = ErasureRequest.objects.get(pk=second)
    assert request.status == "verified", request.verification
    assert not any(request.purged.values()), request.purged
    assert _global_memories(world) == 2
    assert world.acme.client.get("/api/v1/sessions/anonymous-s").status_code == 200


def test_a_failed_request_keeps_nothing_of_the_person_once_a_later_request_of_theirs_is_verified(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    email = "lena.twice@example.com"
    _person_and_the_tenants_global_memories(world)
    # Another person's memory naming lena's email: the first request's scan finds it and fails.
    bobs = {"scope": "user", "user_id": "bob-twice-1", "content": f"call {email} tomorrow"}
    bobs_memory = world.acme.client.post("/api/v1/memories", bobs, format="json").json()["id"]
    first = services.file_erasure(
        tenant=world.acme.tenant,
        user_id=LENA,
        legal_basis="gdpr_art_17",
        filed_by="staff:cora",
        identifiers=[email],
        note=f"asked by {email}",
    )
    _approve(str(first.pk), django_capture_on_commit_callbacks)
    purge_erasure(str(first.pk))
    assert ErasureRequest.objects.get(pk=first.pk).status == "failed"
    # Staff deal with the trace, and the person is filed again.
    Memory.objects.filter(pk=bobs_memory).delete()
    second = services.file_erasure(
        tenant=world.acme.tenant, user_id=LENA, legal_basis="gdpr_art_17", filed_by="staff:cora", identifiers=[email]
    )
    _approve(str(second.pk), django_capture_on_commit_callbacks)

    purge_erasure(str(second.pk))

    assert ErasureRequest.objects.get(pk=second.pk).status == "verified"
    failed = ErasureRequest.objects.get(pk=first.pk)
    assert (failed.user_id, failed.identifiers, failed.note, failed.rejection_reason) == ("", [], "", "")
    for text in (LENA, email):
        assert postgres_rows_containing(text) == {}, text


def test_a_later_request_takes_over_the_identifiers_of_the_persons_failed_one_and_finds_what_they_name(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    email = "lena.alias@example.com"
    _person_and_the_tenants_global_memories(world)
    bobs = {"scope": "user", "user_id": "bob-twice-2", "content": f"mail {email} the invoice"}
    world.acme.client.post("/api/v1/memories", bobs, format="json")
    first = services.file_erasure(
        tenant=world.acme.tenant, user_id=LENA, legal_basis="gdpr_art_17", filed_by="staff:cora", identifiers=[email]
    )
    _approve(str(first.pk), django_capture_on_commit_callbacks)
    purge_erasure(str(first.pk))
    assert ErasureRequest.objects.get(pk=first.pk).status == "failed"
    # Filed again without the email, the trace left untouched: the later scan still looks for it.
    second = services.file_erasure(
        tenant=world.acme.tenant, user_id=LENA, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    _approve(str(second.pk), django_capture_on_commit_callbacks)

    purge_erasure(str(second.pk))

    later = ErasureRequest.objects.get(pk=second.pk)
    assert later.status == "failed"
    assert later.identifiers == [email]
    assert ErasureRequest.objects.get(pk=first.pk).identifiers == []
