"""A person's id is taken exactly as the other APIs store it, spaces included: " spacey " is not "spacey"."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import ErasureRequest, ExportRequest
from compliance_app.tasks import purge_erasure
from conftest import World, logged_in
from langgraph_app.models import StoreItem
from memories_app.models import UserProfile

pytestmark = pytest.mark.django_db

SPACEY = " spacey "


def _spacey_everywhere(world: World) -> None:
    client = world.acme.client
    profile = {"facts": {"city": "SPACEY-MARK lives in Porto"}}
    assert client.patch("/api/v1/users/%20spacey%20/profile", profile, format="json").status_code == 200
    put = {"ops": [{"op": "put", "namespace": ["users", SPACEY], "key": "k", "value": {"text": "SPACEY-MARK"}}]}
    assert client.post("/api/v1/langgraph/store/batch", put, format="json").status_code == 200


def test_a_person_whose_id_has_leading_and_trailing_spaces_is_erased_through_the_api(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _spacey_everywhere(world)
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": SPACEY, "legal_basis": "gdpr_art_17"}, format="json"
    )
    assert filed.status_code == 201, filed.content
    request_id = filed.json()["id"]
    assert ErasureRequest.objects.get(pk=request_id).user_id == SPACEY

    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request_id, decided_by="staff:ann")
    purge_erasure(request_id)

    assert ErasureRequest.objects.get(pk=request_id).status == "verified"
    assert world.acme.client.get("/api/v1/users/%20spacey%20/profile").status_code == 404
    assert not UserProfile.objects.exists() and not StoreItem.objects.exists()


def test_the_dashboard_files_erasures_and_exports_for_the_id_exactly_as_typed(world: World) -> None:
    client = logged_in(world.compliance)
    form = {"tenant": str(world.acme.tenant.pk), "user_id": SPACEY, "legal_basis": "gdpr_art_17", "identifiers": ""}
    assert client.post("/compliance/erasures/", form).status_code == 302
    assert client.post("/compliance/exports/", {**form, "legal_basis": "gdpr_art_15"}).status_code == 302

    assert ErasureRequest.objects.get().user_id == SPACEY
    assert ExportRequest.objects.get().user_id == SPACEY


def test_a_blank_user_id_is_refused_by_the_api_and_the_dashboard(world: World) -> None:
    for path, body in (
        ("/api/v1/erasure-requests", {"user_id": "   ", "legal_basis": "gdpr_art_17"}),
        ("/api/v1/export-requests", {"user_id": "   "}),
    ):
        assert world.acme.client.post(path, body, format="json").status_code == 400
    form = {"tenant": str(world.acme.tenant.pk), "user_id": "   ", "legal_basis": "gdpr_art_17", "identifiers": ""}
    assert logged_in(world.compliance).post("/compliance/erasures/", form).status_code == 200  # the form again

    assert not ErasureRequest.objects.exists() and not ExportRequest.objects.exists()
