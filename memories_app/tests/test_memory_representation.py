"""Memories are rendered by a plain function on the hot paths (search, recall, writes); MemorySerializer is the
documented shape. The two must agree field for field, whatever state a memory is in."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from memories_app.api.serializers import MemorySerializer, represent_memory
from memories_app.models import Memory
from memories_app.tests.conftest import create, make_session


def test_the_plain_rendering_equals_the_documented_serializer_for_every_kind_of_memory(world):
    session = make_session(world, user_id="alice", session_id="s-repr")
    created = [
        create(world.acme.client, scope="global", content="Shared fact."),
        create(world.acme.client, scope="user", user_id="alice", content="Likes tea.", metadata={"a": {"b": [1]}}),
        create(world.acme.client, scope="session", user_id="alice", session_id="s-repr", content="Said hello."),
    ]
    assert [response.status_code for response in created] == [201, 201, 201]
    # One memory long unused and often read: a decayed score and an eviction candidate.
    long_ago = timezone.now() - timedelta(days=400, microseconds=123)
    Memory.objects.filter(pk=created[1].json()["id"]).update(
        access_count=7, last_accessed_at=long_ago, created_at=long_ago, updated_at=long_ago
    )
    now = timezone.now()

    memories = list(Memory.objects.filter(tenant=world.acme.tenant).select_related("session").order_by("created_at"))
    assert len(memories) == 3 and memories[2].session == session

    for memory in memories:
        documented = dict(MemorySerializer(memory, context={"now": now}).data)
        assert represent_memory(memory, now=now) == documented
    assert any(dict(MemorySerializer(m, context={"now": now}).data)["eviction_candidate"] for m in memories)


def test_search_results_carry_the_same_rendering_as_a_read_of_the_memory(world):
    memory_id = create(world.acme.client, scope="user", user_id="alice", content="Alice likes green tea.").json()["id"]

    found = world.acme.client.post(
        "/api/v1/memories/search", {"query": "green tea", "user_id": "alice"}, format="json"
    ).json()["results"][0]["memory"]
    read = world.acme.client.get(f"/api/v1/memories/{memory_id}").json()

    assert found["id"] == memory_id
    volatile = {"decay_score", "access_count", "last_accessed_at"}  # a read counts as an access, async
    assert {k: v for k, v in found.items() if k not in volatile} == {k: v for k, v in read.items() if k not in volatile}
