"""Checkpoints: a session's saved agent states, chained by SHA-256 and stored as full snapshots or deltas.

A checkpoint's content is immutable once written. Its `checksum` commits to its parent's checksum, its sequence, node,
metadata and the full reconstructed state (see `checkpoints_app.storage.chain_checksum`), so editing any row
breaks a link that reads and `verify` detect. Retention (`checkpoints_app.retention`) removes old rows and
turns a kept checkpoint whose parent it removed into a chain start anchored on that parent's checksum.
`payload` holds either the full state or the RFC 6902 patch that turns the parent's state into this one,
written through the codec seam (see `storage.py`).

The LangGraph-specific model (thread / namespace / channel blobs / pending writes) will hang off this table
with its own rows keyed by checkpoint; nothing here assumes one state document per LangGraph channel.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import models
from django.utils import timezone

from sessions_app.models import AgentSession


class CheckpointKind(models.TextChoices):
    FULL = "full"
    DELTA = "delta"


class Checkpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No index of its own: the unique (session, sequence) index serves every lookup by session.
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="checkpoints", db_index=False)
    # Assigned by the server: 1, 2, 3… per session, forks included (a fork takes the next number too).
    sequence = models.BigIntegerField()
    # RESTRICT: a checkpoint that others build on cannot be deleted alone (their deltas and checksums need
    # it), but deleting the whole session still cascades through every row.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT, related_name="children")
    node_id = models.CharField(max_length=128)
    metadata = models.JSONField(default=dict, blank=True)
    # Shape of the stored payload and of the checksum formula; readers accept every version ever written.
    schema_version = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=8, choices=CheckpointKind.choices)
    # Full state or patch against the parent, as bytes from `storage.encode_body` (compressed codec output).
    payload = models.BinaryField()
    checksum = models.CharField(max_length=64)
    # The session's event head when this was saved: a diff lists events in (from.event_version, to.event_version].
    event_version = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Set by retention on a kept checkpoint whose parent it removed: the removed parent's checksum (this
    # row's checksum commits to it, so the chain stays tamper-evident from here) and sequence. Such a row is
    # always a full snapshot with no parent, and verification starts the chain at it.
    pruned_parent_checksum = models.CharField(max_length=64, blank=True, default="")
    pruned_parent_sequence = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["session", "sequence"], name="checkpoint_sequence_unique_per_session"),
        ]
        indexes = [
            models.Index(fields=["created_at"], name="checkpoint_created"),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}#{self.sequence} {self.node_id}"

    @classmethod
    def of_columns(cls, **columns: Any) -> Checkpoint:
        """An instance of known column values (by attname: session_id, parent_id): a row a statement just wrote,
        or one a read returned. Built positionally, as Django builds rows it fetched, which skips the per-field
        defaults and descriptors of keyword construction (a save builds two per request); unnamed columns
        take their defaults."""
        values: Any = [columns[name] if name in columns else default() for name, default in _COLUMNS]
        return cls(*values)


# (attname, default factory) of every concrete column of Checkpoint, in the model's order.
_COLUMNS: list[tuple[str, Any]] = [(field.attname, field.get_default) for field in Checkpoint._meta.concrete_fields]


class CheckpointHead(models.Model):
    """One row per session that has checkpoints: the lock that serialises saves, and the newest checkpoint.

    Saves lock this row (not the session row, which event appends lock), so checkpoints and events of one
    session never wait on each other.
    """

    session = models.OneToOneField(
        AgentSession, primary_key=True, on_delete=models.CASCADE, related_name="checkpoint_head"
    )
    last_sequence = models.BigIntegerField(default=0)
    latest = models.ForeignKey(Checkpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"{self.session_id} @ {self.last_sequence}"
