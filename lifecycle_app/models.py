"""Lifecycle: retention policies (global and per tenant), a durable row per job run, and what was archived.

Policy fields are nullable: NULL means "inherit" (a tenant's override from the global row, the global row
from settings), so a default changed in the environment reaches every tenant that did not override it.
"""

from __future__ import annotations

import uuid

from django.core.validators import BaseValidator, MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from memories_app.models import Memory
from sessions_app.models import AgentSession
from tenants_app.models import Tenant


class Job(models.TextChoices):
    SESSION_ARCHIVAL = "session_archival", "Session archival"
    EVENT_ARCHIVAL = "event_archival", "Event compaction and archival"
    CHECKPOINT_RETENTION = "checkpoint_retention", "Checkpoint retention"
    MEMORY_EVICTION = "memory_eviction", "Memory decay eviction"
    MEMORY_PURGE = "memory_purge", "Purge of deleted memories"
    OUTBOX_DRAIN = "outbox_drain", "Profile outbox draining"


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRun(models.Model):
    """One run of a lifecycle job: when, who asked, what it did (counts) and what went wrong.

    Counts and errors hold ids and numbers only, never personal data.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.CharField(max_length=32, choices=Job.choices)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.RUNNING)
    dry_run = models.BooleanField(default=False)
    # "beat", "admin:<username>", "manual" (a shell or a test).
    triggered_by = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64, blank=True, default="")
    request_id = models.CharField(max_length=64, blank=True, default="")
    counts = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["-started_at"], name="jobrun_recent"),
            models.Index(fields=["job", "-started_at"], name="jobrun_job_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def _days(maximum: int = 36_500) -> list[BaseValidator]:
    return [MinValueValidator(1), MaxValueValidator(maximum)]


def _seconds() -> list[BaseValidator]:
    # A minute to thirty days: shorter makes agents rebuild from Postgres all the time, longer is not a cache.
    return [MinValueValidator(60), MaxValueValidator(30 * 24 * 3600)]


class RetentionPolicy(models.Model):
    """The global policy (tenant NULL, at most one row) or one tenant's overrides."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.OneToOneField(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="retention_policy"
    )
    session_archival_enabled = models.BooleanField(null=True, blank=True)
    session_archive_after_days = models.PositiveIntegerField(null=True, blank=True, validators=_days())
    event_archival_enabled = models.BooleanField(null=True, blank=True)
    event_retention_days = models.PositiveIntegerField(null=True, blank=True, validators=_days())
    checkpoint_retention_enabled = models.BooleanField(null=True, blank=True)
    checkpoint_retention_days = models.PositiveIntegerField(null=True, blank=True, validators=_days())
    checkpoint_keep_latest = models.PositiveIntegerField(null=True, blank=True, validators=_days(10_000))
    memory_eviction_enabled = models.BooleanField(null=True, blank=True)
    memory_eviction_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.0), MaxValueValidator(100.0)]
    )
    memory_eviction_grace_days = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(0), MaxValueValidator(3650)]
    )
    # Lifetimes in Redis (the hot layer): after the last activity, the last write, the first response.
    context_ttl_seconds = models.PositiveIntegerField(null=True, blank=True, validators=_seconds())
    tool_state_ttl_seconds = models.PositiveIntegerField(null=True, blank=True, validators=_seconds())
    idempotency_ttl_seconds = models.PositiveIntegerField(null=True, blank=True, validators=_seconds())
    updated_by = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # NULLs not distinct: one global row, one row per tenant.
            models.UniqueConstraint(fields=["tenant"], name="one_policy_per_tenant", nulls_distinct=False),
        ]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"retention policy ({self.tenant or 'global'})"


class ArchiveKind(models.TextChoices):
    EVENTS = "events"  # a range of events (and the snapshots inside it)
    SESSION = "session"  # what remained of an archived session: its operation journal, older snapshots


class ArchiveSegment(models.Model):
    """One compressed JSON object in cold storage holding a session's rows that left Postgres.

    Event segments of a session are contiguous from version 1: everything up to the highest `to_version`
    is in the archive, everything above it still in Postgres.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="archive_segments")
    kind = models.CharField(max_length=16, choices=ArchiveKind.choices)
    from_version = models.BigIntegerField(default=0)
    to_version = models.BigIntegerField(default=0)
    # Versions of the snapshots inside, so a time travel reads only the segments it needs.
    snapshot_versions = models.JSONField(default=list, blank=True)
    storage_key = models.CharField(max_length=300, unique=True)
    stored_bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    counts = models.JSONField(default=dict, blank=True)
    job_run = models.ForeignKey(JobRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["session", "kind", "to_version"], name="archive_session_range")]

    def __str__(self) -> str:
        return f"{self.kind} archive {self.session_id} {self.from_version}..{self.to_version}"


class SessionArchival(models.Model):
    """A session being (or having been) archived. Pending rows are resumed by the next run."""

    class State(models.TextChoices):
        PENDING = "pending"
        DONE = "done"

    session = models.OneToOneField(AgentSession, primary_key=True, on_delete=models.CASCADE, related_name="+")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # The stream head when the session was archived: its snapshot there is what stays in Postgres.
    head_version = models.BigIntegerField()
    claimed_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["state"], condition=models.Q(state="pending"), name="archival_pending"),
        ]

    def __str__(self) -> str:
        return f"archival of {self.session_id} ({self.state})"


class EvictionCandidate(models.Model):
    """A memory whose decay weight fell below its tenant's threshold; evicted once the grace period passed,
    forgotten again if it is read back above the threshold first."""

    memory = models.OneToOneField(Memory, primary_key=True, on_delete=models.CASCADE, related_name="+")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    marked_at = models.DateTimeField(default=timezone.now)
    score = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["tenant", "marked_at"], name="eviction_tenant_marked")]

    def __str__(self) -> str:
        return f"eviction candidate {self.memory_id}"


class ArchiveRemoval(models.Model):
    """An archive folder to remove from cold storage: a deleted tenant's (`<tenant>`) or an erased session's
    (`<tenant>/<session>`), recorded in the transaction that deletes its rows and removed after the commit. A
    row stays while cold storage cannot be reached; session archival removes its folder later.

    The only way anything is removed from a folder no segment names: storage may be shared with another
    deployment, whose folders this database knows nothing of.
    """

    id = models.BigAutoField(primary_key=True)
    folder = models.CharField(max_length=300, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"archive removal of {self.folder}"
