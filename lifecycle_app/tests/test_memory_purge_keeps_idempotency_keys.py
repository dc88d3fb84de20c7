"""The memory purge keeps a deleted memory stored with an Idempotency-Key (deleted, hidden) until its tenant's
idempotency lifetime since its creation is over: a retried create with Redis lost gets the same answer as before
the purge instead of storing the memory again. Memories eviction deleted go the same way."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.services import set_retention_policy
from memories_app.models import Memory
from memory_admin.health import redis_client

pytestmark = pytest.mark.django_db

BODY = {"scope": "user", "user_id": "alice", "content": "alice pays by card"}


@pytest.fixture(autouse=True)
def _policy(settings: Any) -> None:
    settings.EMBEDDING_PROVIDER = "hashing"
    settings.MEMORY_PURGE_AFTER_HOURS = 24
    set_retention_policy(tenant=None, values={"idempotency_ttl_seconds": 7 * 86400}, updated_by="test")


def create(world: World, key: str) -> Any:
    response = world.acme.client.post("/api/v1/memories", BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 201, response.content
    return response


def deleted(memory_id: str, *, days_ago: int, created_days_ago: int = 0) -> None:
    now = timezone.now()
    Memory.objects.filter(pk=memory_id).update(
        deleted_at=now - timedelta(days=days_ago), created_at=now - timedelta(days=created_days_ago)
    )


def test_a_retried_create_with_redis_lost_after_delete_and_purge_gets_the_first_answer_again(world: World) -> None:
    first = create(world, "mem-1").json()
    assert world.acme.client.delete(f"/api/v1/memories/{first['id']}", HTTP_IDEMPOTENCY_KEY="del-1").status_code == 204
    deleted(first["id"], days_ago=2)  # past the purge delay, inside the key's lifetime
    redis_client().flushall()
    before = world.acme.client.post("/api/v1/memories", BODY, format="json", HTTP_IDEMPOTENCY_KEY="mem-1")

    preview = jobs.purge_memories(dry_run=True, triggered_by="manual")
    run = jobs.purge_memories(dry_run=False, triggered_by="manual")
    redis_client().flushall()  # Redis is a cache: losing it must lose nothing
    after = world.acme.client.post("/api/v1/memories", BODY, format="json", HTTP_IDEMPOTENCY_KEY="mem-1")

    assert preview.counts["memories"] == run.counts["memories"] == 0
    assert (after.status_code, after.json()) == (before.status_code, before.json())
    assert after.json()["id"] == first["id"]
    assert list(map(str, Memory.objects.filter(tenant=world.acme.tenant).values_list("pk", flat=True))) == [first["id"]]
    assert world.acme.client.get("/api/v1/memories", {"user_id": "alice"}).json()["results"] == []


def test_a_keyed_memory_is_purged_once_its_idempotency_lifetime_since_creation_is_over(world: World) -> None:
    keyed = create(world, "mem-1").json()["id"]
    unkeyed = world.acme.client.post("/api/v1/memories", BODY, format="json").json()["id"]
    kept = create(world, "mem-2").json()["id"]
    deleted(keyed, days_ago=2, created_days_ago=8)
    deleted(unkeyed, days_ago=2)
    deleted(kept, days_ago=2, created_days_ago=6)

    run = jobs.purge_memories(dry_run=False, triggered_by="manual")

    assert run.counts["memories"] == 2
    assert list(map(str, Memory.objects.values_list("pk", flat=True))) == [kept]


def test_the_purge_follows_each_tenants_own_idempotency_lifetime(world: World) -> None:
    set_retention_policy(tenant=world.acme.tenant, values={"idempotency_ttl_seconds": 3600}, updated_by="test")
    ours = create(world, "mem-1").json()["id"]
    response = world.outsider.client.post("/api/v1/memories", BODY, format="json", HTTP_IDEMPOTENCY_KEY="mem-1")
    theirs = response.json()["id"]
    deleted(ours, days_ago=2, created_days_ago=2)
    deleted(theirs, days_ago=2, created_days_ago=2)

    run = jobs.purge_memories(dry_run=False, triggered_by="manual")

    # acme honours a retry for an hour; globex has the global week.
    assert run.counts["memories"] == 1
    assert list(map(str, Memory.objects.values_list("pk", flat=True))) == [theirs]


def test_a_memory_eviction_deleted_stays_for_a_retry_of_its_create_until_the_key_lifetime_is_over(
    world: World,
) -> None:
    # A new memory weighs ln 2 (about 0.69): under this threshold it is a candidate at once, evicted at once.
    set_retention_policy(
        tenant=world.acme.tenant,
        values={"memory_eviction_threshold": 0.9, "memory_eviction_grace_days": 0},
        updated_by="test",
    )
    first = create(world, "mem-1").json()
    jobs.evict_memories(dry_run=False, triggered_by="manual")
    jobs.evict_memories(dry_run=False, triggered_by="manual")
    evicted = Memory.objects.get(pk=first["id"])
    assert evicted.deleted_at is not None
    deleted(first["id"], days_ago=2)

    run = jobs.purge_memories(dry_run=False, triggered_by="manual")
    redis_client().flushall()
    retry = world.acme.client.post("/api/v1/memories", BODY, format="json", HTTP_IDEMPOTENCY_KEY="mem-1")

    assert run.counts["memories"] == 0
    assert retry.json()["id"] == first["id"]
    assert Memory.objects.filter(tenant=world.acme.tenant).count() == 1
