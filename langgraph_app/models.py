"""LangGraph's persistence model, server side: threads are sessions, checkpoints hang off them.

A LangGraph thread is an `AgentSession` of the caller's tenant whose `session_id` is the thread id, so the
dashboard, retention of sessions and erasure see LangGraph runs like any other session (every row here
cascades with its session).

Channel values are stored once per (thread, namespace, channel, version), as the opaque typed blob the
client's serializer produced (`type` + bytes): a checkpoint names the versions it holds in
`checkpoint["channel_versions"]`, and a read joins them back. The server never needs to understand them;
the dashboard decodes JSON and msgpack ones for display.
"""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone

from sessions_app.models import AgentSession


class ThreadCheckpoint(models.Model):
    """One LangGraph checkpoint: keyed by (thread, namespace, checkpoint id), ordered by checkpoint id."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="langgraph_checkpoints")
    checkpoint_ns = models.CharField(max_length=512, blank=True, default="")
    checkpoint_id = models.CharField(max_length=128)
    parent_checkpoint_id = models.CharField(max_length=128, blank=True, default="")
    # The checkpoint document without `channel_values` (they are blobs) and without `id` (the column above).
    checkpoint = models.JSONField(default=dict)
    # LangGraph's metadata (source, step, parents, run_id, ...); list filters are JSONB containment (@>).
    metadata = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "checkpoint_ns", "checkpoint_id"], name="lg_checkpoint_unique_per_thread"
            ),
        ]
        indexes = [GinIndex(fields=["metadata"], name="lg_checkpoint_metadata", opclasses=["jsonb_path_ops"])]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.checkpoint_ns}/{self.checkpoint_id}"


class ChannelBlob(models.Model):
    """A channel's value at one version, as the client serialised it; shared by every checkpoint naming it."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="langgraph_blobs")
    checkpoint_ns = models.CharField(max_length=512, blank=True, default="")
    channel = models.CharField(max_length=256)
    version = models.CharField(max_length=128)
    # The serializer's type tag ("msgpack", "json", "bytes", "null", "empty" for a channel with no value...).
    type = models.CharField(max_length=32)
    blob = models.BinaryField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "checkpoint_ns", "channel", "version"], name="lg_blob_unique_per_version"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.checkpoint_ns}/{self.channel}@{self.version}"


class PendingWrite(models.Model):
    """A write a task made on top of a checkpoint, before the next checkpoint: (checkpoint, task, idx)."""

    id = models.BigAutoField(primary_key=True)
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="langgraph_writes")
    checkpoint_ns = models.CharField(max_length=512, blank=True, default="")
    # Not a foreign key: LangGraph may store a task's writes while its checkpoint's save is still in flight.
    checkpoint_id = models.CharField(max_length=128)
    task_id = models.CharField(max_length=128)
    task_path = models.CharField(max_length=512, blank=True, default="")
    # The write's position in its task's list, or LangGraph's fixed negative index for special channels.
    idx = models.IntegerField()
    channel = models.CharField(max_length=256)
    type = models.CharField(max_length=32)
    blob = models.BinaryField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "checkpoint_ns", "checkpoint_id", "task_id", "idx"], name="lg_write_unique_per_task"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.session_id}/{self.checkpoint_id}/{self.task_id}#{self.idx}"
