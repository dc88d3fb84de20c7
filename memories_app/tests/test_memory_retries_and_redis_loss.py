"""A memory create retried with its Idempotency-Key stores once, also when Redis lost the key's record of the
first answer in between (that record is written after the commit: a worker killed between the two leaves only
Postgres knowing the memory was stored)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import World
from memories_app.models import Memory
from memories_app.services import NewMemory, create_memories, hide_owner
from memory_admin.health import redis_client
from tests.concurrency import at_once

MEMORY = {"scope": "user", "user_id": "alice", "content": "Alice pays by card."}
BATCH = {"memories": [MEMORY, {"scope": "global", "content": "Refunds take five days."}]}


def _create(world: World, body: dict[str, Any], key: str) -> Any:
    return world.acme.client.post("/api/v1/memories", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def _batch(world: World, body: dict[str, Any], key: str) -> Any:
    return world.acme.client.post("/api/v1/memories/batch", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_create_retried_after_redis_lost_its_record_returns_the_first_memory(world: World) -> None:
    first = _create(world, MEMORY, "m-1")

    redis_client().flushall()
    retry = _create(world, MEMORY, "m-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert retry["Location"] == first["Location"]
    assert Memory.objects.count() == 1


@pytest.mark.django_db
def test_a_batch_retried_after_redis_lost_its_record_returns_the_first_memories(world: World) -> None:
    first = _batch(world, BATCH, "b-1")

    redis_client().flushall()
    retry = _batch(world, BATCH, "b-1")

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.json() == first.json()
    assert Memory.objects.count() == 2


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422_after_redis_lost_its_record(world: World) -> None:
    _create(world, MEMORY, "m-2")
    _batch(world, BATCH, "b-2")

    redis_client().flushall()
    other_memory = _create(world, {**MEMORY, "content": "Alice pays in cash."}, "m-2")
    fewer_memories = _batch(world, {"memories": BATCH["memories"][:1]}, "b-2")
    more_memories = _batch(world, {"memories": [*BATCH["memories"], MEMORY]}, "b-2")

    assert [other_memory.status_code, fewer_memories.status_code, more_memories.status_code] == [422, 422, 422]
    assert other_memory.json()["error"]["details"] == {"header": "Idempotency-Key"}
    assert Memory.objects.count() == 3


@pytest.mark.django_db
def test_a_retry_after_redis_lost_its_record_finds_the_memory_changed_since(world: World) -> None:
    first = _create(world, MEMORY, "m-3").json()
    world.acme.client.patch(f"/api/v1/memories/{first['id']}", {"content": "Alice pays by phone."}, format="json")

    redis_client().flushall()
    retry = _create(world, MEMORY, "m-3")

    assert retry.status_code == 201
    assert (retry.json()["id"], retry.json()["content"], retry.json()["version"]) == (
        first["id"],
        "Alice pays by phone.",
        2,
    )
    assert Memory.objects.count() == 1


@pytest.mark.django_db
def test_a_retry_after_the_owner_was_erased_is_a_410_and_stores_nothing(world: World) -> None:
    _create(world, MEMORY, "m-4")
    hide_owner(tenant=world.acme.tenant, user_id="alice")  # what approving alice's erasure does

    redis_client().flushall()
    retry = _create(world, MEMORY, "m-4")

    assert retry.status_code == 410
    assert Memory.objects.count() == 1


@pytest.mark.django_db
def test_one_key_on_another_tenant_or_endpoint_is_another_request(world: World) -> None:
    _create(world, MEMORY, "m-5")
    world.outsider.client.post("/api/v1/memories", MEMORY, format="json", HTTP_IDEMPOTENCY_KEY="m-5")
    _batch(world, {"memories": [MEMORY]}, "m-5")

    assert Memory.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_creates_with_one_key_store_once_without_redis(world: World) -> None:
    items = [NewMemory(scope="user", user_id="alice", content=f"fact {index}") for index in range(3)]

    def create() -> list[str]:
        return [
            str(memory.pk) for memory in create_memories(tenant=world.acme.tenant, items=items, idempotency_key="k")
        ]

    first, second = at_once(create, create)

    assert first == second
    assert Memory.objects.count() == 3
