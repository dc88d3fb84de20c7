"""A person whose session an archival job claimed, or whose memory the eviction job marked, is erased like
anyone else: the bookkeeping rows those jobs keep (declared without a reverse accessor) were missed by the
purge, whose deletes then failed on their foreign keys, and the request stayed `purging` for good."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import fill_every_layer
from conftest import World
from lifecycle_app.models import EvictionCandidate, SessionArchival
from memories_app.models import Memory
from sessions_app.models import AgentSession

pytestmark = pytest.mark.django_db

PERSON = "lena-lifecycle-1"


def test_a_person_with_an_archival_claim_and_an_eviction_mark_is_purged_and_verified(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    fill_every_layer(world, PERSON, "LIFECYCLE-MARK")
    session = AgentSession.objects.get(tenant=world.acme.tenant, user_id=PERSON)
    memory = Memory.objects.filter(tenant=world.acme.tenant, user_id=PERSON).first()
    assert memory is not None
    SessionArchival.objects.create(session=session, tenant=world.acme.tenant, head_version=session.head_version)
    EvictionCandidate.objects.create(memory=memory, tenant=world.acme.tenant, score=0.1)
    body = {"user_id": PERSON, "legal_basis": "gdpr_art_17"}
    filed = world.acme.client.post("/api/v1/erasure-requests", body, format="json")
    request_id = filed.json()["id"]

    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request_id, decided_by="staff:ann")
    purge_erasure(request_id)

    assert ErasureRequest.objects.get(pk=request_id).status == "verified"
    assert not AgentSession.all_objects.filter(pk=session.pk).exists()
    assert not Memory._base_manager.filter(pk=memory.pk).exists()
    assert not SessionArchival.objects.filter(session_id=session.pk).exists()
    assert not EvictionCandidate.objects.filter(memory_id=memory.pk).exists()
