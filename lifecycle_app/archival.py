"""Moving a session's old rows to the archive, in short steps that several workers may run at once.

Two jobs use the same step:

- **Event archival** (compaction): events older than the tenant's retention window that a snapshot already
  folds go to the archive, up to and including the newest such snapshot, which stays in Postgres; the state at
  that version and after it is rebuilt exactly as before. Events the hot context window still reads are kept,
  and so are those younger than the tenant's idempotency lifetime (a retried append finds its key on them).
- **Session archival**: a session without activity for N days, and for the tenant's idempotency lifetime,
  becomes `archived` (no more writes), a snapshot is taken at its head, every event and older snapshot goes to
  the archive in steps, and last its operation journal; the session row and the snapshot at its head stay. A
  session its client archived goes the same way once as idle (see `archivable_sessions`).

A step moves one segment of at most `limit` events. It writes the archive object first, without holding any
lock (archived rows are below the head and never change), then takes the session row's lock (the lock appends
take) only to check the range, record the segment and delete the rows, so an append waits for a short delete,
never for cold storage. The object's key is the attempt's own (two workers on one range never overwrite each
other's); an attempt that fails or loses deletes its object. One whose worker is killed between writing the
object and recording it leaves an object no segment names, in the session's folder with all its others: the
next run's `remove_orphans` removes it once it is older than any attempt lasts (ORPHAN_GRACE), and erasing the
person removes the whole folder (`services.delete_session_archives`). A session whose row another worker holds
is skipped (`SKIP LOCKED`) and left for it. Events of a session are archived from
version 1 up without gaps, so `archived_through` (the highest archived version) says what left Postgres.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import (
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce
from django.utils import timezone

from checkpoints_app.models import Checkpoint
from langgraph_app.models import ThreadCheckpoint
from lifecycle_app.archive import ArchiveDocument, event_doc, operation_doc, pack, snapshot_doc
from lifecycle_app.lifetimes import lifetimes_for
from lifecycle_app.models import ArchiveKind, ArchiveSegment, JobRun, RetentionPolicy, SessionArchival
from lifecycle_app.policies import global_policy
from lifecycle_app.storage import archive_storage, session_folder
from memories_app.background import DISTILL_ARCHIVED_WITHIN
from memories_app.models import JobKind, JobStatus, PromotionJob
from memory_admin.errors import NotFound
from memory_admin.live import publish_on_commit, session_group, tenant_group
from sessions_app import context
from sessions_app.models import AgentSession, Event, EventSnapshot, EventType, Operation, SessionStatus
from sessions_app.selectors import rebuild_state, save_snapshot

logger = structlog.get_logger("memory.lifecycle")


@dataclass
class Moved:
    """What a step (or a series of steps) moved to the archive."""

    events: int = 0
    snapshots: int = 0
    operations: int = 0
    archive_bytes: int = 0
    segments: int = 0
    # The session row was held by another worker; it is left to that worker (or the next run).
    busy: bool = False

    def add(self, other: Moved) -> None:
        self.events += other.events
        self.snapshots += other.snapshots
        self.operations += other.operations
        self.archive_bytes += other.archive_bytes
        self.segments += other.segments
        self.busy = self.busy or other.busy


def segment_key(session: AgentSession, kind: str, first: int, last: int, attempt: str = "") -> str:
    """Where a segment goes. `attempt` makes the name one worker's own: two workers archiving the same range
    at once each write their own object, and the one that loses deletes its own, never the winner's."""
    suffix = f"-{attempt}" if attempt else ""
    return f"{session_folder(session.tenant_id, session.pk)}/{kind}-{first:012d}-{last:012d}{suffix}.json.gz"


def archived_through(session_pk: uuid.UUID) -> int:
    """The highest event version of the session in the archive (0 when none is)."""
    top = ArchiveSegment.objects.filter(session_id=session_pk, kind=ArchiveKind.EVENTS).aggregate(top=Max("to_version"))
    return int(top["top"] or 0)


