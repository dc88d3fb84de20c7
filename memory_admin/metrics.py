"""The service's own Prometheus metrics (django-prometheus adds the HTTP and database ones)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

RECOVERIES = Counter(
    "memory_recoveries_total",
    "State recovered from Postgres, by kind: context_rebuild, event_replay, checkpoint",
    ["kind"],
)
CONTEXT_READS = Counter("memory_context_reads_total", "Hot context reads by where they were served from", ["source"])
EVENT_APPEND_SECONDS = Histogram(
    "memory_event_append_seconds",
    "Time to append a batch of events (Postgres transaction included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CHECKPOINT_SAVE_SECONDS = Histogram(
    "memory_checkpoint_save_seconds",
    "Time to save a checkpoint (parent rebuilt and verified, Postgres transaction and commit included)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
