"""Writes of lifecycle_app: retention policy edits, job run rows, and restoring or deleting archives."""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from lifecycle_app import lifetimes
from lifecycle_app.archive import ArchiveDocument, unpack
from lifecycle_app.models import ArchiveKind, ArchiveRemoval, ArchiveSegment, JobRun, RetentionPolicy, RunStatus
from lifecycle_app.policies import DEFAULTS
from lifecycle_app.storage import archive_storage, check_key, session_folder
from memory_admin.errors import Conflict, NotFound, ServiceError, ValidationFailed
from sessions_app.models import AgentSession, Event, EventSnapshot, Operation
from tenants_app.models import Tenant

logger = structlog.get_logger("memory.lifecycle")


# --- policies ---------------------------------------------------------------------------------------------


@transaction.atomic
def set_retention_policy(*, tenant: Tenant | None, values: dict[str, Any], updated_by: str) -> RetentionPolicy:
    """Set the global policy (`tenant` None) or a tenant's overrides. A value of None inherits the default.

    ValidationFailed names the field when a value is out of range or not a policy field.
    """
    unknown = set(values) - set(DEFAULTS)
    if unknown:
        raise ValidationFailed("Not a retention policy field.", details={"fields": sorted(unknown)})
    policy = RetentionPolicy.objects.select_for_update().filter(tenant=tenant).first() or RetentionPolicy(tenant=tenant)
    for name, value in values.items():
        setattr(policy, name, value)
    policy.updated_by = updated_by
    policy.updated_at = timezone.now()
    try:
        policy.full_clean(exclude=["tenant"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise ValidationFailed(f"{field}: {' '.join(messages)}", details={"field": field}) from None
    policy.save()
    transaction.on_commit(lifetimes.forget)
    logger.info("retention_policy_set", tenant=str(tenant.pk) if tenant else None, fields=sorted(values))
    return policy


@transaction.atomic
def remove_retention_override(*, tenant: Tenant) -> bool:
    """Make the tenant follow the global policy again; False when it had no override."""
    deleted, _ = RetentionPolicy.objects.filter(tenant=tenant).delete()
    transaction.on_commit(lifetimes.forget)
    return bool(deleted)


# --- job runs ---------------------------------------------------------------------------------------------


def start_job_run(*, job: str, dry_run: bool, triggered_by: str, task_id: str = "") -> JobRun:
    """The durable row of a run that starts now (committed at once, so a crashed run stays visible)."""
    request_id = structlog.contextvars.get_contextvars().get("request_id", "")
    return JobRun.objects.create(
        job=job, dry_run=dry_run, triggered_by=triggered_by[:200], task_id=task_id[:64], request_id=request_id[:64]
    )


def describe_error(exc: BaseException) -> dict[str, Any]:
    """An error as it may be stored and logged: our own messages (they carry no personal data), else the type
    and where it was raised, never the message of a driver or library (it can quote row values)."""
    if isinstance(exc, ServiceError):
        return {"type": type(exc).__name__, "message": exc.message, "details": exc.details}
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return {"type": type(exc).__name__, "where": where}


def finish_job_run(*, run: JobRun, counts: dict[str, Any], errors: list[dict[str, Any]], failed: bool) -> JobRun:
    run.counts = counts
    run.errors = errors[:100]
    run.status = RunStatus.FAILED if failed else RunStatus.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["counts", "errors", "status", "finished_at"])
    return run


# No run of any job takes anywhere near this long: a run still "running" after it was killed with its worker.
ABANDONED_AFTER = timedelta(hours=24)


def fail_abandoned_job_runs(*, now: datetime) -> int:
    """Mark runs started more than ABANDONED_AFTER ago and never finished as failed ("abandoned"), so that the
    dashboard and `memory_lifecycle_jobs_running` stop counting them as running; how many. They keep no
    `finished_at` (nobody saw them end); one that does finish after all records its own outcome over this."""
    error = {
        "type": "Abandoned",
        "message": f"The run did not finish within {ABANDONED_AFTER.total_seconds() / 3600:.0f} hours: its worker "
        "was stopped.",
    }
    return JobRun.objects.filter(status=RunStatus.RUNNING, started_at__lt=now - ABANDONED_AFTER).update(
        status=RunStatus.FAILED, errors=[error]
    )


@transaction.atomic
def prune_job_runs(*, before: Any) -> int:
    deleted, _ = JobRun.objects.filter(started_at__lt=before).exclude(status=RunStatus.RUNNING).delete()
    return deleted


# --- archives ---------------------------------------------------------------------------------------------


def _document(segment: ArchiveSegment) -> ArchiveDocument:
    return unpack(archive_storage().get(segment.storage_key), sha256=segment.sha256)


@transaction.atomic
def restore_archive(*, segment: ArchiveSegment) -> dict[str, int]:
    """Put an archive's rows back into Postgres exactly as they left, then remove the archive object.

    Event segments come back newest first (the archived range stays contiguous from version 1); another
    order is a Conflict, as is a row that exists again. IntegrityFailure when the object does not match its
    checksum, NotFound when it is missing from storage or the segment was restored already.
    """
    locked = (
        ArchiveSegment.objects.select_for_update(of=("self",)).select_related("session").filter(pk=segment.pk).first()
    )
    if locked is None:
        raise NotFound("This archive was restored already, or removed.", details={"segment": str(segment.pk)})
    session: AgentSession = locked.session
    if locked.kind == ArchiveKind.EVENTS:
        newer = ArchiveSegment.objects.filter(
            session=session, kind=ArchiveKind.EVENTS, to_version__gt=locked.to_version
        )
        if newer.exists():
            raise Conflict("Restore this session's newer event archives first.", details={"segment": str(locked.pk)})
    document = _document(locked)
    try:
        with transaction.atomic():
            Event.objects.bulk_create(document.event_rows(session.pk))
            EventSnapshot.objects.bulk_create(document.snapshot_rows(session.pk))
            Operation.objects.bulk_create(document.operation_rows(session.pk))
    except IntegrityError:
        raise Conflict(
            "Some of the archived rows are in Postgres again.", details={"segment": str(locked.pk)}
        ) from None
    key = locked.storage_key
    locked.delete()
    transaction.on_commit(lambda: archive_storage().delete(key), robust=True)
    return document.counts()


@transaction.atomic
def delete_session_archives(*, session: AgentSession) -> int:
    """Remove every archive object of a session and its records (erasure calls this before purging a session);
    how many segments were recorded.

    The session's whole folder goes, recorded objects or not: an archival step whose worker was killed between
    writing its object and recording it left one that no segment names. The folder is recorded for removal in
    this transaction and removed after the commit (`remove_archives_after_commit`); while cold storage cannot be
    reached it stays, its payloads encrypted under the destroyed key, until session archival removes it.
    """
    segments = list(ArchiveSegment.objects.select_for_update().filter(session=session).values_list("pk", flat=True))
    ArchiveSegment.objects.filter(pk__in=segments).delete()
    remove_archives_after_commit(folders=[session_folder(session.tenant_id, session.pk)])
    return len(segments)


@transaction.atomic
def delete_tenant_archives(*, tenant_ids: Iterable[Any]) -> None:
    """Remove every archive object of these tenants, whose rows the caller's transaction deletes: their whole
    folders (`<tenant>/`), every session's objects and any no segment recorded, once committed (see
    `remove_archives_after_commit`)."""
    remove_archives_after_commit(folders=[check_key(str(tenant_id)) for tenant_id in tenant_ids])


def remove_archives_after_commit(*, folders: Sequence[str]) -> None:
    """Record these archive folders for removal in the current transaction, and remove them once it commits.

    Storage may be shared with another deployment (a bucket for staging and production, one directory for the
    profiles of a checkout), so an archive is never taken for garbage because this database does not know it:
    what goes is what a deletion here named. The record is what survives cold storage being down at the commit
    (or a worker killed then); session archival retries it (`remove_recorded_archives`). Nothing is recorded or
    removed when the transaction rolls back.
    """
    ArchiveRemoval.objects.bulk_create([ArchiveRemoval(folder=folder) for folder in folders], ignore_conflicts=True)
    transaction.on_commit(partial(_remove_after_commit, list(folders)), robust=True)


def _remove_after_commit(folders: list[str]) -> None:
    try:
        removed = remove_recorded_archives(folders=folders)
    except Exception as exc:  # cold storage is down (any backend's error): session archival removes them later
        logger.warning("archive_folders_left", folders=len(folders), error=type(exc).__name__)
    else:
        logger.info("archive_folders_removed", folders=len(folders), objects=removed)


def remove_recorded_archives(*, folders: Sequence[str] | None = None) -> int:
    """Remove the archive folders recorded for removal (only these of them, when given), each with everything
    under it, and their records; how many objects went. Several workers may run it at once: each folder is
    claimed (`SKIP LOCKED`). Raises what cold storage raises when it cannot be reached; the records not done
    stay for the next run."""
    storage = archive_storage()
    recorded = ArchiveRemoval.objects.all()
    if folders is not None:
        recorded = recorded.filter(folder__in=folders)
    removed, after = 0, 0
    while pks := list(recorded.filter(pk__gt=after).order_by("pk").values_list("pk", flat=True)[:1000]):
        after = pks[-1]
        for pk in pks:
            with transaction.atomic():
                removal = ArchiveRemoval.objects.select_for_update(skip_locked=True).filter(pk=pk).first()
                if removal is None:  # another worker has it, or removed it already
                    continue
                removed += storage.delete_folder(removal.folder)
                removal.delete()
    return removed
