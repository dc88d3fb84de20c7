"""A person erased once comes back and is erased again: the second erasure counts only the key it destroys."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import selectors, services
from compliance_app.models import AuditEntry, PersonKey
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import erased
from conftest import World

pytestmark = pytest.mark.django_db

NINA = "nina-returns-1"


def _session_with_a_message(world: World, session_id: str) -> None:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": session_id, "user_id": NINA}, format="json").status_code == 201
    say = {"messages": [{"role": "user", "content": "hello"}]}
    assert client.post(f"/api/v1/sessions/{session_id}/context/messages", say, format="json").status_code == 201


def test_a_returning_persons_second_erasure_previews_and_receipts_only_the_key_it_destroys(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _session_with_a_message(world, "nina-s1")
    assert erased(world, NINA, django_capture_on_commit_callbacks).status == "verified"
    _session_with_a_message(world, "nina-s2")  # back, with a new data key; the first one stays, destroyed
    assert PersonKey.objects.filter(tenant=world.acme.tenant).count() == 2

    pending = services.file_erasure(
        tenant=world.acme.tenant, user_id=NINA, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    assert selectors.current_preview(pending)["data_keys"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=pending.pk, decided_by="staff:ann")
    purge_erasure(str(pending.pk))

    destroyed = AuditEntry.objects.get(erasure=pending, action="erased_logically").details["data_keys_destroyed"]
    receipt = world.acme.client.get(f"/api/v1/erasure-requests/{pending.pk}/receipt")
    assert receipt.status_code == 200, receipt.content
    assert receipt.json()["erased_per_layer"]["data_keys"] == destroyed == 1
