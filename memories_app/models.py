"""Long-term semantic memory: memories with their vectors, their history, promotion jobs, user profiles and
the profile outbox that feeds learned facts into the vector store.

The `embedding` column is a `vector` without a fixed dimension: the dimension follows the embedder, and
`embedding_model` says which embedder (and size) produced each vector. Searches compare only vectors of the
active model. Approximate (HNSW) indexes are partial expression indexes, one per dimension, created by the
migrations for 384 and 1536 and by `manage.py reembed` for any other size.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from memories_app.fields import EmbeddingField
from sessions_app.models import AgentSession
from tenants_app.models import Tenant


class Scope(models.TextChoices):
    SESSION = "session"
    USER = "user"
    GLOBAL = "global"


class Source(models.TextChoices):
    API = "api"
    PROMOTION = "promotion"
    DISTILLATION = "distillation"
    PROFILE = "profile"


class MemoryQuerySet(models.QuerySet["Memory"]):
    def alive(self) -> MemoryQuerySet:
        """Not deleted, and not owned by a person whose erasure was approved (see HiddenOwner)."""
        hidden = HiddenOwner.objects.filter(tenant_id=OuterRef("tenant_id"), user_id=OuterRef("user_id"))
        return self.filter(deleted_at__isnull=True).exclude(Exists(hidden))

    def alive_global(self) -> MemoryQuerySet:
        """The live global memories. No person owns them (user_id is '' by a check constraint, and a HiddenOwner
        never names ''), so erasure cannot hide them and the anti-join of alive() is left out: with it the planner
        cannot use the HNSW index and scans every global row instead.
        """
        return self.filter(deleted_at__isnull=True, user_id="", scope=Scope.GLOBAL)


class HiddenOwner(models.Model):
    """A person whose memories disappear at once, without touching each row: approving their erasure adds
    one of these in the approval's transaction (a person can own 100,000 memories, and rewriting each row
    with its vector takes seconds). The physical purge deletes the memories, then this row.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=256)
    hidden_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user_id"], name="hidden_owner_once"),
            models.CheckConstraint(condition=~Q(user_id=""), name="hidden_owner_is_a_person"),
        ]

    def __str__(self) -> str:
        return f"hidden owner {self.pk}"