def _record(
    session: AgentSession, document: ArchiveDocument, key: str, data: bytes, digest: str, job_run: JobRun | None
) -> None:
    ArchiveSegment.objects.create(
        tenant_id=session.tenant_id,
        session=session,
        kind=document.kind,
        from_version=document.from_version,
        to_version=document.to_version,
        snapshot_versions=[doc["version"] for doc in document.snapshots],
        storage_key=key,
        stored_bytes=len(data),
        sha256=digest,
        counts=document.counts(),
        job_run=job_run,
    )


def _store(session: AgentSession, document: ArchiveDocument, key: str, job_run: JobRun | None) -> int:
    data, digest = pack(document)
    archive_storage().put(key, data)
    _record(session, document, key, data, digest, job_run)
    return len(data)


def _locked(session_pk: uuid.UUID, *, wait: bool = False) -> AgentSession | None:
    return (
        AgentSession.objects.select_for_update(skip_locked=not wait, of=("self",))
        .select_related("tenant")
        .filter(pk=session_pk)
        .first()
    )


def _events_document(session: AgentSession, first: int, last: int, keep_snapshot: int) -> ArchiveDocument:
    return ArchiveDocument(
        kind=ArchiveKind.EVENTS,
        tenant=str(session.tenant_id),
        session=str(session.pk),
        from_version=first,
        to_version=last,
        events=[
            event_doc(row)
            for row in Event.objects.filter(session=session, version__gte=first, version__lte=last).order_by("version")
        ],
        snapshots=[
            snapshot_doc(row)
            for row in EventSnapshot.objects.filter(session=session, version__lte=last)
            .exclude(version=keep_snapshot)
            .order_by("version")
        ],
    )


def _same_rows(session: AgentSession, document: ArchiveDocument, first: int, last: int, keep_snapshot: int) -> bool:
    """Whether the range still holds exactly the rows in `document` (events never change once written; a
    snapshot may have been added, or an erasure may have removed everything)."""
    events = Event.objects.filter(session=session, version__gte=first, version__lte=last).count()
    snapshots = list(
        EventSnapshot.objects.filter(session=session, version__lte=last)
        .exclude(version=keep_snapshot)
        .order_by("version")
        .values_list("pk", flat=True)
    )
    return events == len(document.events) and snapshots == [doc["id"] for doc in document.snapshots]


def archive_events_step(
    session_pk: uuid.UUID,
    *,
    upto: int,
    keep_snapshot: int,
    limit: int,
    job_run: JobRun | None = None,
    wait: bool = False,
) -> Moved | None:
    """Archive the next at most `limit` events at or below `upto` (and the snapshots among them, except the one
    at `keep_snapshot`). None when nothing is left to archive up to `upto`; a `busy` result when another worker
    holds the session row and `wait` is False.

    The archive object is written before the session row is locked: the rows in it are below the head and never
    change, so appends to the session wait only for the short delete, never for cold storage. The object's name
    is this attempt's own (`segment_key`'s `attempt`). Under the lock the range is checked again: when another
    worker archived it meanwhile, or the session went (an erasure), nothing is deleted and this attempt's object
    is removed; when a snapshot arrived meanwhile the object is written again with it.
    """
    session = AgentSession.objects.filter(pk=session_pk).first()
    if session is None:
        return None
    first = archived_through(session.pk) + 1
    last = min(upto, first + limit - 1)
    if last < first:
        return None
    key = segment_key(session, ArchiveKind.EVENTS, first, last, attempt=secrets.token_hex(4))
    document = _events_document(session, first, last, keep_snapshot)
    data, digest = pack(document)
    archive_storage().put(key, data)
    written_at = time.monotonic()
    try:
        moved, recorded = _record_step(
            session_pk, key, document, data, digest, first, last, keep_snapshot, job_run, wait, written_at
        )
    except BaseException:
        archive_storage().delete(key)  # nothing records it
        raise
    if not recorded:
        archive_storage().delete(key)
    return moved


