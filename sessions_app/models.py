"""Agent sessions and their append-only event streams."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tenants_app.models import Tenant


class SessionStatus(models.TextChoices):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ARCHIVED = "archived"


class VisibleSessionManager(models.Manager["AgentSession"]):
    """Sessions of people who were not erased: the default, so no read can forget the filter."""

    def get_queryset(self) -> models.QuerySet[AgentSession]:
        return super().get_queryset().filter(erased_at__isnull=True)


class AgentSession(models.Model):
    """One run of an agent for one end user. `session_id` is the id the API speaks, unique per tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sessions")
    session_id = models.CharField(max_length=128)
    # The tenant's identifier of the person the agent works for: personal data, erased on request.
    user_id = models.CharField(max_length=256)
    status = models.CharField(max_length=16, choices=SessionStatus.choices, default=SessionStatus.ACTIVE)
    metadata = models.JSONField(default=dict, blank=True)
    # Bumped by every change to the session row; the ETag of the session resource.
    version = models.PositiveIntegerField(default=1)
    # Version of the newest event in the stream (0 when empty); appends are serialised on this row.
    head_version = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    # Set when the person this session served was erased: from then on no API, page, search or recall sees
    # it, and the purge job removes it with everything it holds.
    erased_at = models.DateTimeField(null=True, blank=True)
    # The status an archived session had when it was archived ("" for one archived before this was recorded):
    # a session completed and archived at once is distilled into memories, a failed one archived is not.
    archived_from = models.CharField(
        max_length=16, choices=SessionStatus.choices, blank=True, default="", db_default=""
    )

    objects = VisibleSessionManager()
    # Erased sessions too: for the erasure and purge machinery only.
    all_objects = models.Manager()  # noqa: DJ012 - a second manager, not a field

    class Meta:
        base_manager_name = "all_objects"
        constraints = [
            # An erased session's id is free again at once; the purge removes the old row later.
            models.UniqueConstraint(
                fields=["tenant", "session_id"],
                condition=models.Q(erased_at__isnull=True),
                name="session_id_unique_per_tenant",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "user_id"], name="session_tenant_user"),
            models.Index(fields=["tenant", "-created_at", "-id"], name="session_tenant_recent"),
            # The dashboard's sessions list at a million rows (migration 0100_dashboard_session_indexes): newest
            # first over every tenant, by status, by user id without a tenant, and session-id prefix search.
            models.Index(
                fields=["-created_at", "-id"], condition=models.Q(erased_at__isnull=True), name="session_recent"
            ),
            models.Index(
                fields=["status", "-created_at", "-id"],
                condition=models.Q(erased_at__isnull=True),
                name="session_status_recent",
            ),
            models.Index(fields=["user_id"], condition=models.Q(erased_at__isnull=True), name="session_user"),
            models.Index(
                fields=["session_id"],
                opclasses=["varchar_pattern_ops"],
                condition=models.Q(erased_at__isnull=True),
                name="session_id_prefix",
            ),
        ]

    def __str__(self) -> str:
        return self.session_id


class EventType(models.TextChoices):
    """Built-in event types; any other type matching CUSTOM_EVENT_TYPE is stored and passed through."""

    MESSAGE_ADDED = "MESSAGE_ADDED"
    CONTEXT_REPLACED = "CONTEXT_REPLACED"
    TOOL_EXECUTED = "TOOL_EXECUTED"
    TOOL_STATE_SET = "TOOL_STATE_SET"
    TOOL_STATE_CLEARED = "TOOL_STATE_CLEARED"
    NODE_TRANSITION = "NODE_TRANSITION"
    STATE_PATCHED = "STATE_PATCHED"


class Event(models.Model):
    """One state change in a session's stream. Versions are assigned by the server: 1, 2, 3… with no gaps."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own: the unique (session, version) index serves every lookup by session.
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="events", db_index=False)
    version = models.BigIntegerField()
    type = models.CharField(max_length=64)
    # The payload as the codec wrote it (JSON today; encrypted per person once compliance lands).
    payload = models.BinaryField()
    schema_version = models.PositiveSmallIntegerField(default=1)
    # The Idempotency-Key of the request that appended this batch (on each of its events): a retry after
    # Redis lost its idempotency records still finds the batch here and gets the same answer.
    # NULL, not "", for "no key": the partial index below covers only keyed rows.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    # True on a keyed batch's first event, NULL on every other: the unique index over these rows lets one batch
    # per key into a session, however its retries race (an append's NOT EXISTS cannot see a batch committed
    # while it waited for the session row). Not the key itself: all of a batch's events carry it, and rows
    # from before this column do not say which was the first.
    claims_key = models.BooleanField(null=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "version"], name="event_version_unique_per_session"),
            models.UniqueConstraint(
                fields=["session", "idempotency_key"],
                name="event_idempotency_key_once",
                condition=models.Q(claims_key=True),
            ),
        ]
        indexes = [
            models.Index(fields=["session", "type", "version"], name="event_session_type_version"),
            models.Index(
                fields=["session", "idempotency_key"],
                name="event_idempotency_key",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}@{self.version} {self.type}"


class EventSnapshot(models.Model):
    """The state folded from a stream's first `version` events, so a rebuild replays only what follows."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="snapshots")
    version = models.BigIntegerField()
    state = models.BinaryField()
    schema_version = models.PositiveSmallIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "version"], name="snapshot_version_unique_per_session"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}@{self.version} snapshot"


class OperationStatus(models.TextChoices):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


class Operation(models.Model):
    """The operation journal: a side-effecting tool call recorded before it runs (write-ahead), then closed.

    After a crash an agent lists its session's pending operations to replay or compensate them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="operations")
    name = models.CharField(max_length=128)
    # The agent's key for this intent: recording it twice returns the first record.
    key = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    # Parameters, result and error may hold personal data, so they go through the payload codec.
    params = models.BinaryField()
    result = models.BinaryField(null=True, blank=True)
    error = models.BinaryField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "key"], name="operation_key_unique_per_session"),
        ]
        indexes = [models.Index(fields=["session", "status", "created_at"], name="operation_session_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"
