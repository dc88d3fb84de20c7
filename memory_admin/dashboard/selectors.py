"""Reads behind the dashboard's overview."""

from __future__ import annotations

from django.db import connection
from django.db.models import Model

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
