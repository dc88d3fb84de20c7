"""A purge whose worker dies part-way is resumed by another, and the receipt still counts every row the two runs
deleted, each once: the count of a batch commits with its deletes, so no crash loses it or counts it twice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World
from sessions_app.services import append_messages, create_session

pytestmark = pytest.mark.django_db

ALICE = "alice-crash-1"


class WorkerKilled(BaseException):
    """Stands for the kill -9 of the worker: raised between two batches, it ends the run where a kill would."""


@override_settings(ERASURE_PURGE_BATCH=2)
def test_a_purge_killed_part_way_and_resumed_counts_every_deleted_row_once_on_the_receipt(world: World) -> None:
    session, _ = create_session(tenant=world.acme.tenant, user_id=ALICE, session_id="alice-s")
    append_messages(session=session, messages=[{"role": "user", "content": f"message {n}"} for n in range(7)])
    for n in range(3):
        memory = {"scope": "user", "user_id": ALICE, "content": f"alice fact {n}"}
        assert world.acme.client.post("/api/v1/memories", memory, format="json").status_code == 201
    filed = services.file_erasure(tenant=world.acme.tenant, user_id=ALICE, legal_basis="gdpr_art_17", filed_by="cora")
    services.approve_erasure(request_id=filed.pk, decided_by="staff:ann")
    claimed = services.claim_purge(request_id=filed.pk, worker="worker:killed")
    assert claimed is not None

    def killed_after_four_events(removed: dict[str, int], layer: str) -> None:
        if removed.get("events", 0) >= 4:
            raise WorkerKilled

    # The memories went, then the first two batches of events; the worker dies before the third.
    with pytest.raises(WorkerKilled):
        services.purge(request=claimed, progress=killed_after_four_events)
    ErasureRequest.objects.filter(pk=filed.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    purge_erasure(str(filed.pk))

    receipt = world.acme.client.get(f"/api/v1/erasure-requests/{filed.pk}/receipt").json()
    erased, purged = receipt["erased_per_layer"], receipt["purged_per_layer"]
    assert erased["events"] == 7 and erased["memories"] == 3
    assert {layer: purged[layer] for layer in ("events", "memories")} == {"events": 7, "memories": 3}, purged
    request = ErasureRequest.objects.get(pk=filed.pk)
    assert request.progress == {"layer": None, "removed": request.purged}
