"""A failed erasure is not a dead end: once staff dealt with what the verification scan found, they have the
purge and the scan run again, and the request can end verified."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import AuditEntry, ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World, logged_in

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
