"""Memory decay eviction with a grace period, per tenant threshold.

A live memory (not a profile fact: the profile owns those) whose decay weight is below the threshold becomes
a candidate (a row in EvictionCandidate, stamped when it was marked). A candidate that is read again and weighs
more than the threshold by the next run is forgiven; one still below it once the grace period has passed is
logically deleted (invisible at once; the purge job removes the row and its vector later).

The weight is the one `Memory.decay_score` computes: 2^(-days since last use / half-life) * ln(2 + reads), where
the last use is the latest of the last read, the last content update and the creation.
Every step is one statement or one short transaction; eviction claims rows with `FOR UPDATE SKIP LOCKED` and
re-checks `deleted_at IS NULL`, so workers running at once delete each memory once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from lifecycle_app.models import EvictionCandidate
from memories_app.models import Memory, Source
from memories_app.services import announce_deleted

_MEMORY = Memory._meta.db_table
_CANDIDATE = EvictionCandidate._meta.db_table
_WEIGHT = (
    "power(2, -extract(epoch FROM %(now)s - greatest(m.last_accessed_at, m.updated_at, m.created_at))"
    " / 86400.0 / %(half_life)s)"
    " * ln(2 + m.access_count)"
)

_MARK_SQL = f"""
INSERT INTO {_CANDIDATE} (memory_id, tenant_id, marked_at, score)
SELECT m.id, m.tenant_id, %(now)s, {_WEIGHT}
FROM {_MEMORY} m
WHERE m.tenant_id = ANY(%(tenants)s) AND m.deleted_at IS NULL AND m.source <> %(profile)s
  AND {_WEIGHT} < %(threshold)s
  AND NOT EXISTS (SELECT 1 FROM {_CANDIDATE} c WHERE c.memory_id = m.id)
LIMIT %(limit)s
ON CONFLICT (memory_id) DO NOTHING
"""  # noqa: S608 (table names from the models)

_FORGIVE_SQL = f"""
DELETE FROM {_CANDIDATE} c USING {_MEMORY} m
WHERE c.memory_id = m.id AND c.tenant_id = ANY(%(tenants)s)
  AND (m.deleted_at IS NOT NULL OR {_WEIGHT} >= %(threshold)s)
"""  # noqa: S608

_EVICT_SQL = f"""
WITH doomed AS (
  SELECT m.id FROM {_CANDIDATE} c JOIN {_MEMORY} m ON m.id = c.memory_id
  WHERE c.tenant_id = ANY(%(tenants)s) AND c.marked_at <= %(grace_cutoff)s AND m.deleted_at IS NULL
    AND {_WEIGHT} < %(threshold)s
  ORDER BY c.marked_at
  LIMIT %(limit)s
  FOR UPDATE OF m SKIP LOCKED
)
UPDATE {_MEMORY} SET deleted_at = %(now)s FROM doomed WHERE {_MEMORY}.id = doomed.id
RETURNING {_MEMORY}.id, {_MEMORY}.tenant_id
"""  # noqa: S608

_COUNT_SQL = f"""
SELECT
  count(*) FILTER (WHERE c.memory_id IS NULL AND {_WEIGHT} < %(threshold)s),
  count(*) FILTER (WHERE c.memory_id IS NOT NULL AND c.marked_at <= %(grace_cutoff)s AND {_WEIGHT} < %(threshold)s),
  count(*) FILTER (WHERE c.memory_id IS NOT NULL)
FROM {_MEMORY} m LEFT JOIN {_CANDIDATE} c ON c.memory_id = m.id
WHERE m.tenant_id = ANY(%(tenants)s) AND m.deleted_at IS NULL AND m.source <> %(profile)s
"""  # noqa: S608


@dataclass(frozen=True)
class EvictionParams:
    tenant_ids: list[uuid.UUID]
    threshold: float
    grace_cutoff: datetime
    now: datetime

    def sql(self, **extra: Any) -> dict[str, Any]:
        return {
            "tenants": self.tenant_ids,
            "threshold": self.threshold,
            "grace_cutoff": self.grace_cutoff,
            "now": self.now,
            "half_life": settings.MEMORY_DECAY_HALF_LIFE_DAYS,
            "profile": Source.PROFILE.value,
            **extra,
        }


def mark_candidates(params: EvictionParams, *, limit: int) -> int:
    """Stamp up to `limit` memories that fell below the threshold as candidates; how many were new."""
    with connection.cursor() as cursor:
        cursor.execute(_MARK_SQL, params.sql(limit=limit))
        return int(cursor.rowcount)


def forgive_candidates(params: EvictionParams) -> int:
    """Drop candidates that were read back above the threshold (or deleted another way) since they were marked."""
    with connection.cursor() as cursor:
        cursor.execute(_FORGIVE_SQL, params.sql())
        return int(cursor.rowcount)


def evict_step(params: EvictionParams, *, limit: int) -> list[uuid.UUID]:
    """Logically delete up to `limit` candidates whose grace period passed; their ids. Each deletion is announced
    after commit as a delete through the API is (`memory.deleted`), so open dashboard pages drop the memory."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_EVICT_SQL, params.sql(limit=limit))
        evicted = [Memory(pk=memory_id, tenant_id=tenant_id) for memory_id, tenant_id in cursor.fetchall()]
        EvictionCandidate.objects.filter(memory_id__in=[memory.pk for memory in evicted]).delete()
        for memory in evicted:
            announce_deleted(memory)
    return [memory.pk for memory in evicted]


@dataclass(frozen=True)
class EvictionPreview:
    would_mark: int
    would_evict: int
    candidates: int


def preview(params: EvictionParams) -> EvictionPreview:
    with connection.cursor() as cursor:
        cursor.execute(_COUNT_SQL, params.sql())
        row = cursor.fetchone()
    assert row is not None
    return EvictionPreview(would_mark=int(row[0]), would_evict=int(row[1]), candidates=int(row[2]))