class ErasedRequestKey(models.Model):
    """The Idempotency-Key of a memory create whose memories an erasure purged, kept (as a keyed hash, naming no
    one) for the tenant's idempotency lifetime: a retry of that create is a 410 instead of storing the erased
    person's memories again, as it was while the rows were there (see memories_app.erased_keys).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=64)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "digest"], name="erased_request_key_once")]
        indexes = [models.Index(fields=["expires_at"], name="erased_request_key_expiry")]

    def __str__(self) -> str:
        return f"erased request key {self.pk}"


class Memory(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memories")
    scope = models.CharField(max_length=16, choices=Scope.choices)
    # The tenant's identifier of the person (personal data); empty for global memories.
    user_id = models.CharField(max_length=256, blank=True, default="")
    session = models.ForeignKey(AgentSession, null=True, blank=True, on_delete=models.CASCADE, related_name="memories")
    content = models.TextField()
    embedding = EmbeddingField()
    # Which embedder made the vector, for example "hashing-384" or "openai:text-embedding-3-small-1536".
    embedding_model = models.CharField(max_length=128)
    dimensions = models.PositiveSmallIntegerField()
    metadata = models.JSONField(default=dict, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    # Identity of the thing this memory mirrors (a profile fact), unique among live memories of the user.
    source_key = models.CharField(max_length=300, blank=True, default="")
    access_count = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Logical deletion: invisible at once; the purge job removes the row later.
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The Idempotency-Key of the request that stored it (api.idempotency.stored_key) and its place in that
    # request, "<key>:<index>": a retry after Redis lost its record of the answer still finds the memories
    # here and gets them again. NULL, not "", for "no key": the unique index below covers only keyed rows.
    idempotency_key = models.CharField(max_length=80, null=True, blank=True)  # noqa: DJ001
    # A hash of everything that request asked to store: the key with another body is a 422, also then.
    request_fingerprint = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    objects = MemoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "memories"
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope="global", user_id="", session__isnull=True) | (~Q(scope="global") & ~Q(user_id=""))),
                name="memory_scope_owner",
            ),
            models.CheckConstraint(
                condition=~Q(scope="session") | Q(session__isnull=False), name="memory_session_scope_has_session"
            ),
            models.UniqueConstraint(
                fields=["tenant", "user_id", "source_key"],
                condition=Q(deleted_at__isnull=True) & ~Q(source_key=""),
                name="memory_source_key_unique_alive",
            ),
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="memory_idempotency_key",
            ),
        ]
        indexes = [
            models.Index(
                fields=["tenant", "user_id", "scope", "embedding_model"],
                condition=Q(deleted_at__isnull=True),
                name="memory_owner_alive",
            ),
            models.Index(fields=["tenant", "-created_at", "-id"], name="memory_tenant_recent"),
            models.Index(fields=["session"], condition=Q(deleted_at__isnull=True), name="memory_session_alive"),
            # The purge's two reads (lifecycle_app.selectors): memories deleted that were stored without an
            # Idempotency-Key, by deletion time; those with one, tenant by tenant by creation time, kept until
            # their tenant's idempotency lifetime since creation is over (never read again meanwhile).
            models.Index(
                fields=["deleted_at"],
                condition=Q(deleted_at__isnull=False, idempotency_key__isnull=True),
                name="memory_deleted_unkeyed",
            ),
            models.Index(
                fields=["tenant", "created_at", "deleted_at"],
                condition=Q(deleted_at__isnull=False, idempotency_key__isnull=False),
                name="memory_deleted_keyed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} memory {self.id}"

    def decay_score(self, *, now: datetime | None = None) -> float:
        """2^(-days since last use / half-life) * ln(2 + access count).

        The last use is the latest of the last read, the last content update and the creation: a write counts
        as an access, so a fresh (or freshly rewritten) memory weighs ln 2 (about 0.69) rather than zero.
        """
        now = now or timezone.now()
        last = max(moment for moment in (self.last_accessed_at, self.updated_at, self.created_at) if moment)
        days = max(0.0, (now - last).total_seconds() / 86400)
        return float(2 ** (-days / settings.MEMORY_DECAY_HALF_LIFE_DAYS) * math.log(2 + self.access_count))

    def is_eviction_candidate(self, *, threshold: float | None, now: datetime | None = None) -> bool:
        """Whether memory eviction would take it now under a policy evicting below `threshold` (None: eviction is
        off; lifecycle_app.lifetimes.eviction_for gives the tenant's). Profile facts are the profile's
        to remove."""
        return threshold is not None and self.source != Source.PROFILE and self.decay_score(now=now) < threshold


class RevisionKind(models.TextChoices):
    UPDATE = "update"
    MERGE = "merge"
    PROMOTION = "promotion"
    PROFILE = "profile"


class MemoryRevision(models.Model):
    """One change to a memory's content: who, when, the content before, and for a merge both inputs."""

    id = models.BigAutoField(primary_key=True)
    memory = models.ForeignKey(Memory, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=RevisionKind.choices)
    actor = models.CharField(max_length=200)
    previous_content = models.TextField()
    content = models.TextField()
    # For a merge: {"current": ..., "incoming": ..., "method": "llm" | "deterministic"}.
    inputs = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["memory", "version"], name="memory_revision_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.memory_id}@{self.version} {self.kind}"


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(models.TextChoices):
    PROMOTE = "promote"
    DISTILL = "distill"


class PromotionJob(models.Model):
    """A durable request to move a session's knowledge into its user's scope; a Celery task does the work."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="promotion_jobs")
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="promotion_jobs")
    kind = models.CharField(max_length=16, choices=JobKind.choices, default=JobKind.PROMOTE)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING)
    # What to promote: {"memory_ids": [...]} and/or {"texts": [...]}; empty means every session memory.
    request = models.JSONField(default=dict, blank=True)
    # Ids of the user memories created or updated, filled in as items complete.
    created_ids = models.JSONField(default=list, blank=True)
    updated_ids = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # A claim expires so that a crashed worker's job is picked up again.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A session is distilled once; the sweeper and a direct request cannot both add a job.
            models.UniqueConstraint(
                fields=["session"], condition=Q(kind="distill"), name="one_distillation_per_session"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="promotion_job_status"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"


class UserProfile(models.Model):
    """What the agents learned about one user: preferences, facts, activity. Versioned for If-Match."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="user_profiles")
    user_id = models.CharField(max_length=256)
    preferences = models.JSONField(default=dict, blank=True)
    # {fact key: fact text}; each fact is mirrored as one user-scope memory through the outbox.
    facts = models.JSONField(default=dict, blank=True)
    interaction_count = models.PositiveIntegerField(default=0)
    last_active_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user_id"], name="profile_unique_per_user"),
        ]

    def __str__(self) -> str:
        return f"profile {self.pk}"


class OutboxOperation(models.TextChoices):
    UPSERT = "upsert"
    DELETE = "delete"


class ProfileFactOutbox(models.Model):
    """A learned fact changed: written in the profile's transaction, applied to memories by a drain task.

    `processed_at` is set once the drain is done with the entry: applied, or set aside (`failed_at`, with
    `last_error`) when the embedder refused its text for good or it kept failing, so that it cannot hold up the
    entries after it.
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    user_id = models.CharField(max_length=256)
    fact_key = models.CharField(max_length=200)
    operation = models.CharField(max_length=8, choices=OutboxOperation.choices)
    content = models.TextField(blank=True, default="")
    profile_version = models.PositiveIntegerField()
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=Q(processed_at__isnull=True), name="outbox_pending"),
        ]

    def __str__(self) -> str:
        return f"outbox {self.pk} {self.operation} {self.fact_key}"
