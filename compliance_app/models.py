"""Forget-me (erasure) and data-export requests, their append-only audit log, and per-person data keys."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from tenants_app.models import Tenant


class PersonKey(models.Model):
    """A person's data key, wrapped (encrypted) under the master key. Destroying it shreds their payloads.

    The person is named only by a keyed hash of (tenant, user id), so this table holds no personal data.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    subject = models.CharField(max_length=64)
    # nonce (12 bytes) + AES-GCM(master key, data key); emptied when the key is destroyed.
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(default=timezone.now)
    destroyed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "subject"],
                condition=models.Q(destroyed_at__isnull=True),
                name="one_live_key_per_person",
            )
        ]

    def __str__(self) -> str:
        return f"key {self.pk} ({'destroyed' if self.destroyed_at else 'live'})"


class LegalBasis(models.TextChoices):
    GDPR_ART_17 = "gdpr_art_17", "GDPR Art. 17 (right to erasure)"
    GDPR_ART_15 = "gdpr_art_15", "GDPR Art. 15 (right of access)"
    GDPR_ART_20 = "gdpr_art_20", "GDPR Art. 20 (portability)"
    CCPA_DELETE = "ccpa_delete", "CCPA right to delete"
    CONTRACT_END = "contract_end", "End of contract"
    OTHER = "other", "Other (see note)"


class ErasureStatus(models.TextChoices):
    PENDING = "pending"  # filed, waiting for approval
    REJECTED = "rejected"
    ERASED = "erased"  # approved: invisible everywhere, key destroyed, Redis purged; physical purge queued
    PURGING = "purging"
    VERIFIED = "verified"  # purged and the verification scan found nothing
    FAILED = "failed"  # the verification scan found something; see the log


class ErasureRequest(models.Model):
    """One person's forget-me request and its progress through intake, approval, deletion, purge, proof.

    The person's identifiers are kept only until the verification scan has used them; afterwards the row
    keeps the keyed `subject` hash alone, so the proof of erasure holds no personal data.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="erasure_requests")
    user_id = models.CharField(max_length=256, blank=True, default="")
    # Further identifiers the verification scan must not find either (an email, a phone number…).
    identifiers = models.JSONField(default=list, blank=True)
    subject = models.CharField(max_length=64)
    legal_basis = models.CharField(max_length=32, choices=LegalBasis.choices)
    note = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=ErasureStatus.choices, default=ErasureStatus.PENDING)
    filed_by = models.CharField(max_length=200)
    decided_by = models.CharField(max_length=200, blank=True, default="")
    rejection_reason = models.TextField(blank=True, default="")
    due_at = models.DateTimeField()
    filed_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # Counts per layer: what the preview found at approval, what the purge removed, what the scan found.
    preview = models.JSONField(default=dict, blank=True)
    purged = models.JSONField(default=dict, blank=True)
    verification = models.JSONField(default=dict, blank=True)
    # The running purge's progress, for the live page: the layer it is on and the rows removed so far.
    progress = models.JSONField(default=dict, blank=True)
    # The ids (not personal data) of the rows erased at approval, so purge and verification can find what
    # remains of them after the person's identifiers are gone: {"sessions": [...], "memories": [...]}.
    refs = models.JSONField(default=dict, blank=True)
    # The purge job's lease, so that one worker at a time runs it and a crashed one is taken over. The run
    # renews it as it makes progress, and names its claim by the token: a run taken over records nothing.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    # The Idempotency-Key it was filed with (api.idempotency.stored_key): a retry after Redis lost its record of
    # the answer gets this request again instead of filing a second one. NULL when none was sent.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-filed_at"]
        indexes = [models.Index(fields=["status", "due_at"], name="erasure_status_due")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="erasure_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"erasure {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in (ErasureStatus.PENDING, ErasureStatus.ERASED, ErasureStatus.PURGING)


class ExportStatus(models.TextChoices):
    PENDING = "pending"  # filed, the job is queued
    RUNNING = "running"
    READY = "ready"  # the archive can be downloaded until expires_at
    FAILED = "failed"
    EXPIRED = "expired"  # the archive was deleted (expiry, or the person was erased)


class ExportRequest(models.Model):
    """A right-of-access / portability export: an archive of everything held about one person.

    The same scope as erasure (compliance_app.scope) drives it. The job that builds it is durable: this row
    holds its status, progress per layer and lease, so a crashed worker's export is taken over and rebuilt.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="export_requests")
    user_id = models.CharField(max_length=256)
    subject = models.CharField(max_length=64)
    legal_basis = models.CharField(max_length=32, choices=LegalBasis.choices)
    status = models.CharField(max_length=16, choices=ExportStatus.choices, default=ExportStatus.PENDING)
    filed_by = models.CharField(max_length=200)
    filed_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True)
    # The archive itself (a zip of JSON files per layer with a manifest); cleared when it expires.
    archive = models.BinaryField(null=True, blank=True)
    archive_bytes = models.PositiveBigIntegerField(default=0)
    # The archive's manifest (files, counts, SHA-256 each): no personal data, so it stays after expiry.
    manifest = models.JSONField(default=dict, blank=True)
    archive_sha256 = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    downloads = models.PositiveIntegerField(default=0)
    # The build job's lease, so that one worker at a time builds it and a crashed one is taken over; renewed
    # and checked by its token as for ErasureRequest.
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # As ErasureRequest.idempotency_key: a retry after Redis lost its record does not file a second export.
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001

    class Meta:
        ordering = ["-filed_at"]
        indexes = [models.Index(fields=["status", "expires_at"], name="export_status_expiry")]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="export_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"export {self.pk} ({self.status})"


class AuditEntry(models.Model):
    """Append-only: who did what, when. The person appears only as the keyed `subject` hash.

    A database trigger refuses UPDATE and DELETE on this table.
    """

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    subject = models.CharField(max_length=64)
    erasure = models.ForeignKey(ErasureRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="audit")
    export = models.ForeignKey(ExportRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="audit")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action}"