@transaction.atomic
def _record_step(
    session_pk: uuid.UUID,
    key: str,
    document: ArchiveDocument,
    data: bytes,
    digest: str,
    first: int,
    last: int,
    keep_snapshot: int,
    job_run: JobRun | None,
    wait: bool,
    written_at: float,
) -> tuple[Moved | None, bool]:
    """archive_events_step under the session's lock: (what moved, whether the object at `key` was recorded)."""
    locked = _locked(session_pk, wait=wait)
    if locked is None:
        return (Moved(busy=True) if AgentSession.objects.filter(pk=session_pk).exists() else None), False
    if archived_through(session_pk) != first - 1:
        return Moved(), False  # the caller moves on from the new watermark
    if not _same_rows(locked, document, first, last, keep_snapshot):
        document = _events_document(locked, first, last, keep_snapshot)
        data, digest = pack(document)
        archive_storage().put(key, data)
    elif time.monotonic() - written_at > ORPHAN_GRACE.total_seconds() / 2 and not archive_storage().exists(key):
        # This step waited for the lock so long that `remove_orphans` may have taken its object as a killed
        # step's (a step that did not wait that long asks cold storage nothing under the lock).
        archive_storage().put(key, data)
    _record(locked, document, key, data, digest, job_run)
    Event.objects.filter(session=locked, version__gte=first, version__lte=last).delete()
    # By id: a snapshot written after the check stays in Postgres rather than going unarchived.
    EventSnapshot.objects.filter(pk__in=[doc["id"] for doc in document.snapshots]).delete()
    counts = document.counts()
    moved = Moved(events=counts["events"], snapshots=counts["snapshots"], archive_bytes=len(data), segments=1)
    return moved, True


def archive_events_upto(
    session_pk: uuid.UUID,
    *,
    upto: int,
    keep_snapshot: int,
    limit: int,
    job_run: JobRun | None = None,
    wait: bool = False,
) -> Moved:
    """Archive step by step up to `upto`; stops early (`busy`) when another worker holds the session. Archive
    objects that killed steps left in the session's folder are removed first (`remove_orphans`)."""
    remove_orphans(session_pk)
    moved = Moved()
    while step := archive_events_step(
        session_pk, upto=upto, keep_snapshot=keep_snapshot, limit=limit, job_run=job_run, wait=wait
    ):
        moved.add(step)
        if step.busy:
            break
    return moved


# An attempt writes its object and records it moments later, or after waiting for the session's lock; none waits
# anywhere near this long. An object no segment names that is older is a killed attempt's.
ORPHAN_GRACE = timedelta(hours=24)


def remove_orphans(session_pk: uuid.UUID, *, now: datetime | None = None) -> int:
    """Remove the session's archive objects that no segment records and that were written more than
    ORPHAN_GRACE ago (left by steps whose worker was killed between writing an object and recording it); how
    many. The folder is listed without a lock; the objects are removed under the session's lock (not at all
    when another worker holds it), so a step that was waiting for it finds its object gone and writes it again.
    """
    session = AgentSession.objects.filter(pk=session_pk).first()
    if session is None:
        return 0
    storage = archive_storage()
    cutoff = (now or timezone.now()) - ORPHAN_GRACE
    recorded = ArchiveSegment.objects.filter(session_id=session_pk).values_list("storage_key", flat=True)
    known = set(recorded)
    stale = []
    for key in storage.listdir(session_folder(session.tenant_id, session.pk)):
        try:
            if key not in known and storage.modified_at(key) < cutoff:
                stale.append(key)
        except NotFound:
            continue  # removed meanwhile
    if not stale:
        return 0
    with transaction.atomic():
        if _locked(session_pk) is None:
            return 0
        orphans = set(stale) - set(recorded.all())
        for key in orphans:
            storage.delete(key)
    if orphans:
        logger.warning("archive_orphans_removed", session=str(session_pk), objects=len(orphans))
    return len(orphans)


# --- event archival ---------------------------------------------------------------------------------------


