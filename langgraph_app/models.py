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
from pgvector.django import VectorField

from sessions_app.models import AgentSession
from tenants_app.models import Tenant


class ThreadCheckpoint(models.Model):
    """One LangGraph checkpoint: keyed by (thread, namespace, checkpoint id), ordered by checkpoint id."""

    id = models.BigAutoField(primary_key=True)
    # No index of its own (here and below): each table's unique index starts with the session.
    session = models.ForeignKey(
        AgentSession, on_delete=models.CASCADE, related_name="langgraph_checkpoints", db_index=False
    )
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
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="langgraph_blobs", db_index=False)
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
    session = models.ForeignKey(AgentSession, on_delete=models.CASCADE, related_name="langgraph_writes", db_index=False)
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


class StoreItem(models.Model):
    """An item of LangGraph's long-term store (BaseStore): a JSON value under (namespace, key) in a tenant.

    `prefix` is the namespace's labels joined by "." (LangGraph forbids "." inside a label), so a namespace
    prefix search is a text prefix match. `embedding` is set when the item was put with indexing: one vector
    of the indexed fields' text, by the service's embedder (the memories layer's), named in `embedding_model`;
    `index_paths` are the paths it was put with, so that `manage.py reembed` can embed the same text again
    with another embedder (null for items stored before they were recorded).
    """

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="langgraph_store_items")
    prefix = models.CharField(max_length=1024)
    key = models.CharField(max_length=512)
    value = models.JSONField(default=dict)
    embedding = VectorField(null=True, blank=True)
    embedding_model = models.CharField(max_length=128, blank=True, default="")
    index_paths = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # TTL: the item is invisible (and later removed) after `expires_at`; reads may push it back by `ttl_minutes`.
    ttl_minutes = models.FloatField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "prefix", "key"], name="lg_store_item_unique"),
        ]
        indexes = [
            # A namespace prefix search reads a range of this index: the prefix itself, and from "prefix." up to
            # (not including) "prefix/" in byte order, which pattern operators compare in whatever the collation.
            models.Index(
                fields=["tenant", "prefix"],
                name="lg_store_prefix_pattern",
                opclasses=["uuid_ops", "varchar_pattern_ops"],
            ),
            GinIndex(fields=["value"], name="lg_store_value", opclasses=["jsonb_path_ops"]),
            # The sweep of expired items reads only the rows that have an expiry.
            models.Index(fields=["expires_at"], name="lg_store_expires", condition=models.Q(expires_at__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}/{self.key}"
