"""Prometheus metrics of long-term memory, after memory_admin/metrics.py's conventions.

What a request does in this process (search latency, embedder calls) is counted in-process. What the background
jobs did (promotions, merges, evictions) happened in Celery workers, whose counters never reach the web
process's /metrics, so it is read from the durable rows at scrape time, cached briefly per process. Memory
entries by scope and layer are exported by memory_admin/metrics.py's stored-data collector.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import Counter, Histogram

from memory_admin.metrics import Row, register_scrape_collector

SEARCH_SECONDS = Histogram(
    "memory_search_seconds",
    "Time to rank memories for one search (database included, embedding excluded), by scopes and strategy",
    ["scopes", "strategy"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0),
)
EMBEDDING_REQUESTS = Counter(
    "memory_embedding_requests_total",
    "Calls to the embedder (one call may embed many texts), by provider and outcome: ok or error",
    ["provider", "outcome"],
)
EMBEDDING_TEXTS = Counter("memory_embedding_texts_total", "Texts sent to the embedder, by provider", ["provider"])
EMBEDDING_SECONDS = Histogram(
    "memory_embedding_seconds",
    "Time of one embedder call (retries included), by provider",
    ["provider"],
    buckets=(0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
LANGUAGE_MODEL_REQUESTS = Counter(
    "memory_language_model_requests_total",
    "Calls to the chat model for merges and summaries, by purpose and outcome",
    ["purpose", "outcome"],
)


def scopes_label(scopes: Collection[str]) -> str:
    """A bounded label: the searched scopes, sorted and joined ("global", "session+user", ...)."""
    return "+".join(sorted(set(scopes)))


# --- Read from the rows at scrape time ----------------------------------------------------------------------

CACHE_SECONDS = 15.0


def _family_specs() -> list[tuple[str, str, list[str]]]:
    return [
        ("memory_promotion_jobs", "Promotion and distillation jobs by kind and status", ["kind", "status"]),
        (
            "memory_promoted_memories",
            "User memories created or updated (a near-duplicate) by finished promotion and distillation jobs",
            ["kind", "result"],
        ),
        ("memory_revisions", "Recorded changes to memories by kind (update, merge, promotion, profile)", ["kind"]),
        ("memory_merges", "Conflicting updates merged, by method (llm or deterministic)", ["method"]),
        ("memory_evictions_24h", "Memories evicted for decay by the lifecycle job in the last 24 hours", []),
        ("memory_embedder_info", "The active embedder (value 1)", ["provider", "model", "dimensions"]),
    ]


def _scrape() -> list[Row]:
    from django.db import connection

    from memories_app.embeddings import active_provider, get_embedder

    rows: list[Row] = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT kind, status, count(*), coalesce(sum(jsonb_array_length(created_ids)), 0), "
            "coalesce(sum(jsonb_array_length(updated_ids)), 0) FROM memories_app_promotionjob GROUP BY kind, status"
        )
        created: dict[str, float] = {}
        updated: dict[str, float] = {}
        for kind, status, jobs, made, changed in cursor.fetchall():
            rows.append(("memory_promotion_jobs", (kind, status), float(jobs)))
            created[kind] = created.get(kind, 0.0) + float(made)
            updated[kind] = updated.get(kind, 0.0) + float(changed)
        for kind in sorted(created):
            rows.append(("memory_promoted_memories", (kind, "created"), created[kind]))
            rows.append(("memory_promoted_memories", (kind, "updated"), updated[kind]))
        cursor.execute("SELECT kind, count(*) FROM memories_app_memoryrevision GROUP BY kind")
        rows += [("memory_revisions", (kind,), float(n)) for kind, n in cursor.fetchall()]
        cursor.execute(
            "SELECT coalesce(inputs->>'method', 'unknown'), count(*) FROM memories_app_memoryrevision "
            "WHERE kind = 'merge' GROUP BY 1"
        )
        rows += [("memory_merges", (method,), float(n)) for method, n in cursor.fetchall()]
    rows += _eviction_rows()
    embedder = get_embedder()
    rows.append(("memory_embedder_info", (active_provider(), embedder.model_id, str(embedder.dimensions)), 1.0))
    return rows


def _eviction_rows() -> list[Row]:
    """Eviction is lifecycle_app's job (its JobRun counts); nothing without it. Pending candidates are exported
    by memory_admin/metrics.py (memory_eviction_candidates)."""
    from datetime import timedelta

    from django.apps import apps
    from django.utils import timezone

    try:
        job_run = apps.get_model("lifecycle_app", "JobRun")
    except LookupError:
        return []
    since = timezone.now() - timedelta(hours=24)
    runs = job_run.objects.filter(job="memory_eviction", dry_run=False, started_at__gte=since)
    evicted = sum(int((counts or {}).get("evicted", 0) or 0) for counts in runs.values_list("counts", flat=True))
    return [("memory_evictions_24h", (), float(evicted))]


def register_collector() -> None:
    """Register the collector once per process (MemoriesConfig.ready() calls this), for every scrape."""
    register_scrape_collector("memory", specs=_family_specs, scrape=_scrape, cache_seconds=CACHE_SECONDS)
