"""Reads of lifecycle_app: what each policy would do now (the dry run), recent job runs, archives, and the
state of a session at a version whose events are in the archive."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from langgraph_app import selectors as langgraph_selectors
from lifecycle_app import archival, eviction
from lifecycle_app.archive import ArchiveDocument, unpack
from lifecycle_app.models import (
    ArchiveKind,
    ArchiveSegment,
    EvictionCandidate,
    Job,
    JobRun,
    RetentionPolicy,
    SessionArchival,
)
from lifecycle_app.policies import EffectivePolicy, PolicyGroup, global_policy, policy_groups
from lifecycle_app.storage import archive_storage
from memories_app.models import Memory, ProfileFactOutbox
from memory_admin.codec import decode_payload
from memory_admin.errors import IntegrityFailure, NotFound
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation
from sessions_app.state import apply_event, empty_state, upgrade_state
from tenants_app.models import Tenant

# The dry run of event archival looks at this many sessions at most (a preview must stay quick).
PREVIEW_SESSION_LIMIT = 2000


def recent_job_runs(*, limit: int = 50, job: str | None = None) -> QuerySet[JobRun]:
    runs = JobRun.objects.order_by("-started_at")
    if job:
        runs = runs.filter(job=job)
    return runs[:limit]


# --- dry run ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What one policy would do to one group of tenants if it ran now."""

    job: str
    enabled: bool
    summary: str
    counts: dict[str, int] = field(default_factory=dict)


