"""A keyed create retried while the owner's erasure is purged: the purge keeps the request's key, replaces the
epoch and deletes the rows, so the retry is a 410 whenever the purge ran (memories_app.erased_keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World
from memories_app import services as memory_services
from memories_app.models import ErasedRequestKey, Memory
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db

ALICE = "alice-race"
MEMORY = {"scope": "user", "user_id": ALICE, "content": "ALICE-RACE has diabetes."}


def _approved_erasure_and_a_warm_cache(world: World, capture: Any) -> ErasureRequest:
    """Alice's memory stored with key k-race, her erasure approved, Redis's records of it lost, and this process
    sure (under the current epoch) that the tenant has no erased keys."""
    client = world.acme.client
    assert client.post("/api/v1/memories", MEMORY, format="json", HTTP_IDEMPOTENCY_KEY="k-race").status_code == 201
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with capture(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    redis_client().flushdb()
    other = {"scope": "user", "user_id": "bob-race", "content": "bob likes tea"}
    assert client.post("/api/v1/memories", other, format="json", HTTP_IDEMPOTENCY_KEY="k-warm").status_code == 201
    return request


def _purging_once(request: ErasureRequest, step: Callable[..., Any]) -> Callable[..., Any]:
    """`step`, which first runs the purge (another worker's, committing meanwhile) the first time it is called."""
    ran: list[bool] = []

    def purge_then_step(*args: Any, **kwargs: Any) -> Any:
        if not ran:
            ran.append(True)
            purge_erasure(str(request.pk))
        return step(*args, **kwargs)

    return purge_then_step


@pytest.mark.parametrize("purged_during", ["embed_texts", "_insert"])
def test_a_keyed_create_retried_while_its_owners_erasure_is_purged_is_a_410_and_stores_nothing(
    world: World, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch, purged_during: str
) -> None:
    request = _approved_erasure_and_a_warm_cache(world, django_capture_on_commit_callbacks)
    monkeypatch.setattr(memory_services, purged_during, _purging_once(request, getattr(memory_services, purged_during)))

    retry = world.acme.client.post("/api/v1/memories", MEMORY, format="json", HTTP_IDEMPOTENCY_KEY="k-race")

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert ErasedRequestKey.objects.count() == 1
    assert retry.status_code == 410, retry.content
    assert not Memory.objects.filter(user_id=ALICE).exists()