def context_floor(session: AgentSession) -> int:
    """The oldest event version the hot context window is rebuilt from; events from it on must stay."""
    window = settings.CONTEXT_WINDOW_MESSAGES
    events = Event.objects.filter(session=session)
    replaced = (
        events.filter(type=EventType.CONTEXT_REPLACED).order_by("-version").values_list("version", flat=True).first()
    )
    added = list(
        events.filter(type=EventType.MESSAGE_ADDED).order_by("-version").values_list("version", flat=True)[:window]
    )
    if len(added) == window and (replaced is None or added[-1] > replaced):
        return added[-1]
    if replaced is not None:
        return int(replaced)
    return added[-1] if added else session.head_version + 1


def _event_at(version_of: Any) -> Subquery:
    return Subquery(
        Event.objects.filter(session_id=OuterRef("session_id"), version=version_of).values("created_at")[:1]
    )


def sessions_with_old_events(
    tenant_id: uuid.UUID, *, cutoff: datetime, after: uuid.UUID | None, limit: int
) -> list[tuple[uuid.UUID, int]]:
    """(session id, newest snapshot version whose event is older than `cutoff`) for the tenant's live sessions
    that still hold events below such a snapshot; ordered by session id, after `after`."""
    watermark = Subquery(
        ArchiveSegment.objects.filter(session_id=OuterRef("session_id"), kind=ArchiveKind.EVENTS)
        .values("session_id")
        .annotate(top=Max("to_version"))
        .values("top")[:1]
    )
    live = AgentSession.objects.filter(tenant_id=tenant_id).exclude(status=SessionStatus.ARCHIVED)
    rows = (
        EventSnapshot.objects.filter(session__in=live)
        .annotate(archived=Coalesce(watermark, 0), event_created=_event_at(OuterRef("version")))
        .filter(version__gt=F("archived"), event_created__lt=cutoff)
    )
    if after is not None:
        rows = rows.filter(session_id__gt=after)
    grouped = rows.values("session_id").annotate(boundary=Max("version")).order_by("session_id")[:limit]
    return [(row["session_id"], row["boundary"]) for row in grouped]


def tool_state_floor(session: AgentSession) -> int:
    """The oldest event version a tool state still alive in Redis may be rebuilt from (a TOOL_STATE_SET or
    _CLEARED written within the tenant's tool-state lifetime); events from it on must stay."""
    alive_since = timezone.now() - timedelta(seconds=lifetimes_for(session.tenant_id).tool_state_seconds)
    oldest = (
        Event.objects.filter(
            session=session,
            type__in=[EventType.TOOL_STATE_SET, EventType.TOOL_STATE_CLEARED],
            created_at__gte=alive_since,
        )
        .order_by("version")
        .values_list("version", flat=True)
        .first()
    )
    return session.head_version + 1 if oldest is None else int(oldest)


def event_archival_boundary(session: AgentSession, boundary: int, *, now: datetime | None = None) -> int | None:
    """The snapshot version to archive up to: the newest snapshot at or below `boundary` that neither the context
    window nor a live tool state reaches past, whose event is older than the tenant's idempotency lifetime, and
    above what is archived already. None when there is none.

    An append's Idempotency-Key is kept on its events (`sessions_app.services._appended_with` looks for it
    there), and that is all a retry finds once Redis lost its record: events a retry may still name stay in
    Postgres for as long as a retry is honoured, whatever the event retention says."""
    floor = min(context_floor(session), tool_state_floor(session))
    done = archived_through(session.pk)
    retry_cutoff = (now or timezone.now()) - timedelta(seconds=lifetimes_for(session.tenant_id).idempotency_seconds)
    version = (
        EventSnapshot.objects.filter(session=session, version__lte=min(boundary, floor - 1), version__gt=done)
        .annotate(event_created=_event_at(OuterRef("version")))
        .filter(event_created__lt=retry_cutoff)
        .order_by("-version")
        .values_list("version", flat=True)
        .first()
    )
    return None if version is None else int(version)


# --- session archival -------------------------------------------------------------------------------------


