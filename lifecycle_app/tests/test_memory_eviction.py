"""Memory decay eviction with a grace period: only candidates whose grace is over are deleted; a candidate read
again in time is forgiven; profile facts are never evicted; an eviction reaches the live pages as a delete does;
deleted rows are purged later."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.lifetimes import eviction_for
from lifecycle_app.models import EvictionCandidate
from lifecycle_app.services import set_retention_policy
from memories_app.models import Memory, Scope, Source
from memories_app.services import NewMemory, create_memory, update_memory
from memory_admin.health import redis_client
from memory_admin.live import channel_name, tenant_group
from tests.live import drain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _policy(settings) -> None:
    settings.MEMORY_DECAY_HALF_LIFE_DAYS = 30
    settings.MEMORY_EVICTION_THRESHOLD = 0.1
    settings.MEMORY_EVICTION_GRACE_DAYS = 7
    settings.MEMORY_PURGE_AFTER_HOURS = 24


def memory(world: World, text: str, *, idle_days: int, source: str = Source.API) -> Memory:
    created = create_memory(tenant=world.acme.tenant, item=NewMemory(scope=Scope.USER, content=text, user_id="u-1"))
    idle_since = timezone.now() - timedelta(days=idle_days)
    Memory.objects.filter(pk=created.pk).update(
        created_at=idle_since, updated_at=idle_since, last_accessed_at=None, source=source
    )
    return Memory.objects.get(pk=created.pk)


def mark(item: Memory, *, days_ago: int) -> None:
    EvictionCandidate.objects.create(
        memory=item, tenant_id=item.tenant_id, marked_at=timezone.now() - timedelta(days=days_ago), score=0.01
    )


def alive(item: Memory) -> bool:
    return Memory.objects.filter(pk=item.pk, deleted_at__isnull=True).exists()


def test_eviction_removes_only_candidates_past_their_grace_period(world: World) -> None:
    past_grace = memory(world, "stale and marked long ago", idle_days=200)
    in_grace = memory(world, "stale and marked yesterday", idle_days=200)
    newly_stale = memory(world, "stale, never marked", idle_days=200)
    fresh = memory(world, "read last week", idle_days=7)
    mark(past_grace, days_ago=8)
    mark(in_grace, days_ago=1)
    threshold = eviction_for(world.acme.tenant.pk).threshold
    assert newly_stale.is_eviction_candidate(threshold=threshold) and not fresh.is_eviction_candidate(
        threshold=threshold
    )

    run = jobs.evict_memories(dry_run=False, triggered_by="manual")

    assert not alive(past_grace)
    assert alive(in_grace) and alive(newly_stale) and alive(fresh)
    assert set(EvictionCandidate.objects.values_list("memory_id", flat=True)) == {in_grace.pk, newly_stale.pk}
    assert run.counts == {"forgiven": 0, "marked": 1, "evicted": 1}


def test_an_evicted_memory_is_announced_as_deleted_to_its_tenants_live_pages(
    world: World, django_capture_on_commit_callbacks
) -> None:
    evicted = memory(world, "stale and marked long ago", idle_days=200)
    kept = memory(world, "stale and marked yesterday", idle_days=200)
    mark(evicted, days_ago=8)
    mark(kept, days_ago=1)
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))

    with django_capture_on_commit_callbacks(execute=True):
        jobs.evict_memories(dry_run=False, triggered_by="manual")

    assert not alive(evicted) and alive(kept)
    announced = [(m["type"], m["tenant"], m["memory"]) for m in drain(feed, 2, timeout=1)]
    assert announced == [("memory.deleted", str(world.acme.tenant.pk), str(evicted.pk))]


def test_a_candidate_read_again_before_its_grace_ends_is_forgiven(world: World) -> None:
    item = memory(world, "stale but then recalled", idle_days=200)
    mark(item, days_ago=30)
    Memory.objects.filter(pk=item.pk).update(last_accessed_at=timezone.now(), access_count=3)

    run = jobs.evict_memories(dry_run=False, triggered_by="manual")

    assert alive(item) and not EvictionCandidate.objects.exists()
    assert run.counts["forgiven"] == 1 and run.counts["evicted"] == 0


def test_a_memory_rewritten_today_is_neither_marked_nor_evicted_a_grace_period_later(world: World) -> None:
    # The decay weight counted from the last read or the creation only: a memory the agent corrected today was
    # marked at once as untouched for 200 days, and deleted a week later.
    item = memory(world, "Gina is vegetarian", idle_days=200)
    update_memory(
        tenant=world.acme.tenant,
        memory_id=item.pk,
        actor="agent",
        expected_versions=None,
        content="Gina is vegan since this week",
    )
    rewritten = Memory.objects.get(pk=item.pk)
    assert not rewritten.is_eviction_candidate(threshold=eviction_for(world.acme.tenant.pk).threshold)

    today = jobs.evict_memories(dry_run=False, triggered_by="manual")
    a_week_later = jobs.evict_memories(
        dry_run=False, triggered_by="manual", now=timezone.now() + timedelta(days=7, minutes=1)
    )

    assert today.counts == {"forgiven": 0, "marked": 0, "evicted": 0}
    assert a_week_later.counts == {"forgiven": 0, "marked": 0, "evicted": 0}
    assert alive(rewritten) and not EvictionCandidate.objects.exists()


def test_profile_facts_are_never_candidates(world: World) -> None:
    fact = memory(world, "prefers tea", idle_days=400, source=Source.PROFILE)

    jobs.evict_memories(dry_run=False, triggered_by="manual")

    assert alive(fact) and not EvictionCandidate.objects.exists()


def test_the_dry_run_counts_without_marking_or_deleting(world: World) -> None:
    past_grace = memory(world, "old", idle_days=200)
    mark(past_grace, days_ago=10)
    memory(world, "old too", idle_days=200)

    preview = jobs.evict_memories(dry_run=True, triggered_by="manual")

    assert alive(past_grace) and EvictionCandidate.objects.count() == 1
    assert preview.counts == {"would_mark": 1, "would_evict": 1, "candidates": 1}


def test_evicted_memories_are_purged_after_the_purge_delay(world: World) -> None:
    gone_long_ago = memory(world, "deleted two days ago", idle_days=1)
    gone_just_now = memory(world, "deleted an hour ago", idle_days=1)
    Memory.objects.filter(pk=gone_long_ago.pk).update(deleted_at=timezone.now() - timedelta(days=2))
    Memory.objects.filter(pk=gone_just_now.pk).update(deleted_at=timezone.now() - timedelta(hours=1))

    run = jobs.purge_memories(dry_run=False, triggered_by="manual")

    assert not Memory.objects.filter(pk=gone_long_ago.pk).exists()
    assert Memory.objects.filter(pk=gone_just_now.pk).exists()
    assert run.counts["memories"] == 1


def test_the_eviction_flag_the_api_shows_follows_the_tenants_policy_not_the_global_default(
    world: World, django_capture_on_commit_callbacks: Any
) -> None:
    week_old = memory(world, "read a week ago", idle_days=7)  # decay ln 2 * 2^(-7/30), about 0.59
    long_idle = memory(world, "idle for months", idle_days=200)
    profile_fact = memory(world, "a profile fact", idle_days=200, source=Source.PROFILE)

    def flags() -> list[bool]:
        found = []
        for item in (week_old, long_idle, profile_fact):
            response = world.acme.client.get(f"/api/v1/memories/{item.pk}")
            assert response.status_code == 200, response.content
            found.append(response.json()["eviction_candidate"])
        return found

    assert flags() == [False, True, False]  # the default threshold, 0.1; a profile fact is never evicted
    with django_capture_on_commit_callbacks(execute=True):
        set_retention_policy(tenant=world.acme.tenant, values={"memory_eviction_threshold": 0.65}, updated_by="t")
    assert flags() == [True, True, False]
    with django_capture_on_commit_callbacks(execute=True):
        set_retention_policy(tenant=world.acme.tenant, values={"memory_eviction_enabled": False}, updated_by="t")
    assert flags() == [False, False, False]