def preview_session_archival(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> Preview:
    idle = archival.archivable_sessions(tenant_ids, cutoff=policy.session_cutoff(now), now=now)
    pending = SessionArchival.objects.filter(tenant_id__in=tenant_ids, state=SessionArchival.State.PENDING)
    counts = {
        "sessions": idle.count(),
        "events": Event.objects.filter(session__in=idle).count(),
        "operations": Operation.objects.filter(session__in=idle).count(),
        "resumed": pending.count(),
    }
    summary = (
        f"would archive {counts['sessions']} sessions idle for more than {policy.session_archive_after_days} days "
        f"({counts['events']} events, {counts['operations']} operations)"
    )
    if counts["resumed"]:
        summary += f" and finish {counts['resumed']} archivals in progress"
    return Preview(Job.SESSION_ARCHIVAL, policy.session_archival_enabled, summary, counts)


def event_archival_plan(
    policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime, *, session_limit: int | None = None
) -> list[tuple[uuid.UUID, int]]:
    """(session id, version to archive up to) for every session event archival would touch now."""
    cutoff = policy.event_cutoff(now)
    plan: list[tuple[uuid.UUID, int]] = []
    seen = 0
    for tenant_id in tenant_ids:
        after: uuid.UUID | None = None
        while rows := archival.sessions_with_old_events(tenant_id, cutoff=cutoff, after=after, limit=200):
            after = rows[-1][0]
            sessions = AgentSession.objects.in_bulk([pk for pk, _ in rows])
            for pk, boundary in rows:
                seen += 1
                session = sessions.get(pk)
                upto = archival.event_archival_boundary(session, boundary, now=now) if session else None
                if upto is not None:
                    plan.append((pk, upto))
                if session_limit is not None and seen >= session_limit:
                    return plan
    return plan


def preview_event_archival(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> Preview:
    plan = event_archival_plan(policy, tenant_ids, now, session_limit=PREVIEW_SESSION_LIMIT)
    events = sum(upto - archival.archived_through(pk) for pk, upto in plan)
    counts = {"events": events, "sessions": len(plan)}
    summary = f"would archive {events} events older than {policy.event_retention_days} days from {len(plan)} sessions"
    return Preview(Job.EVENT_ARCHIVAL, policy.event_archival_enabled, summary, counts)


def expired_checkpoints(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> QuerySet[Checkpoint]:
    """The checkpoints checkpoint retention removes: older than the window and not among the latest N."""
    return Checkpoint.objects.filter(
        session__tenant_id__in=tenant_ids,
        created_at__lt=policy.checkpoint_cutoff(now),
        sequence__lte=F("session__checkpoint_head__last_sequence") - policy.checkpoint_keep_latest,
    )


def expired_thread_checkpoints(
    policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime
) -> dict[uuid.UUID, int]:
    """Session id -> how many of its LangGraph checkpoints checkpoint retention removes: older than the window
    and not among the latest N of their namespace (a thread is a session)."""
    return langgraph_selectors.expired_thread_checkpoints(
        tenant_ids=tenant_ids, cutoff=policy.checkpoint_cutoff(now), keep_latest=policy.checkpoint_keep_latest
    )


def preview_checkpoint_retention(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> Preview:
    """Threads that use a LangGraph DeltaChannel, which the job keeps whole, are counted too: telling them apart
    opens every sealed value of a thread (the job's dry run does)."""
    expired = expired_checkpoints(policy, tenant_ids, now)
    threads = expired_thread_checkpoints(policy, tenant_ids, now)
    counts = {
        "checkpoints": expired.count(),
        "sessions": expired.values("session_id").distinct().count(),
        "langgraph_checkpoints": sum(threads.values()),
        "langgraph_threads": len(threads),
    }
    summary = (
        f"would remove {counts['checkpoints']} checkpoints from {counts['sessions']} sessions and "
        f"{counts['langgraph_checkpoints']} LangGraph checkpoints from {counts['langgraph_threads']} threads "
        f"(older than {policy.checkpoint_retention_days} days, keeping each session's latest "
        f"{policy.checkpoint_keep_latest}, per namespace in a thread)"
    )
    return Preview(Job.CHECKPOINT_RETENTION, policy.checkpoint_retention_enabled, summary, counts)


def eviction_params(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> eviction.EvictionParams:
    return eviction.EvictionParams(
        tenant_ids=tenant_ids,
        threshold=policy.memory_eviction_threshold,
        grace_cutoff=policy.grace_cutoff(now),
        now=now,
    )


def preview_memory_eviction(policy: EffectivePolicy, tenant_ids: list[uuid.UUID], now: datetime) -> Preview:
    found = eviction.preview(eviction_params(policy, tenant_ids, now))
    counts = {"would_mark": found.would_mark, "would_evict": found.would_evict, "candidates": found.candidates}
    summary = (
        f"would delete {found.would_evict} memories whose grace period of {policy.memory_eviction_grace_days} days "
        f"is over, and mark {found.would_mark} more as candidates (weight below {policy.memory_eviction_threshold})"
    )
    return Preview(Job.MEMORY_EVICTION, policy.memory_eviction_enabled, summary, counts)


def purge_cutoff(now: datetime) -> datetime:
    return now - timedelta(hours=settings.MEMORY_PURGE_AFTER_HOURS)


def purgeable_unkeyed_memories(*, cutoff: datetime) -> QuerySet[Memory]:
    """The memories stored without an Idempotency-Key that the purge removes: those deleted before `cutoff`
    (memory_deleted_unkeyed holds them by deletion time)."""
    return Memory.objects.filter(deleted_at__lt=cutoff, idempotency_key__isnull=True)


def _keyed_purgeable_sql(*, lock: bool) -> str:
    # Tenant by tenant through memory_deleted_keyed, each read only up to its own key lifetime: the keyed
    # memories kept for a retry are never read, so a purge step costs no more however many there are (ORDER BY
    # created_at is what has PostgreSQL read that index and stop there). Those deleted within the purge delay
    # are passed over in the index alone (its deleted_at column).
    return f"""
        SELECT m.id FROM {Tenant._meta.db_table} t
        LEFT JOIN {RetentionPolicy._meta.db_table} p ON p.tenant_id = t.id
        CROSS JOIN LATERAL (
            SELECT id FROM {Memory._meta.db_table}
            WHERE tenant_id = t.id AND idempotency_key IS NOT NULL AND deleted_at < %(cutoff)s
                AND created_at < %(now)s - make_interval(secs => COALESCE(p.idempotency_ttl_seconds, %(lifetime)s))
            ORDER BY created_at LIMIT %(limit)s {"FOR UPDATE SKIP LOCKED" if lock else ""}
        ) m
        LIMIT %(limit)s
    """  # noqa: S608 (the table names come from the models)


def _keyed_purgeable_params(cutoff: datetime, now: datetime, limit: int | None) -> dict[str, Any]:
    return {"cutoff": cutoff, "now": now, "lifetime": global_policy().idempotency_ttl_seconds, "limit": limit}


def purgeable_keyed_memory_ids(
    *, cutoff: datetime, now: datetime, limit: int | None = None, skip_locked: bool = False
) -> list[uuid.UUID]:
    """Up to `limit` (None: all) of the memories stored with an Idempotency-Key that the purge removes: those
    deleted before `cutoff` and created longer ago than their tenant's idempotency lifetime. Until then a retry
    of the create, once Redis lost its record, finds the row by its key (`memories_app.services._stored_with`)
    and gets the answer it got before the purge; without the row it would store the memory again. The row stays
    deleted (hidden) meanwhile. With `skip_locked` the rows are locked, and those another worker holds left out.
    """
    with connection.cursor() as cursor:
        cursor.execute(_keyed_purgeable_sql(lock=skip_locked), _keyed_purgeable_params(cutoff, now, limit))
        return [row[0] for row in cursor.fetchall()]


def purgeable_memory_count(*, cutoff: datetime, now: datetime) -> int:
    """How many memories the purge removes now: those of both reads above, as its steps take them."""
    keyed_sql = f"SELECT count(*) FROM ({_keyed_purgeable_sql(lock=False)}) keyed"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(keyed_sql, _keyed_purgeable_params(cutoff, now, None))
        keyed = int(cursor.fetchone()[0])
    return purgeable_unkeyed_memories(cutoff=cutoff).count() + keyed


def preview_memory_purge(now: datetime) -> Preview:
    count = purgeable_memory_count(cutoff=purge_cutoff(now), now=now)
    summary = f"would remove {count} memories deleted more than {settings.MEMORY_PURGE_AFTER_HOURS} hours ago"
    return Preview(Job.MEMORY_PURGE, True, summary, {"memories": count})


def outbox_prune_cutoff(now: datetime) -> datetime:
    return now - timedelta(days=settings.OUTBOX_KEEP_PROCESSED_DAYS)


def prunable_outbox(now: datetime) -> QuerySet[ProfileFactOutbox]:
    """Outbox entries the drain removes: applied before the cutoff (entries set aside as failed stay, with their
    error; `purge.prune_outbox_step` takes the same rows)."""
    return ProfileFactOutbox.objects.filter(processed_at__lt=outbox_prune_cutoff(now), failed_at__isnull=True)


def outbox_has_work(now: datetime) -> bool:
    """Whether a drain would do anything: an entry to apply, or an applied one old enough to remove."""
    pending = ProfileFactOutbox.objects.filter(processed_at__isnull=True)
    return pending.exists() or prunable_outbox(now).exists()


def preview_outbox(now: datetime) -> Preview:
    pending = ProfileFactOutbox.objects.filter(processed_at__isnull=True)
    oldest = pending.order_by("id").values_list("created_at", flat=True).first()
    counts = {
        "pending": pending.count(),
        "lag_seconds": int((now - oldest).total_seconds()) if oldest else 0,
        "would_prune": prunable_outbox(now).count(),
    }
    summary = (
        f"would apply {counts['pending']} profile changes to the vector store (oldest waiting "
        f"{counts['lag_seconds']} s) and remove {counts['would_prune']} entries applied more than "
        f"{settings.OUTBOX_KEEP_PROCESSED_DAYS} days ago"
    )
    return Preview(Job.OUTBOX_DRAIN, True, summary, counts)


def preview_group(group: PolicyGroup, *, now: datetime | None = None) -> list[Preview]:
    """Every policy's dry run for one group of tenants."""
    now = now or timezone.now()
    policy, tenants = group.policy, group.tenant_ids
    return [
        preview_session_archival(policy, tenants, now),
        preview_event_archival(policy, tenants, now),
        preview_checkpoint_retention(policy, tenants, now),
        preview_memory_eviction(policy, tenants, now),
    ]


# --- eviction candidates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CandidateRow:
    """A memory marked for eviction, named by ids and numbers only (its text is on the user's page)."""

    memory_id: uuid.UUID
    tenant: str
    scope: str
    score: float
    marked_at: datetime
    evicted_after: datetime


def eviction_candidates(*, limit: int = 25, now: datetime | None = None) -> tuple[int, int, list[CandidateRow]]:
    """(candidates, of which past their grace period, the `limit` soonest to go), over every tenant with the
    grace period of its own policy; a grouped count and a short indexed read per policy group."""
    now = now or timezone.now()
    total, due, rows = 0, 0, []
    for group in policy_groups():
        grace = timedelta(days=group.policy.memory_eviction_grace_days)
        marked = EvictionCandidate.objects.filter(tenant_id__in=group.tenant_ids)
        counts = marked.aggregate(total=Count("pk"), due=Count("pk", filter=Q(marked_at__lte=now - grace)))
        total, due = total + counts["total"], due + counts["due"]
        rows += [
            CandidateRow(
                memory_id=candidate.memory_id,
                tenant=candidate.tenant.name,
                scope=candidate.memory.scope,
                score=candidate.score,
                marked_at=candidate.marked_at,
                evicted_after=candidate.marked_at + grace,
            )
            for candidate in marked.select_related("tenant", "memory").order_by("marked_at")[:limit]
        ]
    rows.sort(key=lambda row: row.evicted_after)
    return total, due, rows[:limit]


# --- archives ---------------------------------------------------------------------------------------------


def archives_for(session: AgentSession) -> QuerySet[ArchiveSegment]:
    return ArchiveSegment.objects.filter(session=session).order_by("kind", "from_version")


def read_archive(segment: ArchiveSegment) -> ArchiveDocument:
    """The archived rows, checked against the recorded checksum (IntegrityFailure) and present (NotFound)."""
    return unpack(archive_storage().get(segment.storage_key), sha256=segment.sha256)


@dataclass(frozen=True)
class ArchivedState:
    version: int
    state: dict[str, Any]
    snapshot_version: int
    replayed_events: int
    # How many archive objects were read to rebuild it.
    archives_read: int


def state_from_archive(session: AgentSession, *, version: int) -> ArchivedState:
    """The state after the first `version` events, read from the archive where Postgres no longer has them.

    NotFound for a version beyond the head; IntegrityFailure when the archive and Postgres together do not hold
    every event from the chosen snapshot up to `version`.
    """
    if version < 0 or version > session.head_version:
        raise NotFound("No such version.", details={"version": version})
    segments = list(
        ArchiveSegment.objects.filter(session=session, kind=ArchiveKind.EVENTS, from_version__lte=version).order_by(
            "from_version"
        )
    )
    archived_bases = [v for segment in segments for v in segment.snapshot_versions if v <= version]
    live_base = (
        EventSnapshot.objects.filter(session=session, version__lte=version)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    base = max([0, *archived_bases, *([live_base] if live_base is not None else [])])

    def decode(blob: bytes | memoryview) -> Any:
        return decode_payload(blob, tenant_id=session.tenant_id, user_id=session.user_id)

    needed = [segment for segment in segments if segment.to_version > base or base in segment.snapshot_versions]
    documents = [read_archive(segment) for segment in needed]
    state = empty_state()
    if base and live_base == base:
        kept = EventSnapshot.objects.get(session=session, version=base)
        state = upgrade_state(decode(kept.state), kept.schema_version)
    elif base:
        archived = next(row for doc in documents for row in doc.snapshot_rows(session.pk) if row.version == base)
        state = upgrade_state(decode(archived.state), archived.schema_version)
    events = {
        row.version: row
        for document in documents
        for row in document.event_rows(session.pk)
        if base < row.version <= version
    }
    for row in Event.objects.filter(session=session, version__gt=base, version__lte=version):
        events.setdefault(row.version, row)
    if sorted(events) != list(range(base + 1, version + 1)):
        raise IntegrityFailure(
            "Some events of this version are neither in Postgres nor in the archive.",
            details={"version": version, "snapshot_version": base},
        )
    for number in range(base + 1, version + 1):
        apply_event(state, events[number].type, decode(events[number].payload))
    return ArchivedState(
        version=version,
        state=state,
        snapshot_version=base,
        replayed_events=version - base,
        archives_read=len(documents),
    )