def used_since(cutoff: datetime) -> Q:
    """Sessions written to since `cutoff` by what does not move `last_activity_at` (which only event appends
    move, on their hot path): a status or metadata update (`updated_at`), a checkpoint or LangGraph save, or
    the operation journal."""
    session = OuterRef("pk")
    return (
        Q(updated_at__gte=cutoff)
        | Q(Exists(Checkpoint.objects.filter(session_id=session, created_at__gte=cutoff)))
        | Q(Exists(ThreadCheckpoint.objects.filter(session_id=session, created_at__gte=cutoff)))
        | Q(Exists(Operation.objects.filter(session_id=session, created_at__gte=cutoff)))
        | Q(Exists(Operation.objects.filter(session_id=session, finished_at__gte=cutoff)))
    )


def idempotency_lifetime() -> CombinedExpression:
    """The idempotency lifetime of each row's tenant (its own policy's, else the global one) as an interval, for
    a query over the rows of several tenants."""
    own = RetentionPolicy.objects.filter(tenant_id=OuterRef("tenant_id")).values("idempotency_ttl_seconds")[:1]
    return Coalesce(Subquery(own), Value(global_policy().idempotency_ttl_seconds)) * Value(timedelta(seconds=1))


def archivable_sessions(
    tenant_ids: list[uuid.UUID], *, cutoff: datetime, now: datetime | None = None
) -> QuerySet[AgentSession]:
    """The sessions session archival takes now: those idle since before `cutoff` (not in use by other means
    either, see `used_since`), and those a client archived itself whose history is still in Postgres (no
    SessionArchival yet) once idle as long. memories_app distills a session its client archived from its
    events within DISTILL_ARCHIVED_WITHIN of the archival, so such a session waits that long at least, and no
    session goes while its distillation is still to run.

    Nor does one whose last event is younger than its tenant's idempotency lifetime, whatever `cutoff` says: a
    retried append finds its Idempotency-Key on the events (`sessions_app.services._appended_with`) once Redis
    lost its record, and archival moves them all, so the retry would be a 409 instead of the first answer (as
    event archival keeps them, see `event_archival_boundary`)."""
    now = now or timezone.now()
    client_cutoff = min(cutoff, now - DISTILL_ARCHIVED_WITHIN)
    idle = Q(last_activity_at__lt=cutoff) & ~Q(status=SessionStatus.ARCHIVED) & ~used_since(cutoff)
    archived_by_client = (
        Q(last_activity_at__lt=client_cutoff, status=SessionStatus.ARCHIVED)
        & ~Q(Exists(SessionArchival.objects.filter(session_id=OuterRef("pk"))))
        & ~used_since(client_cutoff)
    )
    distilling = PromotionJob.objects.filter(
        session_id=OuterRef("pk"), kind=JobKind.DISTILL, status__in=[JobStatus.PENDING, JobStatus.RUNNING]
    )
    retried_until = ExpressionWrapper(F("last_activity_at") + idempotency_lifetime(), output_field=DateTimeField())
    return (
        AgentSession.objects.filter(tenant_id__in=tenant_ids)
        .filter(idle | archived_by_client)
        .exclude(Exists(distilling))
        .alias(retried_until=retried_until)
        .filter(retried_until__lt=now)
    )


