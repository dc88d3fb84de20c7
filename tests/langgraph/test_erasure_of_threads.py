"""Erasing a person removes their LangGraph threads' checkpoints, channel values and pending writes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import override_settings

from compliance_app import scope
from compliance_app.models import ErasureRequest
from compliance_app.services import approve_erasure
from compliance_app.tasks import purge_erasure
from conftest import World
from langgraph_app.models import ChannelBlob, PendingWrite, ThreadCheckpoint
from memory_admin.codec import open_bytes
from memory_admin.errors import Erased
from sessions_app.models import AgentSession

B64 = base64.b64encode(b'"my card number"').decode()


def test_an_erased_persons_threads_lose_every_langgraph_row(world: World) -> None:
    client = world.acme.client
    checkpoint = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"card": 1}},
        "blobs": [{"channel": "card", "version": "1", "type": "json", "blob": B64}],
        "user_id": "u-erase-me",
    }
    assert client.post("/api/v1/langgraph/threads/lg-erase/checkpoints", checkpoint, format="json").status_code == 201
    writes = {
        "checkpoint_id": "1f0-0001",
        "task_id": "t1",
        "writes": [{"channel": "card", "type": "json", "blob": B64}],
    }
    assert client.post("/api/v1/langgraph/threads/lg-erase/writes", writes, format="json").status_code == 200
    session = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-erase")
    assert session.user_id == "u-erase-me"

    body = {"user_id": "u-erase-me", "legal_basis": "gdpr_art_17"}
    request_id = client.post("/api/v1/erasure-requests", body, format="json").json()["id"]
    approve_erasure(request_id=request_id, decided_by="staff:approver")
    assert client.get("/api/v1/langgraph/threads/lg-erase/checkpoints").status_code == 404  # gone at once
    purge_erasure(request_id)

    for model in (ThreadCheckpoint, ChannelBlob, PendingWrite):
        assert not model.objects.filter(session_id=session.pk).exists(), model.__name__
    assert not AgentSession.all_objects.filter(pk=session.pk).exists()


def test_channel_values_and_writes_are_encrypted_with_the_persons_key_and_unreadable_once_it_is_destroyed(
    world: World,
) -> None:
    client = world.acme.client
    checkpoint = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"card": 1}},
        "blobs": [{"channel": "card", "version": "1", "type": "json", "blob": B64}],
        "user_id": "u-shred-me",
    }
    assert client.post("/api/v1/langgraph/threads/lg-shred/checkpoints", checkpoint, format="json").status_code == 201
    writes = {
        "checkpoint_id": "1f0-0001",
        "task_id": "t1",
        "writes": [{"channel": "card", "type": "json", "blob": B64}],
    }
    assert client.post("/api/v1/langgraph/threads/lg-shred/writes", writes, format="json").status_code == 200

    stored = [bytes(blob or b"") for blob in ChannelBlob.objects.values_list("blob", flat=True)] + [
        bytes(blob or b"") for blob in PendingWrite.objects.values_list("blob", flat=True)
    ]
    assert len(stored) == 2
    assert all(blob[:1] == b"E" and b"card number" not in blob for blob in stored)
    latest = client.get("/api/v1/langgraph/threads/lg-shred/checkpoints", {"limit": 1}).json()["results"][0]
    assert latest["channel_values"][0]["blob"] == B64  # the client gets its own bytes back
    assert latest["pending_writes"][0]["blob"] == B64

    body = {"user_id": "u-shred-me", "legal_basis": "gdpr_art_17"}
    approve_erasure(
        request_id=client.post("/api/v1/erasure-requests", body, format="json").json()["id"], decided_by="x"
    )
    # Before any purge, every copy of these bytes (a backup, a replica) is unreadable: the key is gone.
    for blob in stored:
        with pytest.raises(Erased):
            open_bytes(blob)


def _put(client: Any, *namespaces: tuple[str, ...]) -> None:
    ops = [{"op": "put", "namespace": list(namespace), "key": "k", "value": {"v": 1}} for namespace in namespaces]
    assert client.post("/api/v1/langgraph/store/batch", {"ops": ops}, format="json").status_code == 200


def _namespaces(client: Any) -> list[list[str]]:
    body = {"ops": [{"op": "list_namespaces", "limit": 100}]}
    found: list[list[str]] = client.post("/api/v1/langgraph/store/batch", body, format="json").json()["results"][0]
    return found


def test_erasing_a_person_removes_the_store_items_in_their_namespaces_and_no_other(world: World) -> None:
    client = world.acme.client
    theirs = [
        ("users", "u-erase-me"),
        ("users", "u-erase-me", "prefs"),
        ("memories", "u-erase-me"),
        ("u-erase-me",),
        ("u-erase-me", "x", "y"),
    ]
    # Their id as a label elsewhere is another namespace's business (bob's, a team's): kept.
    others = [
        ("users", "u-erase-me-too"),
        ("u-erase",),
        ("team", "u-erase-me"),
        ("users", "bob", "u-erase-me"),
        ("faq",),
    ]
    _put(client, *theirs, *others)
    _put(world.outsider.client, ("users", "u-erase-me"))  # the same id in another tenant: another person

    body = {"user_id": "u-erase-me", "legal_basis": "gdpr_art_17"}
    request_id = client.post("/api/v1/erasure-requests", body, format="json").json()["id"]
    person = scope.Person(tenant=world.acme.tenant, user_id="u-erase-me")
    assert scope.preview(person)["langgraph_store_items"] == 5
    assert person.store_namespaces() == sorted(map(list, theirs))
    approve_erasure(request_id=request_id, decided_by="staff:approver")
    assert sorted(_namespaces(client)) == sorted(map(list, others))  # gone at once
    _put(client, ("users", "u-erase-me", "late"))  # an agent that had not heard yet
    purge_erasure(request_id)

    assert sorted(_namespaces(client)) == sorted(map(list, others))
    assert _namespaces(world.outsider.client) == [["users", "u-erase-me"]]
    request = ErasureRequest.objects.get(pk=request_id)
    assert request.purged["late_store_items"] == 1
    # The verification's text scan still reports this tenant's items that hold the id elsewhere: a person
    # decides whether they are about this person. The other tenant's are not its business. Nothing else is left.
    findings = {name: count for name, count in request.verification["findings"].items() if count}
    assert findings == {"postgres:langgraph_app_storeitem:text": 3}


def test_a_person_whose_id_is_a_common_word_takes_only_the_namespaces_at_their_positions(world: World) -> None:
    client = world.acme.client
    _put(client, ("users", "alice", "prefs"), ("users", "prefs"), ("prefs", "shared"), ("docs", "prefs"))

    body = {"user_id": "prefs", "legal_basis": "gdpr_art_17"}
    approve_erasure(
        request_id=client.post("/api/v1/erasure-requests", body, format="json").json()["id"], decided_by="x"
    )

    assert sorted(_namespaces(client)) == [["docs", "prefs"], ["users", "alice", "prefs"]]


@pytest.mark.parametrize("user_id", ["users", "memories"])
def test_a_person_whose_id_is_a_label_of_the_namespaces_takes_none_of_the_people_below_it(
    world: World, user_id: str
) -> None:
    client = world.acme.client
    everyone = [("users", "alice"), ("users", "alice", "prefs"), ("memories", "bob"), ("users", "bob", "memories")]
    _put(client, *everyone, (user_id,))

    body = {"user_id": user_id, "legal_basis": "gdpr_art_17"}
    person = scope.Person(tenant=world.acme.tenant, user_id=user_id)
    # ("users", x, ...) is x's by the more specific template, whatever x is.
    assert person.store_namespaces() == [[user_id]]
    approve_erasure(
        request_id=client.post("/api/v1/erasure-requests", body, format="json").json()["id"], decided_by="x"
    )

    assert sorted(_namespaces(client)) == sorted(map(list, everyone))


@override_settings(ERASURE_STORE_NAMESPACES=["people.{user_id}", "people.team.{user_id}"])
def test_the_most_specific_namespace_template_decides_whose_a_namespace_is(world: World) -> None:
    client = world.acme.client
    _put(client, ("people", "team"), ("people", "team", "bob"), ("people", "team", "bob", "notes"), ("people", "ann"))

    team = scope.Person(tenant=world.acme.tenant, user_id="team")
    bob = scope.Person(tenant=world.acme.tenant, user_id="bob")

    assert team.store_namespaces() == [["people", "team"]]
    assert bob.store_namespaces() == [["people", "team", "bob"], ["people", "team", "bob", "notes"]]


@override_settings(ERASURE_STORE_NAMESPACES=["tenants.acme.people.{user_id}"])
def test_the_namespaces_erasure_covers_are_configurable(world: World) -> None:
    client = world.acme.client
    _put(client, ("tenants", "acme", "people", "u-9"), ("tenants", "acme", "people", "u-9", "notes"), ("users", "u-9"))

    body = {"user_id": "u-9", "legal_basis": "gdpr_art_17"}
    approve_erasure(
        request_id=client.post("/api/v1/erasure-requests", body, format="json").json()["id"], decided_by="x"
    )

    assert _namespaces(client) == [["users", "u-9"]]


def _thread_of(world: World, thread_id: str, user_id: str) -> None:
    checkpoint = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"card": 1}},
        "blobs": [{"channel": "card", "version": "1", "type": "json", "blob": B64}],
        "user_id": user_id,
    }
    response = world.acme.client.post(f"/api/v1/langgraph/threads/{thread_id}/checkpoints", checkpoint, format="json")
    assert response.status_code == 201, response.json()


def test_a_thread_is_not_copied_into_another_persons_thread_where_their_erasure_would_leave_it_behind(
    world: World,
) -> None:
    _thread_of(world, "lg-alice", "alice")
    _thread_of(world, "lg-bob", "bob")
    bob = AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-bob")

    refused = world.acme.client.post(
        "/api/v1/langgraph/threads/lg-alice/copy", {"target_thread_id": "lg-bob"}, format="json"
    )
    copied = world.acme.client.post(
        "/api/v1/langgraph/threads/lg-alice/copy", {"target_thread_id": "lg-alice-2"}, format="json"
    )

    assert refused.status_code == 409, refused.json()
    assert refused.json()["error"]["details"] == {"thread_id": "lg-alice", "target_thread_id": "lg-bob"}
    assert ThreadCheckpoint.objects.filter(session=bob).count() == 1
    assert ChannelBlob.objects.filter(session=bob).count() == 1
    assert copied.status_code == 201 and copied.json() == {"count": 1}
    assert AgentSession.objects.get(tenant=world.acme.tenant, session_id="lg-alice-2").user_id == "alice"
