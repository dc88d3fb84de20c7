"""A failed erasure is not a dead end: once staff dealt with what the verification scan found, they have the
purge and the scan run again, and the request can end verified."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import AuditEntry, ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World, logged_in
from memory_admin.errors import Conflict

pytestmark = pytest.mark.django_db

IVAN = "ivan-retry-1"


def _failed_erasure(world: World, capture: Any) -> str:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "ivan-s", "user_id": IVAN}, format="json").status_code == 201
    # Another person's session whose metadata names ivan: not his data, but the text scan finds it.
    bob = {"id": "bob-s", "user_id": "bob", "metadata": {"met": f"{IVAN} at the desk"}}
    assert client.post("/api/v1/sessions", bob, format="json").status_code == 201
    filed = client.post("/api/v1/erasure-requests", {"user_id": IVAN, "legal_basis": "gdpr_art_17"}, format="json")
    request_id: str = filed.json()["id"]
    with capture(execute=True):
        services.approve_erasure(request_id=request_id, decided_by="staff:ann")
    purge_erasure(request_id)
    assert ErasureRequest.objects.get(pk=request_id).status == "failed"
    return request_id


def test_a_failed_erasure_is_purged_and_verified_again_from_its_page(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    request_id = _failed_erasure(world, django_capture_on_commit_callbacks)
    page = logged_in(world.compliance)
    assert b'id="purge-again"' in page.get(f"/compliance/erasures/{request_id}/").content
    # Staff deal with the finding: bob's session no longer names ivan.
    patch = {"metadata": {"met": None}}
    assert world.acme.client.patch("/api/v1/sessions/bob-s", patch, format="json").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        answer = page.post(f"/compliance/erasures/{request_id}/", {"action": "purge_again"})
    assert answer.status_code == 302
    assert ErasureRequest.objects.get(pk=request_id).status == "erased"
    purge_erasure(request_id)

    request = ErasureRequest.objects.get(pk=request_id)
    assert request.status == "verified" and request.user_id == ""
    actions = list(AuditEntry.objects.filter(erasure=request).order_by("at").values_list("action", flat=True))
    assert actions.count("verification_failed") == 1 and actions[-2:] == ["purged", "verified"]
    assert "purge_retried" in actions


@pytest.mark.parametrize("status", ["pending", "verified"])
def test_only_a_failed_erasure_can_be_purged_again(
    world: World, status: str, django_capture_on_commit_callbacks: Any
) -> None:
    if status == "pending":
        filed = world.acme.client.post(
            "/api/v1/erasure-requests", {"user_id": "someone-else", "legal_basis": "gdpr_art_17"}, format="json"
        )
        request_id = filed.json()["id"]
    else:
        request_id = _failed_erasure(world, django_capture_on_commit_callbacks)
        ErasureRequest.objects.filter(pk=request_id).update(status="verified")

    page = logged_in(world.compliance)
    answer = page.post(f"/compliance/erasures/{request_id}/", {"action": "purge_again"}, follow=True)

    assert answer.status_code == 200 and b"Only a failed erasure is purged again" in answer.content
    assert ErasureRequest.objects.get(pk=request_id).status == status
    assert not AuditEntry.objects.filter(erasure_id=request_id, action="purge_retried").exists()


def test_support_staff_cannot_have_an_erasure_purged_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    request_id = _failed_erasure(world, django_capture_on_commit_callbacks)

    answer = logged_in(world.support).post(f"/compliance/erasures/{request_id}/", {"action": "purge_again"})

    assert answer.status_code == 403
    assert ErasureRequest.objects.get(pk=request_id).status == "failed"


def test_a_failed_request_a_later_request_of_the_person_took_over_points_to_it_and_is_not_purged_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    first = _failed_erasure(world, django_capture_on_commit_callbacks)
    # The person is filed again and approved; the later scan fails too (bob's session still names ivan) and
    # takes the person over from the first request, which now names no one.
    body = {"user_id": IVAN, "legal_basis": "gdpr_art_17"}
    filed = world.acme.client.post("/api/v1/erasure-requests", body, format="json")
    later: str = filed.json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=later, decided_by="staff:ann")
    purge_erasure(later)
    assert ErasureRequest.objects.get(pk=later).status == "failed"
    assert ErasureRequest.objects.get(pk=first).user_id == ""

    page = logged_in(world.compliance)
    shown = page.get(f"/compliance/erasures/{first}/").content
    assert b'id="purge-again"' not in shown
    assert f'href="/compliance/erasures/{later}/"'.encode() in shown
    with pytest.raises(Conflict) as refused:
        services.purge_again(request_id=first, requested_by="staff:ann")
    assert refused.value.details == {"user_id": "", "later_request": later, "later_status": "failed"}
    with django_capture_on_commit_callbacks(execute=True):
        answer = page.post(f"/compliance/erasures/{first}/", {"action": "purge_again"}, follow=True)
    assert answer.status_code == 200 and b"a later request of theirs" in answer.content
    purge_erasure(first)

    # Still failed, with no receipt: a scan of a request that names no one would find nothing and prove nothing.
    assert ErasureRequest.objects.get(pk=first).status == "failed"
    assert world.acme.client.get(f"/api/v1/erasure-requests/{first}/receipt").status_code == 409
    assert not AuditEntry.objects.filter(erasure__pk=first, action="purge_retried").exists()
    # The later request is the one purged again, once the trace is dealt with.
    assert b'id="purge-again"' in page.get(f"/compliance/erasures/{later}/").content
    assert world.acme.client.get("/api/v1/sessions/bob-s").json()["metadata"] == {"met": f"{IVAN} at the desk"}
    patch = {"metadata": {"met": None}}
    assert world.acme.client.patch("/api/v1/sessions/bob-s", patch, format="json").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        services.purge_again(request_id=later, requested_by="staff:ann")
    purge_erasure(later)
    assert ErasureRequest.objects.get(pk=later).status == "verified"
