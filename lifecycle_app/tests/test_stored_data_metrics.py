"""/metrics reads what the durable rows say at scrape time: memory entries by scope and layer, lifecycle job runs
and durations, outbox lag, open erasure requests."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from memories_app.models import ProfileFactOutbox, Scope
from memories_app.services import NewMemory, create_memories
from memory_admin.metrics import forget_scraped_figures

pytestmark = pytest.mark.django_db


def scrape() -> str:
    forget_scraped_figures()  # a fresh read, not the collectors' 15-second cache
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not exported"
    return float(match.group(1))


def test_memory_entries_are_counted_by_scope_and_layer(world: World) -> None:
    create_memories(
        tenant=world.acme.tenant,
        items=[NewMemory(scope=Scope.USER, content=f"fact {n}", user_id="u-1") for n in range(3)]
        + [NewMemory(scope=Scope.GLOBAL, content="the office closes at six")],
    )

    text = scrape()

    assert value(text, 'memory_entries{layer="pgvector",scope="user"}') == 3
    assert value(text, 'memory_entries{layer="pgvector",scope="global"}') == 1
    assert value(text, 'memory_entries{layer="pgvector",scope="session"}') == 0


def test_job_runs_and_durations_are_exported_by_job(world: World) -> None:
    jobs.evict_memories(dry_run=False, triggered_by="manual")
    jobs.evict_memories(dry_run=True, triggered_by="manual")

    text = scrape()

    assert value(text, 'memory_lifecycle_job_runs{job="memory_eviction",status="succeeded"}') == 2
    assert value(text, 'memory_lifecycle_job_last_duration_seconds{job="memory_eviction"}') >= 0
    assert value(text, 'memory_lifecycle_job_last_success_timestamp_seconds{job="memory_eviction"}') > 0


def test_outbox_lag_is_the_age_of_the_oldest_unapplied_entry(world: World) -> None:
    ProfileFactOutbox.objects.create(
        tenant=world.acme.tenant,
        user_id="u-1",
        fact_key="tea",
        operation="upsert",
        content="likes tea",
        profile_version=1,
        created_at=timezone.now() - timedelta(minutes=10),
    )

    text = scrape()

    assert value(text, "memory_outbox_pending") == 1
    assert 590 < value(text, "memory_outbox_lag_seconds") < 700


def test_open_erasure_requests_and_the_oldest_age_are_exported(world: World) -> None:
    from compliance_app.models import ErasureRequest

    ErasureRequest.objects.create(
        tenant=world.acme.tenant,
        subject="0" * 64,
        legal_basis="gdpr_art_17",
        filed_by="cora",
        due_at=timezone.now() + timedelta(days=29),
        filed_at=timezone.now() - timedelta(days=1),
    )

    text = scrape()

    assert value(text, 'memory_erasure_requests_open{status="pending"}') == 1
    assert 86_000 < value(text, "memory_erasure_oldest_open_age_seconds") < 87_000
    assert value(text, "memory_erasure_nearest_due_seconds") > 0


def test_runs_in_progress_the_longest_run_and_eviction_candidates_are_exported(world: World) -> None:
    from lifecycle_app.models import EvictionCandidate, JobRun

    JobRun.objects.create(job="session_archival", triggered_by="beat")  # started, never finished (a crash)
    JobRun.objects.create(
        job="memory_purge",
        triggered_by="beat",
        status="succeeded",
        started_at=timezone.now() - timedelta(seconds=90),
        finished_at=timezone.now() - timedelta(seconds=30),
    )
    (memory,) = create_memories(
        tenant=world.acme.tenant, items=[NewMemory(scope=Scope.USER, content="rarely read", user_id="u-1")]
    )
    EvictionCandidate.objects.create(memory=memory, tenant=world.acme.tenant, score=0.01)

    text = scrape()

    assert value(text, 'memory_lifecycle_jobs_running{job="session_archival"}') == 1
    assert 59 < value(text, 'memory_lifecycle_job_max_duration_seconds{job="memory_purge"}') < 61
    assert value(text, "memory_eviction_candidates") == 1


def test_hot_context_windows_and_tool_states_are_counted_as_the_redis_layer(
    world: World, django_capture_on_commit_callbacks
) -> None:
    agent = world.acme.client
    with django_capture_on_commit_callbacks(execute=True):  # the cache is written after each commit
        for name in ("hot-1", "hot-2"):
            assert agent.post("/api/v1/sessions", {"id": name, "user_id": "u-1"}, format="json").status_code == 201
            said = agent.post(
                f"/api/v1/sessions/{name}/context/messages",
                {"messages": [{"role": "user", "content": "hi"}]},
                format="json",
            )
            assert said.status_code == 201
        tool = agent.put("/api/v1/sessions/hot-1/tools/search", {"state": {"page": 1}}, format="json")
        assert tool.status_code == 200

    text = scrape()

    assert value(text, 'memory_entries{layer="redis",scope="session"}') == 3
