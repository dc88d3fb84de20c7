"""A write retried with its Idempotency-Key after its person's erasure is a 410 and stores nothing of theirs again.

Before the purge the person's rows refuse the retry; after it, the erased markers that replace their records in
Redis do, and for memory creates (whose keys Postgres keeps, so that a retry outlives Redis) the request keys the
purge kept, as keyed hashes, for the idempotency lifetime.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance_app.models import ErasureRequest
from compliance_app.tests.people import erased, postgres_rows_containing
from conftest import World
from langgraph_app.models import ThreadCheckpoint
from memories_app import erased_keys
from memories_app.models import ErasedRequestKey, Memory, ProfileFactOutbox, UserProfile
from memories_app.tasks import drop_expired_erased_keys
from memory_admin.api.idempotency import stored_key
from memory_admin.celery import app
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event

pytestmark = pytest.mark.django_db

ALICE = "alice-rt"
MEMORY = {"scope": "user", "user_id": ALICE, "content": "ALICE-MARK has diabetes."}
OTHERS = {"scope": "user", "user_id": "bob-rt", "content": "bob likes tea"}


def _erase(world: World, user_id: str, django_capture_on_commit_callbacks: Any) -> ErasureRequest:
    request = erased(world, user_id, django_capture_on_commit_callbacks)
    assert request.status == "verified", request.verification
    return request


def _create(world: World, key: str) -> Any:
    return world.acme.client.post("/api/v1/memories", MEMORY, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _batch(world: World, memories: list[dict[str, Any]], key: str) -> Any:
    body = {"memories": memories}
    return world.acme.client.post("/api/v1/memories/batch", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _alive_of_alice() -> list[str]:
    return list(Memory.objects.alive().filter(user_id=ALICE).values_list("content", flat=True))


@pytest.mark.parametrize("redis_lost", [False, True], ids=["redis-kept", "redis-lost"])
def test_a_memory_create_retried_after_its_owner_was_erased_and_purged_is_a_410_and_stores_nothing(
    world: World, django_capture_on_commit_callbacks: Any, redis_lost: bool
) -> None:
    assert _create(world, "k-alice").status_code == 201
    assert _batch(world, [MEMORY, {**MEMORY, "content": "ALICE-MARK takes insulin."}], "k-alice-b").status_code == 201
    _erase(world, ALICE, django_capture_on_commit_callbacks)
    if redis_lost:
        redis_client().flushall()

    single = _create(world, "k-alice")
    batch = _batch(world, [MEMORY, {**MEMORY, "content": "ALICE-MARK takes insulin."}], "k-alice-b")

    assert (single.status_code, batch.status_code) == (410, 410)
    assert single.json()["error"]["code"] == "erased"
    assert _alive_of_alice() == []
    assert not Memory.objects.exists()


@pytest.mark.parametrize("redis_lost", [False, True], ids=["redis-kept", "redis-lost"])
def test_a_batch_retried_after_one_of_its_owners_was_erased_is_a_410_and_keeps_the_others_memory_once(
    world: World, django_capture_on_commit_callbacks: Any, redis_lost: bool
) -> None:
    assert _batch(world, [MEMORY, OTHERS], "k-mixed").status_code == 201
    _erase(world, ALICE, django_capture_on_commit_callbacks)
    if redis_lost:
        redis_client().flushall()

    retry = _batch(world, [MEMORY, OTHERS], "k-mixed")

    # As between approval and purge: it used to answer 201 with bob's memory alone.
    assert retry.status_code == 410
    assert _alive_of_alice() == []
    assert list(Memory.objects.values_list("user_id", flat=True)) == ["bob-rt"]


def test_retries_of_the_persons_session_checkpoint_and_profile_writes_are_410s_and_store_nothing_again(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    client = world.acme.client
    blob = base64.b64encode(json.dumps("ALICE-MARK chose the aisle").encode()).decode()
    thread = {
        "checkpoint_id": "1f0-0001",
        "checkpoint": {"v": 4, "ts": "2026-01-01T00:00:00+00:00", "channel_versions": {"seat": 1}},
        "blobs": [{"channel": "seat", "version": "1", "type": "json", "blob": blob}],
        "user_id": ALICE,
    }
    say = {"messages": [{"role": "user", "content": "ALICE-MARK my card ends 4242"}]}
    writes = [
        ("post", "/api/v1/sessions", {"id": "alice-rt-s1", "user_id": ALICE, "metadata": {"note": "ALICE-MARK"}}),
        ("post", "/api/v1/sessions/alice-rt-s1/context/messages", say),
        ("post", "/api/v1/sessions/alice-rt-s1/checkpoints", {"node_id": "n1", "state": {"note": "ALICE-MARK"}}),
        ("post", "/api/v1/langgraph/threads/alice-rt-t1/checkpoints", thread),
        ("patch", f"/api/v1/users/{ALICE}/profile", {"facts": {"health": "ALICE-MARK has diabetes"}}),
    ]
    for index, (method, path, body) in enumerate(writes):
        first = getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=f"w{index}")
        assert first.status_code in (200, 201), first.content
    _erase(world, ALICE, django_capture_on_commit_callbacks)

    retries = [
        getattr(client, method)(path, body, format="json", HTTP_IDEMPOTENCY_KEY=f"w{index}")
        for index, (method, path, body) in enumerate(writes)
    ]

    # They ran again: a session with its metadata, its events and checkpoints, and a profile fact came back.
    assert [retry.status_code for retry in retries] == [410] * len(writes)
    assert not AgentSession.all_objects.exists() and not Event.objects.exists()
    assert not ThreadCheckpoint.objects.exists()
    assert not UserProfile.objects.exists() and not ProfileFactOutbox.objects.exists()
    assert postgres_rows_containing("ALICE-MARK") == {}


def test_what_is_kept_of_the_erased_requests_names_no_one_and_lasts_the_idempotency_lifetime(
    world: World, django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    settings.IDEMPOTENCY_TTL_SECONDS = 3600
    raw_key = f"create-for-{ALICE}"
    assert _create(world, raw_key).status_code == 201

    _erase(world, ALICE, django_capture_on_commit_callbacks)

    kept = ErasedRequestKey.objects.get()
    assert abs((kept.expires_at - timezone.now()) - timedelta(hours=1)) < timedelta(minutes=1)
    key = stored_key("POST", "/api/v1/memories", raw_key) or ""  # an empty trace fails the check below
    for trace in (ALICE, raw_key, key):
        assert trace and postgres_rows_containing(trace) == {}
    for record in redis_client().scan_iter(match="mem:idem:*"):
        assert ALICE.encode() not in (redis_client().get(record) or b"")
        assert redis_client().ttl(record) > 0

    assert erased_keys.is_erased(world.acme.tenant.pk, key)
    ErasedRequestKey.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert not erased_keys.is_erased(world.acme.tenant.pk, key)
    assert drop_expired_erased_keys() == 1
    assert not ErasedRequestKey.objects.exists()
    schedules = {entry["task"]: entry["schedule"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert drop_expired_erased_keys.name in app.tasks and schedules[drop_expired_erased_keys.name] <= 3600


def test_a_keyed_create_looks_for_kept_keys_only_while_its_tenant_has_some(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    assert _create(world, "k-first").status_code == 201  # learns that the tenant has none

    with CaptureQueriesContext(connection) as queries:
        assert _batch(world, [OTHERS], "k-second").status_code == 201
    table = ErasedRequestKey._meta.db_table
    assert not [query["sql"] for query in queries if table in query["sql"]]

    _erase(world, ALICE, django_capture_on_commit_callbacks)  # keeps k-first's key, and tells every process
    with CaptureQueriesContext(connection) as queries:
        assert _batch(world, [OTHERS], "k-third").status_code == 201
    assert [query["sql"] for query in queries if table in query["sql"]]
