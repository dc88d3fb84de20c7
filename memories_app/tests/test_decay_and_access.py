from __future__ import annotations

from datetime import timedelta

from django.test import override_settings
from django.utils import timezone

from memories_app import background
from memories_app.models import Memory
from memories_app.tests.conftest import create


def test_search_hits_are_counted_and_flushed_to_access_count(world):
    memory = create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.").json()
    for _ in range(3):
        world.acme.client.post("/api/v1/memories/search", {"query": "tea", "user_id": "alice"}, format="json")
    assert Memory.objects.get(pk=memory["id"]).access_count == 0  # counted in Redis, not on the search path

    background.flush_access_stats()

    stored = Memory.objects.get(pk=memory["id"])
    assert stored.access_count == 3 and stored.last_accessed_at is not None
    assert background.flush_access_stats() == 0


def test_decay_score_halves_after_one_half_life_without_access(world):
    long_ago = timezone.now() - timedelta(days=30)
    memory = Memory(access_count=0, created_at=long_ago, updated_at=long_ago)

    with override_settings(MEMORY_DECAY_HALF_LIFE_DAYS=30):
        assert abs(memory.decay_score() - 0.6931 / 2) < 0.001


def test_more_accesses_give_a_higher_decay_score(world):
    now = timezone.now()

    assert Memory(access_count=10, created_at=now).decay_score(now=now) > Memory(
        access_count=1, created_at=now
    ).decay_score(now=now)


def test_eviction_removes_only_memories_below_the_threshold_and_keeps_profile_facts(world):
    old = timezone.now() - timedelta(days=365)
    stale = create(world.acme.client, scope="user", user_id="alice", content="Old news.").json()
    fresh = create(world.acme.client, scope="user", user_id="alice", content="Fresh news.").json()
    Memory.objects.filter(pk=stale["id"]).update(created_at=old, updated_at=old)
    Memory.objects.filter(pk=fresh["id"]).update(
        source="profile", source_key="profile:x", created_at=old, updated_at=old
    )
    api_view = world.acme.client.get(f"/api/v1/memories/{stale['id']}").json()
    assert api_view["eviction_candidate"] is True

    evicted = background.evict_decayed()

    assert evicted == 1
    assert Memory.objects.get(pk=stale["id"]).deleted_at is not None
    assert Memory.objects.get(pk=fresh["id"]).deleted_at is None


@override_settings(MEMORY_PURGE_AFTER_HOURS=24)
def test_purge_removes_rows_deleted_longer_ago_than_the_grace_period(world):
    gone = create(world.acme.client, scope="user", user_id="alice", content="Gone.").json()
    recent = create(world.acme.client, scope="user", user_id="alice", content="Recently deleted.").json()
    Memory.objects.filter(pk=gone["id"]).update(deleted_at=timezone.now() - timedelta(hours=25))
    Memory.objects.filter(pk=recent["id"]).update(deleted_at=timezone.now())

    assert background.purge_deleted() == 1

    assert not Memory.objects.filter(pk=gone["id"]).exists()
    assert Memory.objects.filter(pk=recent["id"]).exists()


@override_settings(MEMORY_PURGE_AFTER_HOURS=24)
def test_the_memories_own_purge_task_keeps_a_keyed_memory_for_a_retry_of_its_create(world):
    # The task beat no longer schedules (lifecycle's purge runs instead) may still be called: it keeps what a
    # retried create finds by its Idempotency-Key, as that purge does.
    keyed = world.acme.client.post(
        "/api/v1/memories",
        {"scope": "user", "user_id": "alice", "content": "Keyed."},
        format="json",
        HTTP_IDEMPOTENCY_KEY="remember-1",
    ).json()
    Memory.objects.filter(pk=keyed["id"]).update(deleted_at=timezone.now() - timedelta(hours=25))

    assert background.purge_deleted() == 0
    assert Memory.objects.filter(pk=keyed["id"]).exists()
