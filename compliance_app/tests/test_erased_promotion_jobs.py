"""An erased session's promotion job is as invisible as the session, from approval on (before the purge)."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from conftest import World

pytestmark = pytest.mark.django_db


def test_an_erased_sessions_promotion_job_is_a_404_between_approval_and_purge(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "olga-s", "user_id": "olga-window"}, format="json").status_code == 201
    job = client.post("/api/v1/sessions/olga-s/promote", {"texts": ["OLGA-MARK likes tea"]}, format="json")
    assert job.status_code == 202, job.content
    assert client.get(f"/api/v1/promotions/{job.json()['id']}").status_code == 200

    request = services.file_erasure(
        tenant=world.acme.tenant, user_id="olga-window", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=False):  # approved; the purge has not run
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")

    assert client.get("/api/v1/sessions/olga-s").status_code == 404
    gone = client.get(f"/api/v1/promotions/{job.json()['id']}")
    assert gone.status_code == 404
    assert "olga-s" not in gone.content.decode()
