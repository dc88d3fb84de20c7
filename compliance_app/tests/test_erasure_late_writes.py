"""Writes about a person that arrive between approval and the purge are purged with the rest."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import scope, services
from compliance_app.keys import subject_of
from compliance_app.models import ErasureRequest, PersonKey
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import fill_every_layer
from conftest import World
from langgraph_app.models import StoreItem
from memories_app.models import ProfileFactOutbox, UserProfile
from memory_admin.api.idempotency import ERASED_RECORD
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db

FRANK = "frank-late-1"


def test_a_profile_written_after_approval_is_purged_with_its_outbox_and_its_new_data_key(
    world: World, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        fill_every_layer(world, FRANK, "FRANK-MARK")
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=FRANK, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=True):  # Redis purged at once, the purge queued
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    assert not UserProfile.objects.filter(user_id=FRANK).exists()

    late = world.acme.client.patch(
        f"/api/v1/users/{FRANK}/profile", {"facts": {"late": "FRANK-MARK moved to Lisbon"}}, format="json"
    )
    assert late.status_code == 200
    purge_erasure(str(request.pk))

    request = ErasureRequest.objects.get(pk=request.pk)
    assert request.status == "verified", request.verification
    assert request.purged["late_profile"] == 1 and request.purged["late_profile_outbox"] >= 1
    assert world.acme.client.get(f"/api/v1/users/{FRANK}/profile").status_code == 404
    assert not UserProfile.objects.filter(user_id=FRANK).exists()
    assert not ProfileFactOutbox.objects.filter(user_id=FRANK).exists()
    subject = subject_of(world.acme.tenant.pk, FRANK)
    assert not PersonKey.objects.filter(subject=subject, destroyed_at__isnull=True).exists()


def test_a_session_started_after_approval_is_purged_with_the_replays_of_its_requests(
    world: World, django_capture_on_commit_callbacks
) -> None:
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=FRANK, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "late-s", "user_id": FRANK}, format="json").status_code == 201
    say = {"messages": [{"role": "user", "content": "FRANK-MARK is back"}]}
    sent = client.post("/api/v1/sessions/late-s/context/messages", say, format="json", HTTP_IDEMPOTENCY_KEY="late-k1")
    assert sent.status_code == 201

    purge_erasure(str(request.pk))

    request = ErasureRequest.objects.get(pk=request.pk)
    assert request.status == "verified", request.verification
    records = list(redis_client().scan_iter(match=f"mem:idem:{world.acme.tenant.pk}:*"))
    # The late append's record holds nothing of them any more: it only makes a retry a 410.
    assert [redis_client().get(key) for key in records] == [ERASED_RECORD.encode()]


def test_a_store_item_put_during_the_purge_of_a_short_user_id_fails_the_scan_until_purged_again(
    world: World, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    jo = "jo71"  # shorter than the text scan's identifiers: only a structural check can find what is left
    put = {"ops": [{"op": "put", "namespace": ["users", jo], "key": "k1", "value": {"text": "tea"}}]}
    assert world.acme.client.post("/api/v1/langgraph/store/batch", put, format="json").status_code == 200
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=jo, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_redis = scope.purge_redis

    def agent_writes_meanwhile(*args: Any, **kwargs: Any) -> int:
        # The agent's put lands after the purge's store step, before its end.
        late = {"ops": [{"op": "put", "namespace": ["users", jo], "key": "late", "value": {"text": "coffee"}}]}
        assert world.acme.client.post("/api/v1/langgraph/store/batch", late, format="json").status_code == 200
        return purge_redis(*args, **kwargs)

    monkeypatch.setattr(scope, "purge_redis", agent_writes_meanwhile)
    purge_erasure(str(request.pk))
    monkeypatch.undo()

    failed = ErasureRequest.objects.get(pk=request.pk)
    assert failed.status == "failed", failed.verification
    assert failed.verification["findings"]["postgres:langgraph_app_storeitem.prefix"] == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.purge_again(request_id=request.pk, requested_by="staff:ann")
    purge_erasure(str(request.pk))

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert not StoreItem.objects.filter(tenant=world.acme.tenant, prefix=f"users.{jo}").exists()
