"""/metrics tells operators how memory behaves: search latency, embedder calls and failures (in-process), and
promotions, merges and evictions (read from the rows at scrape time)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.test import Client, override_settings
from django.utils import timezone

from lifecycle_app import jobs
from memories_app.models import Memory
from memories_app.tests.conftest import create, make_session
from memory_admin.metrics import forget_scraped_figures


def scrape() -> str:
    forget_scraped_figures()  # a fresh read, not the collectors' 15-second cache
    response = Client().get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def value(text: str, series: str) -> float:
    """The sample's value, 0 when the series is not exported yet (counters start at their first increment)."""
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_searches_are_timed_by_scopes_and_strategy(world):
    create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.")
    series = 'memory_search_seconds_count{scopes="user",strategy="exact"}'
    before = value(scrape(), series)

    for _ in range(3):
        response = world.acme.client.post(
            "/api/v1/memories/search", {"query": "tea", "user_id": "alice"}, format="json"
        )
        assert response.status_code == 200

    assert value(scrape(), series) == before + 3


@override_settings(MEMORY_EXACT_SEARCH_MAX_ROWS=1)
def test_global_searches_through_the_index_are_labelled_hnsw(world):
    for text in ("The office closes at six.", "Lunch is at noon."):
        create(world.acme.client, scope="global", content=text)
    series = 'memory_search_seconds_count{scopes="global",strategy="hnsw"}'
    before = value(scrape(), series)

    world.acme.client.post("/api/v1/memories/search", {"query": "office", "scopes": ["global"]}, format="json")

    assert value(scrape(), series) == before + 1


def test_embedder_calls_texts_and_failures_are_counted_by_provider(world, fake_openai):
    before = scrape()
    ok, failed = (
        'memory_embedding_requests_total{outcome="ok",provider="openai"}',
        'memory_embedding_requests_total{outcome="error",provider="openai"}',
    )
    texts = 'memory_embedding_texts_total{provider="openai"}'

    batch = [{"scope": "user", "user_id": "alice", "content": f"fact {n}"} for n in range(3)]
    assert world.acme.client.post("/api/v1/memories/batch", {"memories": batch}, format="json").status_code == 201
    fake_openai.failing_status = 500
    assert create(world.acme.client, scope="user", user_id="alice", content="lost").status_code == 503

    after = scrape()
    assert value(after, ok) == value(before, ok) + 1
    assert value(after, texts) == value(before, texts) + 3
    assert value(after, failed) == value(before, failed) + 1
    assert (
        'memory_embedder_info{dimensions="1536",model="openai:text-embedding-3-small-1536",provider="openai"}' in after
    )


def test_merges_are_counted_by_method_from_the_memory_history(world):
    memory = create(world.acme.client, scope="user", user_id="alice", content="Alice lives in Oslo.").json()
    path = f"/api/v1/memories/{memory['id']}"
    world.acme.client.patch(path, {"content": "Alice lives in Oslo. She has a cat."}, format="json")
    merged = world.acme.client.patch(
        path, {"content": "Alice speaks Norwegian.", "on_conflict": "merge"}, format="json", HTTP_IF_MATCH='"1"'
    )
    assert merged["Memory-Merged"] == "true"

    text = scrape()

    assert value(text, 'memory_merges{method="deterministic"}') == 1
    assert value(text, 'memory_revisions{kind="merge"}') == 1
    assert value(text, 'memory_revisions{kind="update"}') == 1


def test_promotion_jobs_and_what_they_did_are_exported(world, eager_celery, django_capture_on_commit_callbacks):
    make_session(world, user_id="alice", session_id="s-1")
    for text in ("Alice's dog is called Rex.", "Alice works night shifts."):
        create(world.acme.client, scope="session", session_id="s-1", content=text)
    with django_capture_on_commit_callbacks(execute=True):
        assert world.acme.client.post("/api/v1/sessions/s-1/promote", {}, format="json").status_code == 202

    text = scrape()

    assert value(text, 'memory_promotion_jobs{kind="promote",status="done"}') == 1
    assert value(text, 'memory_promoted_memories{kind="promote",result="created"}') == 2
    assert value(text, 'memory_promoted_memories{kind="promote",result="updated"}') == 0


@override_settings(MEMORY_EVICTION_GRACE_DAYS=0)
def test_evictions_of_the_last_day_are_exported(world):
    stale = create(world.acme.client, scope="user", user_id="alice", content="Old news.").json()
    long_ago = timezone.now() - timedelta(days=365)
    Memory.objects.filter(pk=stale["id"]).update(created_at=long_ago, updated_at=long_ago)
    assert value(scrape(), "memory_evictions_24h") == 0

    jobs.evict_memories(dry_run=False, triggered_by="manual")

    text = scrape()
    assert Memory.objects.get(pk=stale["id"]).deleted_at is not None
    assert value(text, "memory_evictions_24h") == 1
