"""The verification scan looks at the request's tenant only: the same user id elsewhere is another person."""

from __future__ import annotations

from typing import Any

import pytest

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import purge_erasure
from conftest import World
from memories_app.models import Memory

pytestmark = pytest.mark.django_db

URSULA = "ursula-x"


def _leave_traces(client: Any, marker: str) -> None:
    memory = {"scope": "user", "user_id": URSULA, "content": f"{marker} likes tea"}
    assert client.post("/api/v1/memories", memory, format="json").status_code == 201
    assert client.post("/api/v1/sessions", {"id": "u-s1", "user_id": URSULA}, format="json").status_code == 201
    say = {"messages": [{"role": "user", "content": f"{marker} here"}]}
    assert client.post("/api/v1/sessions/u-s1/context/messages", say, format="json").status_code == 201
    assert client.get("/api/v1/sessions/u-s1/context").status_code == 200  # hot context in Redis
    profile = {"facts": {"city": f"{marker} lives in Porto"}}
    patched = client.patch(f"/api/v1/users/{URSULA}/profile", profile, format="json", HTTP_IDEMPOTENCY_KEY="p1")
    assert patched.status_code == 200


def test_a_person_whose_user_id_another_tenant_also_uses_is_verified_without_counting_the_other_tenants_rows(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    _leave_traces(world.acme.client, "ACME-MARK")
    _leave_traces(world.outsider.client, "GLOBEX-MARK")
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": URSULA, "legal_basis": "gdpr_art_17"}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=filed["id"], decided_by="staff:ann")
    purge_erasure(filed["id"])

    assert ErasureRequest.objects.get(pk=filed["id"]).status == "verified"
    polled = world.acme.client.get(f"/api/v1/erasure-requests/{filed['id']}").json()
    assert not any(polled["verification"]["findings"].values()), polled["verification"]
    assert world.acme.client.get(f"/api/v1/erasure-requests/{filed['id']}/receipt").status_code == 200
    assert Memory.objects.filter(user_id=URSULA, tenant=world.outsider.tenant).count() >= 1
    assert world.outsider.client.get(f"/api/v1/users/{URSULA}/profile").status_code == 200


def test_another_sessions_id_that_spells_an_erased_sessions_key_is_not_counted_as_a_trace(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    # A session created without an id is known by its key; another tenant (or this one, later, for someone
    # else) may choose that text as its own session's id. The scan read the client-chosen id column as if it
    # referenced the erased session, failed the erasure and told the tenant the id was in use somewhere.
    created = world.acme.client.post("/api/v1/sessions", {"user_id": URSULA}, format="json").json()
    namesake = {"id": created["id"], "user_id": "someone-else"}
    assert world.outsider.client.post("/api/v1/sessions", namesake, format="json").status_code == 201
    filed = world.acme.client.post(
        "/api/v1/erasure-requests", {"user_id": URSULA, "legal_basis": "gdpr_art_17"}, format="json"
    ).json()
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=filed["id"], decided_by="staff:ann")
    purge_erasure(filed["id"])

    polled = world.acme.client.get(f"/api/v1/erasure-requests/{filed['id']}").json()
    assert polled["status"] == "verified", polled["verification"]
    assert world.outsider.client.get(f"/api/v1/sessions/{created['id']}").status_code == 200


def _erase(world: World, user_id: str, capture: Any, *, filed_by: str = "staff:cora") -> ErasureRequest:
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id=user_id, legal_basis="gdpr_art_17", filed_by=filed_by
    )
    with capture(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))
    return ErasureRequest.objects.get(pk=request.pk)


def _a_user_everywhere(client: Any, user_id: str, marker: str) -> None:
    memory = {"scope": "user", "user_id": user_id, "content": f"{marker} likes tea"}
    assert client.post("/api/v1/memories", memory, format="json", HTTP_IDEMPOTENCY_KEY=marker).status_code == 201
    session = {"id": f"{marker}-s", "user_id": user_id}
    assert client.post("/api/v1/sessions", session, format="json").status_code == 201
    ops = {"ops": [{"op": "put", "namespace": ["users", user_id], "key": "k", "value": {"text": marker}}]}
    assert client.post("/api/v1/langgraph/store/batch", ops, format="json").status_code == 200


def test_a_person_whose_user_id_begins_another_users_id_is_verified_and_the_other_keeps_everything(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    _a_user_everywhere(client, "uprefix1", "ONE-MARK")
    _a_user_everywhere(client, "uprefix12", "TWELVE-MARK")

    request = _erase(world, "uprefix1", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert Memory.objects.filter(user_id="uprefix12", deleted_at__isnull=True).count() == 1
    assert client.get("/api/v1/sessions/TWELVE-MARK-s").status_code == 200


def test_a_person_whose_user_id_is_part_of_a_staff_members_name_is_verified(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    _a_user_everywhere(client, "cora-compliance", "CC-MARK")

    # Filed by the staff member cora-compliance (auth_user, the request's filed_by, the audit log's actor).
    request = _erase(world, "cora-compliance", django_capture_on_commit_callbacks, filed_by="staff:cora-compliance")

    assert request.status == "verified", request.verification


def test_the_scan_still_finds_a_person_named_in_another_users_text_whose_id_begins_with_theirs(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    _a_user_everywhere(client, "uprefix12", "TWELVE-MARK")
    mention = {"scope": "user", "user_id": "uprefix12", "content": "met uprefix1, who asked for a refund"}
    assert client.post("/api/v1/memories", mention, format="json").status_code == 201
    session = {"id": "other-s", "user_id": "uprefix12", "metadata": {"friend": "uprefix1"}}
    assert client.post("/api/v1/sessions", session, format="json").status_code == 201

    request = _erase(world, "uprefix1", django_capture_on_commit_callbacks)

    assert request.status == "failed"
    findings = {name for name, count in request.verification["findings"].items() if count}
    assert findings == {"postgres:memories_app_memory:text", "postgres:sessions_app_agentsession:text"}, findings


def test_rows_kept_under_another_name_the_request_gives_the_person_fail_the_scan(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    # The text pass no longer reads user_id columns (another person's id may contain this one's): rows stored
    # under the person's other identifier are counted by the exact check instead.
    client = world.acme.client
    under_email = {"scope": "user", "user_id": "kim@example.com", "content": "prefers the window seat"}
    assert client.post("/api/v1/memories", under_email, format="json").status_code == 201
    request = services.file_erasure(
        tenant=world.acme.tenant,
        user_id="kim-42",
        legal_basis="gdpr_art_17",
        filed_by="staff:cora",
        identifiers=["kim@example.com"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    purge_erasure(str(request.pk))

    request.refresh_from_db()
    assert request.status == "failed"
    assert request.verification["findings"]["postgres:memories_app_memory.user_id"] == 1
