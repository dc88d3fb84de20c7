"""Fill every layer for two people, erase one, and find no trace of them anywhere — the other untouched."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoints_app.models import Checkpoint
from compliance_app import services
from compliance_app.models import AuditEntry, ErasureRequest
from compliance_app.tasks import purge_erasure
from compliance_app.tests.people import fill_every_layer as _fill
from compliance_app.tests.people import postgres_rows_containing
from conftest import World
from memories_app.models import Memory, UserProfile
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event

pytestmark = pytest.mark.django_db

ALICE = "alice-7f3a9c"
BOB = "bob-2c81de"


def _redis_entries_containing(text: str) -> list[bytes]:
    client = redis_client()
    needle = text.encode()
    hits = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        values: list[Any] = []
        if kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"list":
            values = list(client.lrange(key, 0, -1))
        elif kind == b"hash":
            values = [part for pair in client.hgetall(key).items() for part in pair]
        if needle in key or any(needle in value for value in values):
            hits.append(key)
    return hits


def test_erasing_one_person_leaves_no_trace_of_them_and_the_other_untouched(
    world: World, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        alice = _fill(world, ALICE, "ALICE-MARK")
        bob = _fill(world, BOB, "BOB-MARK")
    bob_before = world.acme.client.get(f"{bob['base']}/state").json()
    alice_sessions = list(AgentSession.objects.filter(user_id=ALICE).values_list("pk", flat=True))
    alice_memories = list(Memory.objects.filter(user_id=ALICE).values_list("pk", flat=True))
    assert _redis_entries_containing(str(alice_sessions[0])), "alice has hot keys before erasure"

    filed = world.acme.client.post(
        "/api/v1/erasure-requests",
        {"user_id": ALICE, "identifiers": ["alice@example.com"], "legal_basis": "gdpr_art_17"},
        format="json",
    )
    assert filed.status_code == 201
    request_id = filed.json()["id"]
    with django_capture_on_commit_callbacks(execute=False) as after_commit:
        services.approve_erasure(request_id=request_id, decided_by="staff:cora-compliance")
    # Logically gone at once, before any purge ran.
    assert world.acme.client.get(alice["base"]).status_code == 404
    assert world.acme.client.get("/api/v1/memories", {"user_id": ALICE}).json()["results"] == []
    for callback in after_commit:
        callback()  # purges the Redis keys and queues the purge (which runs directly below)
    # As in a worker, what each of the purge's steps leaves for after its commit runs: its sessions' archive folders
    # go then, and their records with them.
    with django_capture_on_commit_callbacks(execute=True):
        purge_erasure(request_id)

    request = ErasureRequest.objects.get(pk=request_id)
    assert request.status == "verified", request.verification
    assert request.verification["clean"] is True
    for text in (ALICE, "ALICE-MARK", "alice@example.com", *map(str, alice_sessions)):
        assert postgres_rows_containing(text) == {}, text
        assert _redis_entries_containing(text) == [], text
    assert not Memory.objects.filter(pk__in=alice_memories).exists()
    assert not AgentSession.all_objects.filter(pk__in=alice_sessions).exists()
    assert not Event.objects.filter(session_id__in=alice_sessions).exists()
    assert not Checkpoint.objects.filter(session_id__in=alice_sessions).exists()
    assert not UserProfile.objects.filter(user_id=ALICE).exists()

    assert world.acme.client.get(f"{bob['base']}/state").json() == bob_before
    assert world.acme.client.get(f"{bob['base']}/checkpoints/latest").status_code == 200
    assert Memory.objects.filter(user_id=BOB).count() >= 2
    store = {"ops": [{"op": "list_namespaces"}]}
    assert world.acme.client.post("/api/v1/langgraph/store/batch", store, format="json").json()["results"] == [
        [[BOB], ["faq", "shared"], ["users", BOB, "prefs"]]
    ]
    receipt = world.acme.client.get(f"/api/v1/erasure-requests/{request_id}/receipt").json()
    assert ALICE not in str(receipt) and "alice@example.com" not in str(receipt)
    assert receipt["erased_per_layer"]["sessions"] == 1
    assert receipt["erased_per_layer"]["events"] >= 2
    assert receipt["erased_per_layer"]["langgraph_store_items"] == 2
    # The purge counts what it deleted in the layers the preview counted, LangGraph's rows included.
    for layer, erased in {"langgraph_checkpoints": 1, "langgraph_values": 1, "checkpoints": 1}.items():
        assert receipt["erased_per_layer"][layer] == receipt["purged_per_layer"][layer] == erased, layer
    assert [entry["action"] for entry in receipt["audit"]] == [
        "filed",
        "approved",
        "erased_logically",
        "purge_started",
        "purged",
        "verified",
    ]
    assert all(ALICE not in str(entry.details) for entry in AuditEntry.objects.all())
