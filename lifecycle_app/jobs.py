"""The lifecycle jobs: each applies one policy to every tenant group, records a JobRun, and can dry-run.

A job is a loop of short claimed steps (see `archival`, `eviction`, `checkpoints_app.retention`), so it can be
interrupted anywhere and the next run resumes, and several workers may run the same job at once: each step
claims its rows with `SKIP LOCKED` or a conditional UPDATE, and the counts of all runs add up to the rows done.
A dry run changes nothing and records what the job would do (the same numbers the dashboard previews).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.conf import settings
from django.utils import timezone

from checkpoints_app.retention import Policy, SessionOutcome, plan_session, prune_step
from langgraph_app import retention as langgraph_retention
from lifecycle_app import archival, eviction, purge, selectors, services
from lifecycle_app.models import Job, JobRun
from lifecycle_app.policies import PolicyGroup, policy_groups
from memories_app import background
from memories_app.embeddings import EmbedderUnavailable
from sessions_app.models import AgentSession

logger = structlog.get_logger("memory.lifecycle")

Counts = dict[str, Any]


def _add(total: Counts, more: Counts) -> None:
    for key, value in more.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total[key] = total.get(key, 0) + value


class JobStopped(Exception):
    """A job that can go no further for now (what it depends on is down): its run is recorded as failed with
    the counts of what it did, and the next scheduled run carries on from there."""

    def __init__(self, counts: Counts, cause: BaseException) -> None:
        super().__init__(type(cause).__name__)
        self.counts = counts
        self.cause = cause


def run_job(
    job: str,
    body: Callable[[JobRun, datetime, list[dict[str, Any]]], Counts],
    *,
    dry_run: bool,
    triggered_by: str,
    task_id: str = "",
    now: datetime | None = None,
) -> JobRun:
    """Run `body` under a JobRun row: started now, finished with its counts and errors, failed if it raised
    (the exception is re-raised so Celery can retry)."""
    run = services.start_job_run(job=job, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id)
    log = logger.bind(job=job, job_run=str(run.pk), dry_run=dry_run)
    log.info("job_started")
    started = time.perf_counter()
    errors: list[dict[str, Any]] = []
    try:
        counts = body(run, now or timezone.now(), errors)
    except JobStopped as stop:
        services.finish_job_run(
            run=run, counts=stop.counts, errors=[*errors, services.describe_error(stop.cause)], failed=True
        )
        log.warning("job_stopped", error=type(stop.cause).__name__, **stop.counts)
        return run
    except Exception as exc:
        services.finish_job_run(run=run, counts={}, errors=[*errors, services.describe_error(exc)], failed=True)
        log.error("job_failed", error=type(exc).__name__)
        raise
    services.finish_job_run(run=run, counts=counts, errors=errors, failed=False)
    log.info("job_finished", duration_ms=round((time.perf_counter() - started) * 1000, 1), **counts)
    return run


def _unless_failed(counts: Counts, failure: Exception | None) -> Counts:
    """The counts of a run that went through every session; JobStopped when a session failed (`failure` is the
    last such error; each is in the run's errors already). Cold storage that cannot be written fails them all,
    and such a run must not read as a success on the dashboard or in `memory_lifecycle_job_runs`; what failed is
    taken again by the next run."""
    if failure is not None:
        raise JobStopped(counts, failure)
    return counts


def _groups(enabled: Callable[[PolicyGroup], bool]) -> list[PolicyGroup]:
    return [group for group in policy_groups() if group.tenant_ids and enabled(group)]


# --- session archival -------------------------------------------------------------------------------------


def archive_sessions(*, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None) -> JobRun:
    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        groups = _groups(lambda group: group.policy.session_archival_enabled)
        if dry_run:
            counts: Counts = {}
            for group in groups:
                _add(counts, selectors.preview_session_archival(group.policy, group.tenant_ids, now).counts)
            return counts
        limit = settings.LIFECYCLE_BATCH_SIZE
        claimed = 0
        for group in groups:
            cutoff = group.policy.session_cutoff(now)
            for tenant_id in group.tenant_ids:
                while ids := archival.claim_inactive_sessions(tenant_id, cutoff=cutoff, limit=limit):
                    claimed += len(ids)
        moved, finished, busy = archival.Moved(), 0, 0
        failure: Exception | None = None
        # Every pending archival, including those a crashed or interrupted run left behind. A session another
        # worker holds is skipped at first, then waited for (one short step at a time) once the rest is done.
        pending = archival.pending_archivals(limit=1_000_000)
        for wait in (False, True):
            held: list[uuid.UUID] = []
            for session_pk in pending:
                try:
                    done = archival.complete_archival(session_pk, limit=limit, job_run=run, wait=wait)
                except Exception as exc:  # one bad session must not stop the others; it stays pending
                    errors.append({"session": str(session_pk), **services.describe_error(exc)})
                    failure = exc
                    continue
                if done is None:
                    continue
                moved.add(archival.Moved(**{**done.__dict__, "busy": False}))
                if done.busy:
                    held.append(session_pk)
                else:
                    finished += 1
            pending, busy = held, len(held)
        # The archive folders of tenants deleted and sessions erased while cold storage could not be reached.
        removed = 0
        try:
            removed = services.remove_recorded_archives()
        except Exception as exc:  # cold storage cannot be reached: the next run tries again
            errors.append(services.describe_error(exc))
            failure = exc
        return _unless_failed(
            {
                "sessions_claimed": claimed,
                "sessions_archived": finished,
                "sessions_busy": busy,
                "events": moved.events,
                "snapshots": moved.snapshots,
                "operations": moved.operations,
                "archive_bytes": moved.archive_bytes,
                "removed_archive_objects": removed,
            },
            failure,
        )

    return run_job(Job.SESSION_ARCHIVAL, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


# --- event archival ---------------------------------------------------------------------------------------


def archive_events(*, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None) -> JobRun:
    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        groups = _groups(lambda group: group.policy.event_archival_enabled)
        counts: Counts = {}
        if dry_run:
            for group in groups:
                _add(counts, selectors.preview_event_archival(group.policy, group.tenant_ids, now).counts)
            return counts
        moved, sessions, busy = archival.Moved(), 0, 0
        failure: Exception | None = None
        for group in groups:
            plan = selectors.event_archival_plan(group.policy, group.tenant_ids, now)
            for wait in (False, True):
                held: list[tuple[uuid.UUID, int]] = []
                for session_pk, upto in plan:
                    try:
                        step = archival.archive_events_upto(
                            session_pk,
                            upto=upto,
                            keep_snapshot=upto,
                            limit=settings.LIFECYCLE_BATCH_SIZE,
                            job_run=run,
                            wait=wait,
                        )
                    except Exception as exc:
                        errors.append({"session": str(session_pk), **services.describe_error(exc)})
                        failure = exc
                        continue
                    moved.add(archival.Moved(**{**step.__dict__, "busy": False}))
                    sessions += step.events > 0
                    if step.busy:
                        held.append((session_pk, upto))
                plan, busy = held, busy + len(held) if wait else busy
        return _unless_failed(
            {
                "sessions": sessions,
                "sessions_busy": busy,
                "events": moved.events,
                "snapshots": moved.snapshots,
                "archive_bytes": moved.archive_bytes,
            },
            failure,
        )

    return run_job(Job.EVENT_ARCHIVAL, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


# --- checkpoint retention ---------------------------------------------------------------------------------


def _prune(session: AgentSession, policy: Policy, *, wait: bool) -> SessionOutcome:
    total = SessionOutcome()
    while step := prune_step(session, policy, limit=settings.LIFECYCLE_BATCH_SIZE, wait=wait):
        total.deleted += step.deleted
        total.rewritten += step.rewritten
        if step.busy or step.broken:
            total.busy, total.broken = step.busy, step.broken
            break
    return total


def _prune_thread(session_pk: uuid.UUID, policy: Policy, *, wait: bool) -> tuple[int, bool]:
    """(LangGraph checkpoints removed, whether another worker held the thread)."""
    deleted = 0
    while step := langgraph_retention.retention_step(
        session_pk=session_pk,
        cutoff=policy.cutoff,
        keep_latest=policy.keep_latest,
        limit=settings.LIFECYCLE_BATCH_SIZE,
        wait=wait,
    ):
        if step.busy:
            return deleted, True
        deleted += step.deleted
    return deleted, False


def _threads_retention(group: PolicyGroup, policy: Policy, now: datetime, *, dry_run: bool) -> Counts:
    """The same policy on the group's LangGraph threads: per thread and namespace, the latest N by checkpoint
    id and the young ones stay (`langgraph_app.retention.retention_step`, which keeps a racing save's blobs).
    A thread that uses a DeltaChannel is kept whole: its values are rebuilt from older checkpoints' writes."""
    deleted: dict[uuid.UUID, int] = {}
    busy: list[uuid.UUID] = []
    skipped = 0
    for session_pk, expired in selectors.expired_thread_checkpoints(group.policy, group.tenant_ids, now).items():
        if langgraph_retention.uses_delta_channel(session_pk):
            skipped += 1
            continue
        removed, held = (expired, False) if dry_run else _prune_thread(session_pk, policy, wait=False)
        if held:
            busy.append(session_pk)
        deleted[session_pk] = removed
    for session_pk in busy:  # another worker had it a moment ago: wait for it this time
        deleted[session_pk] += _prune_thread(session_pk, policy, wait=True)[0]
    return {
        "langgraph_checkpoints_deleted": sum(deleted.values()),
        "langgraph_threads": sum(1 for removed in deleted.values() if removed),
        "langgraph_delta_threads_kept": skipped,
    }


def apply_checkpoint_retention(
    *, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None
) -> JobRun:
    """Checkpoint retention per tenant policy, through `checkpoints_app.retention` (which keeps every kept
    chain verifiable and serialises with saves), and on LangGraph threads (`_threads_retention`)."""

    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        deleted, rewritten, sessions = 0, 0, 0
        threads: Counts = {
            "langgraph_checkpoints_deleted": 0,
            "langgraph_threads": 0,
            "langgraph_delta_threads_kept": 0,
        }
        for group in _groups(lambda group: group.policy.checkpoint_retention_enabled):
            policy = Policy(cutoff=group.policy.checkpoint_cutoff(now), keep_latest=group.policy.checkpoint_keep_latest)
            ids = list(
                selectors.expired_checkpoints(group.policy, group.tenant_ids, now)
                .values_list("session_id", flat=True)
                .distinct()
                .order_by("session_id")
            )
            busy: list[AgentSession] = []
            for session in AgentSession.objects.filter(pk__in=ids).order_by("pk"):
                outcome = plan_session(session, policy) if dry_run else _prune(session, policy, wait=False)
                if outcome.busy:
                    busy.append(session)
                for_session = [outcome]
                if outcome.busy and not dry_run:
                    for_session.append(_prune(session, policy, wait=True))
                for item in for_session:
                    deleted += item.deleted
                    rewritten += item.rewritten
                    if item.broken is not None:
                        errors.append({"session": str(session.pk), "type": "IntegrityFailure", "details": item.broken})
                sessions += any(item.deleted for item in for_session)
            _add(threads, _threads_retention(group, policy, now, dry_run=dry_run))
        return {"checkpoints_deleted": deleted, "checkpoints_rewritten": rewritten, "sessions": sessions, **threads}

    return run_job(Job.CHECKPOINT_RETENTION, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


# --- memories ---------------------------------------------------------------------------------------------


def evict_memories(*, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None) -> JobRun:
    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        counts: Counts = {}
        groups = _groups(lambda group: group.policy.memory_eviction_enabled)
        if not dry_run:
            # Reads counted in Redis since the last flush may lift a memory above the threshold.
            background.flush_access_stats()
        for group in groups:
            params = selectors.eviction_params(group.policy, group.tenant_ids, now)
            if dry_run:
                _add(counts, selectors.preview_memory_eviction(group.policy, group.tenant_ids, now).counts)
                continue
            forgiven = eviction.forgive_candidates(params)
            marked = 0
            while found := eviction.mark_candidates(params, limit=settings.LIFECYCLE_BATCH_SIZE):
                marked += found
            evicted = 0
            while ids := eviction.evict_step(params, limit=settings.LIFECYCLE_BATCH_SIZE):
                evicted += len(ids)
            _add(counts, {"forgiven": forgiven, "marked": marked, "evicted": evicted})
        return counts

    return run_job(Job.MEMORY_EVICTION, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


def purge_memories(*, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None) -> JobRun:
    """Physically remove logically deleted memories past the purge delay, and old job run rows (after marking
    the runs a crash left "running" as abandoned)."""

    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        if dry_run:
            return selectors.preview_memory_purge(now).counts
        purged, cutoff = 0, selectors.purge_cutoff(now)
        while removed := purge.purge_memories_step(cutoff=cutoff, limit=settings.LIFECYCLE_BATCH_SIZE, now=now):
            purged += removed
        abandoned = services.fail_abandoned_job_runs(now=now)
        runs = services.prune_job_runs(before=now - timedelta(days=settings.LIFECYCLE_JOB_RUNS_KEEP_DAYS))
        return {"memories": purged, "job_runs_abandoned": abandoned, "job_runs_pruned": runs}

    return run_job(Job.MEMORY_PURGE, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


# --- profile outbox ---------------------------------------------------------------------------------------

# A run applies at most this many entries; beat rings again soon after.
OUTBOX_DRAIN_MAX = 10_000


def drain_outbox(*, dry_run: bool, triggered_by: str, task_id: str = "", now: datetime | None = None) -> JobRun:
    """Apply the profile outbox to the vector store (memories_app applies each entry once, in order, under an
    advisory lock), then remove entries applied more than OUTBOX_KEEP_PROCESSED_DAYS ago. An embedder outage
    stops the run (recorded as failed, the entry left for the next run)."""

    def body(run: JobRun, now: datetime, errors: list[dict[str, Any]]) -> Counts:
        if dry_run:
            return selectors.preview_outbox(now).counts
        pruned, cutoff = 0, selectors.outbox_prune_cutoff(now)
        while removed := purge.prune_outbox_step(cutoff=cutoff, limit=settings.LIFECYCLE_BATCH_SIZE):
            pruned += removed
        applied = 0
        try:
            while applied < OUTBOX_DRAIN_MAX and background.apply_next_outbox_entry():
                applied += 1
        except EmbedderUnavailable as exc:
            raise JobStopped({"applied": applied, "pruned": pruned}, exc) from exc
        return {"applied": applied, "pruned": pruned}

    return run_job(Job.OUTBOX_DRAIN, body, dry_run=dry_run, triggered_by=triggered_by, task_id=task_id, now=now)


JOBS: dict[str, Callable[..., JobRun]] = {
    Job.SESSION_ARCHIVAL: archive_sessions,
    Job.EVENT_ARCHIVAL: archive_events,
    Job.CHECKPOINT_RETENTION: apply_checkpoint_retention,
    Job.MEMORY_EVICTION: evict_memories,
    Job.MEMORY_PURGE: purge_memories,
    Job.OUTBOX_DRAIN: drain_outbox,
}


def run_by_name(job: str, *, dry_run: bool, triggered_by: str, task_id: str = "") -> uuid.UUID:
    return JOBS[job](dry_run=dry_run, triggered_by=triggered_by, task_id=task_id).pk
