"""The memory purge in short steps: step after step it removes every memory past the purge delay (and, stored with
an Idempotency-Key, past its tenant's idempotency lifetime since creation) and nothing else; the memories kept
for a retry or the purge delay stay however many steps run, and no step reads them; its dry run counts what the
steps remove; two workers at once remove each memory once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs, selectors
from lifecycle_app.models import JobRun, RunStatus
from lifecycle_app.purge import purge_memories_step
from lifecycle_app.services import set_retention_policy
from memories_app.models import Memory, Scope
from memories_app.services import NewMemory, create_memories
from tenants_app.models import Tenant
from tests.concurrency import at_once


@pytest.fixture(autouse=True)
def _policy(settings: Any) -> None:
    settings.EMBEDDING_PROVIDER = "hashing"
    settings.MEMORY_PURGE_AFTER_HOURS = 24
    set_retention_policy(tenant=None, values={"idempotency_ttl_seconds": 7 * 86400}, updated_by="test")


def memories(
    tenant: Tenant, count: int, *, key: str | None, created_days_ago: float, deleted_days_ago: float | None
) -> set[Any]:
    """`count` memories of the tenant, stored with Idempotency-Key `key` (None: without one), created and deleted
    that long ago (None: not deleted); their ids."""
    items = [NewMemory(scope=Scope.USER, content=f"fact {n}", user_id="u-1") for n in range(count)]
    ids = [memory.pk for memory in create_memories(tenant=tenant, items=items, idempotency_key=key)]
    now = timezone.now()
    deleted_at = None if deleted_days_ago is None else now - timedelta(days=deleted_days_ago)
    Memory.objects.filter(pk__in=ids).update(created_at=now - timedelta(days=created_days_ago), deleted_at=deleted_at)
    return set(ids)


def a_mixed_world(world: World) -> tuple[set[Any], set[Any]]:
    """(the memories the purge removes now, those it keeps) over two tenants: acme honours a retry for an hour,
    globex for the global week."""
    acme, globex = world.acme.tenant, world.outsider.tenant
    set_retention_policy(tenant=acme, values={"idempotency_ttl_seconds": 3600}, updated_by="test")
    purged = (
        memories(acme, 3, key=None, created_days_ago=9, deleted_days_ago=2)
        | memories(acme, 3, key="acme-old", created_days_ago=2, deleted_days_ago=2)
        | memories(globex, 2, key="globex-old", created_days_ago=8, deleted_days_ago=2)
        | memories(globex, 1, key=None, created_days_ago=2, deleted_days_ago=1.5)
    )
    kept = (
        # Kept for a retry of their create: globex's week is not over (deleted before and after the others).
        memories(globex, 3, key="globex-new", created_days_ago=6, deleted_days_ago=5)
        | memories(globex, 2, key="globex-newer", created_days_ago=2, deleted_days_ago=1.1)
        # Deleted within the purge delay, keyed or not, and not deleted at all.
        | memories(acme, 1, key="acme-recent", created_days_ago=30, deleted_days_ago=0.5)
        | memories(globex, 1, key=None, created_days_ago=30, deleted_days_ago=0.5)
        | memories(acme, 2, key=None, created_days_ago=30, deleted_days_ago=None)
        | memories(globex, 1, key="globex-alive", created_days_ago=30, deleted_days_ago=None)
    )
    return purged, kept


@pytest.mark.django_db
def test_purge_steps_remove_every_purgeable_memory_and_keep_the_others_however_many_steps_run(world: World) -> None:
    purged, kept = a_mixed_world(world)
    now = timezone.now()
    cutoff = selectors.purge_cutoff(now)
    preview = selectors.preview_memory_purge(now)

    removed = [purge_memories_step(cutoff=cutoff, limit=2, now=now) for _ in range(7)]

    assert preview.counts == {"memories": len(purged)} == {"memories": 9}
    assert removed == [2, 2, 2, 2, 1, 0, 0]
    assert set(Memory.objects.values_list("pk", flat=True)) == kept
    assert selectors.preview_memory_purge(now).counts == {"memories": 0}


@pytest.mark.django_db
def test_the_purge_job_and_its_dry_run_agree_over_keyed_and_unkeyed_memories(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 4
    purged, kept = a_mixed_world(world)

    preview = jobs.purge_memories(dry_run=True, triggered_by="manual")
    run = jobs.purge_memories(dry_run=False, triggered_by="manual")

    assert preview.counts["memories"] == run.counts["memories"] == len(purged)
    assert set(Memory.objects.values_list("pk", flat=True)) == kept


@pytest.mark.django_db(transaction=True)
def test_two_purge_runs_remove_each_keyed_memory_past_its_lifetime_once(world: World, settings) -> None:
    settings.LIFECYCLE_BATCH_SIZE = 7
    for tenant in (world.acme.tenant, world.outsider.tenant):
        for n in range(5):
            memories(tenant, 5, key=f"old-{n}", created_days_ago=8, deleted_days_ago=3)
    kept = memories(world.acme.tenant, 3, key="new", created_days_ago=2, deleted_days_ago=2)

    runs = at_once(*[lambda: jobs.purge_memories(dry_run=False, triggered_by="worker")] * 2)

    assert all(isinstance(run, JobRun) and run.status == RunStatus.SUCCEEDED for run in runs), runs
    assert sum(run.counts["memories"] for run in runs) == 50
    assert set(Memory.objects.values_list("pk", flat=True)) == kept


def memory_rows_read() -> int:
    """Rows of the memory table this transaction read so far (a sequential scan's and an index scan's)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables "
            "WHERE relid = %s::regclass",
            [Memory._meta.db_table],
        )
        return int(cursor.fetchone()[0])


@pytest.mark.django_db
def test_a_purge_step_reads_none_of_the_memories_kept_for_a_retry(world: World) -> None:
    acme, globex = world.acme.tenant, world.outsider.tenant
    # Kept for a retry (globex's week is not over), deleted before and after the purgeable ones.
    kept = memories(globex, 200, key="new", created_days_ago=6, deleted_days_ago=5)
    kept |= memories(globex, 200, key="newer", created_days_ago=1.5, deleted_days_ago=1.1)
    purged = memories(acme, 5, key=None, created_days_ago=9, deleted_days_ago=2)
    purged |= memories(acme, 5, key="old", created_days_ago=8, deleted_days_ago=2)
    now = timezone.now()
    cutoff = selectors.purge_cutoff(now)

    reads = []
    for _ in range(3):
        before = memory_rows_read()
        reads.append((purge_memories_step(cutoff=cutoff, limit=5, now=now), memory_rows_read() - before))

    assert [removed for removed, _ in reads] == [5, 5, 0]
    # A few reads of each memory it removes (to pick, collect and delete it), none of the 400 it keeps: a step
    # costs the same however many are kept, the last (empty) one too.
    assert all(read <= 4 * removed for removed, read in reads), reads
    assert set(Memory.objects.values_list("pk", flat=True)) == kept
