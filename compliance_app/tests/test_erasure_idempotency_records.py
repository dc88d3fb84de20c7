"""Which idempotency records are a person's: those of their requests, never another person's that mention them.

A record is theirs when its path names one of their sessions or threads (as a whole path segment) or them
(`/users/<id>/...`), or its response is a resource of theirs. Theirs go into their export, and their erasure
replaces them with markers that hold nothing of them (a retry is a 410); a replay of a read that showed them
among others goes with their erasure only.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from typing import Any
from urllib.parse import quote

import pytest

from compliance_app import services
from compliance_app.models import ErasureRequest
from compliance_app.tasks import build_export, purge_erasure
from compliance_app.tests.people import erased
from conftest import World
from memories_app.models import Memory, PromotionJob
from memory_admin.api.idempotency import ERASED_RECORD
from memory_admin.health import redis_client
from sessions_app.models import Event

pytestmark = pytest.mark.django_db


def _records() -> list[bytes]:
    return list(redis_client().scan_iter(match="mem:idem:*"))


def _erased_markers() -> list[bytes]:
    client = redis_client()
    return [key for key in _records() if client.get(key) == ERASED_RECORD.encode()]


def _put(world: World, namespace: list[str], text: str) -> None:
    ops = {"ops": [{"op": "put", "namespace": namespace, "key": "k", "value": {"text": text}}]}
    assert world.acme.client.post("/api/v1/langgraph/store/batch", ops, format="json").status_code == 200


def test_an_export_holds_the_persons_own_replays_and_none_of_a_search_that_showed_another_person(
    world: World,
) -> None:
    client = world.acme.client
    _put(world, ["users", "alice-x1"], "ALICE-MARK")
    _put(world, ["users", "bob-x1"], "BOB-MARK")
    search = {"ops": [{"op": "search", "namespace_prefix": ["users"]}]}
    assert client.post("/api/v1/langgraph/store/batch", search, format="json", HTTP_IDEMPOTENCY_KEY="st1").json()
    profile = {"facts": {"city": "ALICE-MARK lives in Porto"}}
    assert (
        client.patch("/api/v1/users/alice-x1/profile", profile, format="json", HTTP_IDEMPOTENCY_KEY="p1").status_code
        == 200
    )

    filed = client.post("/api/v1/export-requests", {"user_id": "alice-x1"}, format="json").json()
    build_export(filed["id"])
    archive = client.get(f"/api/v1/export-requests/{filed['id']}/archive")

    with zipfile.ZipFile(io.BytesIO(archive.content)) as files:
        redis_rows = json.loads(files.read("redis.json"))
    assert "BOB-MARK" not in json.dumps(redis_rows) and "bob-x1" not in json.dumps(redis_rows)
    assert [row["value"]["path"] for row in redis_rows] == ["/api/v1/users/alice-x1/profile"]


def test_erasing_a_person_named_in_another_persons_memory_keeps_that_persons_retry_a_replay(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    memory = {
        "scope": "user",
        "user_id": "bob-k",
        "content": "bob met a colleague",
        "metadata": {"colleague": "kate-target"},
    }
    first = client.post("/api/v1/memories", memory, format="json", HTTP_IDEMPOTENCY_KEY="bob-k1")
    assert first.status_code == 201

    erased(world, "kate-target", django_capture_on_commit_callbacks)
    retry = client.post("/api/v1/memories", memory, format="json", HTTP_IDEMPOTENCY_KEY="bob-k1")

    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert Memory.objects.filter(user_id="bob-k").count() == 1


def test_erasing_the_owner_of_a_session_keeps_the_replays_of_a_session_whose_id_starts_the_same(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    for session_id, user_id in (("s-pp", "paula-x"), ("s-pp2", "quinn-x")):
        assert client.post("/api/v1/sessions", {"id": session_id, "user_id": user_id}, format="json").status_code == 201
    promote = {"texts": ["quinn likes tea"]}
    first = client.post("/api/v1/sessions/s-pp2/promote", promote, format="json", HTTP_IDEMPOTENCY_KEY="q1")
    assert first.status_code == 202

    assert erased(world, "paula-x", django_capture_on_commit_callbacks).status == "verified"
    retry = client.post("/api/v1/sessions/s-pp2/promote", promote, format="json", HTTP_IDEMPOTENCY_KEY="q1")

    assert retry.status_code == 202 and retry["Idempotent-Replayed"] == "true"
    assert PromotionJob.objects.filter(session__session_id="s-pp2").count() == 1


def test_erasing_a_person_keeps_the_replays_of_another_persons_session_that_took_up_their_session_id(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    assert client.post("/api/v1/sessions", {"id": "chat-r", "user_id": "alice-r"}, format="json").status_code == 201
    request = services.file_erasure(
        tenant=world.acme.tenant, user_id="alice-r", legal_basis="gdpr_art_17", filed_by="staff:cora"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.approve_erasure(request_id=request.pk, decided_by="staff:ann")
    # Bob's agent uses the erased session's id again, before the purge.
    writes = [
        ("/api/v1/sessions", {"id": "chat-r", "user_id": "bob-r"}),
        ("/api/v1/sessions/chat-r/context/messages", {"messages": [{"role": "user", "content": "hello"}]}),
        ("/api/v1/memories", {"scope": "session", "session_id": "chat-r", "content": "bob likes tea"}),
    ]
    firsts = [
        client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=f"bob-{n}") for n, (path, body) in enumerate(writes)
    ]
    assert [first.status_code for first in firsts] == [201, 201, 201]

    purge_erasure(str(request.pk))
    retries = [
        client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=f"bob-{n}") for n, (path, body) in enumerate(writes)
    ]

    assert ErasureRequest.objects.get(pk=request.pk).status == "verified"
    assert [(retry.status_code, retry.get("Idempotent-Replayed")) for retry in retries] == [(201, "true")] * 3
    assert Event.objects.filter(session__session_id="chat-r").count() == 1
    assert Memory.objects.filter(session__session_id="chat-r").count() == 1


def test_erasing_a_person_removes_the_replays_of_their_langgraph_thread_requests(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    blob = base64.b64encode(b'"vera chose the aisle"').decode()
    checkpoint = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"seat": 1}},
        "blobs": [{"channel": "seat", "version": "1", "type": "json", "blob": blob}],
        "user_id": "vera-lg",
    }
    writes = {
        "checkpoint_id": "1f0-0001",
        "task_id": "t1",
        "writes": [{"channel": "seat", "type": "json", "blob": blob}],
    }
    base = "/api/v1/langgraph/threads/thread-77"
    assert client.post(f"{base}/checkpoints", checkpoint, format="json", HTTP_IDEMPOTENCY_KEY="c1").status_code == 201
    assert client.post(f"{base}/writes", writes, format="json", HTTP_IDEMPOTENCY_KEY="w1").status_code == 200
    assert len(_records()) == 2

    request = erased(world, "vera-lg", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert request.preview["redis_idempotency_records"] == 2
    assert sorted(_records()) == sorted(_erased_markers()) and len(_records()) == 2
    retry = client.post(f"{base}/writes", writes, format="json", HTTP_IDEMPOTENCY_KEY="w1")
    assert retry.status_code == 410 and "Idempotent-Replayed" not in retry


def test_erasing_a_person_drops_the_replay_of_a_search_that_showed_them_and_keeps_the_others_writes(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    _put(world, ["users", "alice-x2"], "ALICE-MARK")
    search = {"ops": [{"op": "search", "namespace_prefix": ["users"]}]}
    assert client.post("/api/v1/langgraph/store/batch", search, format="json", HTTP_IDEMPOTENCY_KEY="st1").json()
    put = {"ops": [{"op": "put", "namespace": ["faq"], "key": "hours", "value": {"text": "9 to 5"}}]}
    assert client.post("/api/v1/langgraph/store/batch", put, format="json", HTTP_IDEMPOTENCY_KEY="put1").json()

    request = erased(world, "alice-x2", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert len(_records()) == 1  # the put: a write that is not about them, replayed on retry
    retry = client.post("/api/v1/langgraph/store/batch", put, format="json", HTTP_IDEMPOTENCY_KEY="put1")
    assert retry["Idempotent-Replayed"] == "true"


def _values_holding(text: str) -> list[bytes]:
    client = redis_client()
    return [key for key in _records() if text.encode() in (client.get(key) or b"")]


def test_erasing_a_person_drops_the_replay_of_a_memory_batch_that_held_one_of_theirs_among_anothers(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    batch = {
        "memories": [
            {"scope": "user", "user_id": "mona-b1", "content": "MONA-MARK has diabetes"},
            {"scope": "user", "user_id": "otto-b1", "content": "otto likes tea"},
        ]
    }
    assert client.post("/api/v1/memories/batch", batch, format="json", HTTP_IDEMPOTENCY_KEY="mb1").status_code == 201

    request = erased(world, "mona-b1", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert _values_holding("MONA-MARK") == []
    retry = client.post("/api/v1/memories/batch", batch, format="json", HTTP_IDEMPOTENCY_KEY="mb1")
    # Run again, it meets otto's memory and the key the purge kept of mona's: as before the purge, a 410.
    assert retry.status_code == 410 and "Idempotent-Replayed" not in retry
    assert list(Memory.objects.values_list("user_id", flat=True)) == ["otto-b1"]


def test_erasing_a_person_drops_the_replay_of_a_store_batch_that_read_their_item_and_wrote_another(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    _put(world, ["users", "mona-b2", "prefs"], "MONA-MARK seat 12A")
    mixed = {
        "ops": [
            {"op": "get", "namespace": ["users", "mona-b2", "prefs"], "key": "k"},
            {"op": "put", "namespace": ["faq"], "key": "hours", "value": {"text": "9 to 5"}},
        ]
    }
    first = client.post("/api/v1/langgraph/store/batch", mixed, format="json", HTTP_IDEMPOTENCY_KEY="sb1")
    assert first.status_code == 200 and "MONA-MARK" in first.content.decode()

    request = erased(world, "mona-b2", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert _values_holding("MONA-MARK") == []
    retry = client.post("/api/v1/langgraph/store/batch", mixed, format="json", HTTP_IDEMPOTENCY_KEY="sb1")
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry
    assert "MONA-MARK" not in retry.content.decode()


def test_a_persons_records_are_not_those_of_a_user_whose_id_continues_theirs_after_a_slash(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    profile = {"facts": {"salary": "WORK-MARK earns 90k"}}
    address = f"/api/v1/users/{quote('kim-s1/work', safe='')}/profile"
    assert client.patch(address, profile, format="json", HTTP_IDEMPOTENCY_KEY="pw").status_code == 200
    memory = {"scope": "user", "user_id": "kim-s1", "content": "kim likes tea"}
    assert client.post("/api/v1/memories", memory, format="json").status_code == 201

    filed = client.post("/api/v1/export-requests", {"user_id": "kim-s1"}, format="json").json()
    build_export(filed["id"])
    with zipfile.ZipFile(io.BytesIO(client.get(f"/api/v1/export-requests/{filed['id']}/archive").content)) as files:
        assert json.loads(files.read("redis.json")) == []
    erased(world, "kim-s1", django_capture_on_commit_callbacks)

    retry = client.patch(address, profile, format="json", HTTP_IDEMPOTENCY_KEY="pw")
    assert retry.status_code == 200 and retry["Idempotent-Replayed"] == "true"


def test_erasing_a_user_whose_id_holds_a_slash_drops_the_replays_of_their_profile(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    address = f"/api/v1/users/{quote('org/alice-s2', safe='')}/profile"
    profile = {"facts": {"city": "ALICE-MARK lives in Porto"}}
    assert client.patch(address, profile, format="json", HTTP_IDEMPOTENCY_KEY="pa").status_code == 200

    request = erased(world, "org/alice-s2", django_capture_on_commit_callbacks)

    assert request.status == "verified", request.verification
    assert _records() == _erased_markers() and len(_records()) == 1