def claim_inactive_sessions(tenant_id: uuid.UUID, *, cutoff: datetime, limit: int) -> list[uuid.UUID]:
    """Mark up to `limit` of the tenant's sessions idle since before `cutoff` (and for its idempotency lifetime)
    as archived (they accept no more writes from now on) and queue their archival, with that of sessions their
    client archived (see `archivable_sessions`); the ids claimed. Rows other workers hold are skipped."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(
            archivable_sessions([tenant_id], cutoff=cutoff, now=now)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("last_activity_at")
            .values_list("pk", "head_version", "status")[:limit]
        )
        if not rows:
            return []
        ids = [pk for pk, _, _ in rows]
        # A session its client archived keeps its status and version: only its history moves.
        idle = [pk for pk, _, status in rows if status != SessionStatus.ARCHIVED]
        AgentSession.objects.filter(pk__in=idle).update(
            status=SessionStatus.ARCHIVED, archived_from=F("status"), version=F("version") + 1, updated_at=now
        )
        SessionArchival.objects.bulk_create(
            [SessionArchival(session_id=pk, tenant_id=tenant_id, head_version=head) for pk, head, _ in rows],
            ignore_conflicts=True,
        )
        for session in AgentSession.objects.filter(pk__in=idle):
            publish_on_commit(
                [tenant_group(tenant_id), session_group(session.pk)],
                {
                    "type": "session.updated",
                    "tenant": str(tenant_id),
                    "session": session.session_id,
                    "status": session.status,
                    "version": session.version,
                },
            )
        # The hot context of an archived session will not be read again by an agent.
        transaction.on_commit(lambda: [context.purge_session(pk) for pk in ids], robust=True)
    return ids


def _ensure_head_snapshot(session: AgentSession, head: int) -> None:
    if head == 0 or EventSnapshot.objects.filter(session=session, version=head).exists():
        return
    save_snapshot(session, version=head, state=rebuild_state(session, version=head).state)


def _finish_step(session_pk: uuid.UUID, *, head: int, job_run: JobRun | None, wait: bool) -> Moved | None:
    """Archive the operation journal and any snapshot left below the head, and mark the archival done."""
    with transaction.atomic():
        archival = (
            SessionArchival.objects.select_for_update(skip_locked=not wait)
            .filter(session_id=session_pk, state=SessionArchival.State.PENDING)
            .first()
        )
        session = _locked(session_pk, wait=wait) if archival is not None else None
        if archival is None or session is None:
            return None
        operations = Operation.objects.filter(session=session)
        snapshots = EventSnapshot.objects.filter(session=session).exclude(version=head)
        document = ArchiveDocument(
            kind=ArchiveKind.SESSION,
            tenant=str(session.tenant_id),
            session=str(session.pk),
            from_version=head,
            to_version=head,
            snapshots=[snapshot_doc(row) for row in snapshots.order_by("version")],
            operations=[operation_doc(row) for row in operations.order_by("created_at", "id")],
        )
        moved = Moved()
        if document.snapshots or document.operations:
            key = segment_key(session, ArchiveKind.SESSION, head, head)
            moved = Moved(
                snapshots=len(document.snapshots),
                operations=len(document.operations),
                archive_bytes=_store(session, document, key, job_run),
                segments=1,
            )
            operations.delete()
            snapshots.delete()
        archival.state = SessionArchival.State.DONE
        archival.finished_at = timezone.now()
        archival.save(update_fields=["state", "finished_at"])
        return moved


def complete_archival(
    session_pk: uuid.UUID, *, limit: int, job_run: JobRun | None = None, wait: bool = False
) -> Moved | None:
    """Move everything of a claimed session but its row and head snapshot to the archive.

    None when the archival is done already or another worker holds it; a `busy` result when the session row
    was held midway (the next run resumes it).
    """
    archival = SessionArchival.objects.filter(session_id=session_pk, state=SessionArchival.State.PENDING).first()
    session = AgentSession.objects.filter(pk=session_pk).first()
    if archival is None or session is None:
        return None
    head = archival.head_version
    _ensure_head_snapshot(session, head)
    moved = archive_events_upto(session_pk, upto=head, keep_snapshot=head, limit=limit, job_run=job_run, wait=wait)
    if moved.busy:
        return moved
    finished = _finish_step(session_pk, head=head, job_run=job_run, wait=wait)
    if finished is None:
        return moved if moved.segments else None
    moved.add(finished)
    return moved


def pending_archivals(*, tenant_id: uuid.UUID | None = None, limit: int = 1000) -> list[uuid.UUID]:
    pending = SessionArchival.objects.filter(state=SessionArchival.State.PENDING)
    if tenant_id is not None:
        pending = pending.filter(tenant_id=tenant_id)
    return list(pending.order_by("claimed_at").values_list("session_id", flat=True)[:limit])
