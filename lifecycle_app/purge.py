"""Physical removal of rows that are already gone for everyone: logically deleted memories past the purge delay
(and, for one stored with an Idempotency-Key, past the key's lifetime), and profile outbox entries applied long
ago (they hold the fact's text, so they do not stay for ever). Entries the drain set aside as failed stay,
marked with their error, for someone to look at in the Django admin.

Each step is one short transaction that claims its rows with `FOR UPDATE SKIP LOCKED`: workers running at once
take disjoint rows, so each row is removed (and counted) once.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from lifecycle_app.selectors import purgeable_keyed_memory_ids, purgeable_unkeyed_memories
from memories_app.models import Memory, ProfileFactOutbox

_OUTBOX = ProfileFactOutbox._meta.db_table

_PRUNE_OUTBOX_SQL = f"""
DELETE FROM {_OUTBOX} WHERE id IN (
  SELECT id FROM {_OUTBOX} WHERE processed_at < %(cutoff)s AND failed_at IS NULL
  ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
"""  # noqa: S608 (the table name comes from the model)


def purge_memories_step(*, cutoff: datetime, limit: int, now: datetime | None = None) -> int:
    """Remove up to `limit` memories deleted before `cutoff` (their vectors and revisions with them); how many.
    One stored with an Idempotency-Key stays (deleted) until its tenant's idempotency lifetime since it was
    created is over: a retried create finds it by the key until then (see `selectors.purgeable_keyed_memory_ids`).

    Memories stored without a key go first, oldest deletion first; then keyed ones, tenant by tenant, oldest
    first. Neither read passes over the keyed memories kept for a retry, so a step costs the same however many
    of them there are, the last (empty) one too."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            purgeable_unkeyed_memories(cutoff=cutoff)
            .select_for_update(skip_locked=True)
            .order_by("deleted_at")
            .values_list("pk", flat=True)[:limit]
        )
        if len(ids) < limit:
            ids += purgeable_keyed_memory_ids(cutoff=cutoff, now=now, limit=limit - len(ids), skip_locked=True)
        if not ids:
            return 0
        # Through the ORM, so rows other apps hang off a memory go with it.
        _, removed = Memory.objects.filter(pk__in=ids).delete()
        return removed.get(Memory._meta.label, 0)


def prune_outbox_step(*, cutoff: datetime, limit: int) -> int:
    """Remove up to `limit` outbox entries applied before `cutoff` (not those set aside as failed); how many."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_PRUNE_OUTBOX_SQL, {"cutoff": cutoff, "limit": limit})
        return int(cursor.rowcount)
