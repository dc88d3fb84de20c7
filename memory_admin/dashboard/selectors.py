"""Reads behind the dashboard's overview: counts, write rates and the active embedder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.db.models import Count, Model, Q
from django.utils import timezone

from memories_app.embeddings import active_provider, get_embedder
from memories_app.models import Memory
from sessions_app.models import AgentSession, Event
from tenants_app.models import ApiKey, Tenant

# Below this many rows an exact count is cheap; above it the planner's estimate is close enough for a dashboard.
EXACT_COUNT_LIMIT = 100_000


def approximate_count(model: type[Model]) -> int:
    """Exact for small tables; pg_class.reltuples (kept by autovacuum) for big ones, where count(*) scans."""
    with connection.cursor() as cursor:
        cursor.execute("select reltuples::bigint from pg_class where oid = %s::regclass", [model._meta.db_table])
        row = cursor.fetchone()
    estimate = int(row[0]) if row else -1
    if estimate < EXACT_COUNT_LIMIT:
        return model._default_manager.count()
    return estimate


def overview_counts() -> dict[str, int]:
    return {
        "tenants": Tenant.objects.count(),
        "active_api_keys": ApiKey.objects.active().count(),
        "sessions": approximate_count(AgentSession),
        "events": approximate_count(Event),
    }


# --- write rates -------------------------------------------------------------------------------------------

RATE_WINDOWS_MINUTES = (5, 60)

# The events table has no index on created_at (appends stay as cheap as possible), but ids are handed out in
# append order. This binary search finds the first id written since the cutoff in about log2(rows) primary-key
# probes, all in one statement; max(id) minus that id is the number of events since then (rolled-back appends
# leave rare gaps, so it is "about").
_EVENTS_SINCE_SQL = f"""
WITH RECURSIVE search(lo, hi) AS (
    SELECT (SELECT min(id) FROM {Event._meta.db_table}), (SELECT max(id) FROM {Event._meta.db_table}) + 1
  UNION ALL
    SELECT CASE WHEN probe.id IS NULL OR probe.created_at >= %(cutoff)s THEN search.lo ELSE probe.id + 1 END,
           CASE WHEN probe.id IS NULL OR probe.created_at >= %(cutoff)s THEN (search.lo + search.hi) / 2
                ELSE search.hi END
    FROM search
    LEFT JOIN LATERAL (
        SELECT id, created_at FROM {Event._meta.db_table}
        WHERE id >= (search.lo + search.hi) / 2 AND id < search.hi ORDER BY id LIMIT 1
    ) AS probe ON true
    WHERE search.lo < search.hi
)
SELECT (SELECT max(id) FROM {Event._meta.db_table}) + 1 - hi FROM search WHERE lo >= hi
"""  # noqa: S608 (table names only)


def events_since(cutoff: datetime) -> int:
    """About how many events were appended since `cutoff` (any tenant), from primary-key probes only."""
    with connection.cursor() as cursor:
        cursor.execute(_EVENTS_SINCE_SQL, {"cutoff": cutoff})
        row = cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def memories_since(cutoffs: dict[str, datetime]) -> dict[str, int]:
    """Memories written since each cutoff, deleted ones included (a write is a write).

    One query over the (tenant, created_at) index, one short range per tenant.
    """
    earliest = min(cutoffs.values())
    counts = Memory.objects.filter(tenant__in=Tenant.objects.values("pk"), created_at__gte=earliest).aggregate(
        **{name: Count("pk", filter=Q(created_at__gte=cutoff)) for name, cutoff in cutoffs.items()}
    )
    return {name: int(counts[name] or 0) for name in cutoffs}


@dataclass(frozen=True)
class WriteRate:
    """Writes of one kind over one window, and the same as a per-minute rate."""

    what: str
    minutes: int
    count: int

    @property
    def per_minute(self) -> float:
        return self.count / self.minutes


def write_rates(*, now: datetime | None = None) -> list[WriteRate]:
    now = now or timezone.now()
    cutoffs = {f"last_{minutes}": now - timedelta(minutes=minutes) for minutes in RATE_WINDOWS_MINUTES}
    memories = memories_since(cutoffs)
    rates = [WriteRate("events", minutes, events_since(cutoffs[f"last_{minutes}"])) for minutes in RATE_WINDOWS_MINUTES]
    rates += [WriteRate("memories", minutes, memories[f"last_{minutes}"]) for minutes in RATE_WINDOWS_MINUTES]
    return rates


# --- embeddings --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbedderInfo:
    """The embedder searches use now, and what it means for search quality (or why it cannot be built)."""

    provider: str
    model_id: str = ""
    dimensions: int = 0
    description: str = ""
    problem: str = ""

    @property
    def understands_meaning(self) -> bool:
        # The hashing embedder matches shared words only; the other providers are real language models.
        return self.provider != "hashing" and not self.problem


def active_embedder() -> EmbedderInfo:
    provider = active_provider()
    try:
        embedder = get_embedder()
    except ImproperlyConfigured as exc:
        return EmbedderInfo(provider=provider, problem=str(exc))
    return EmbedderInfo(
        provider=provider,
        model_id=embedder.model_id,
        dimensions=embedder.dimensions,
        description=embedder.description,
    )
