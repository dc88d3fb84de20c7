"""The Grafana dashboard in ops/ shows every metric the operators asked for, and each metric it queries is one
that /metrics exports (a renamed metric would leave an empty panel)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.test import Client

from conftest import World
from memory_admin.metrics import forget_scraped_figures

pytestmark = pytest.mark.django_db

DASHBOARD = Path(__file__).resolve().parents[2] / "ops" / "grafana" / "agent-memory.json"
# What the operators asked to see: checkpoint save latency, recoveries by kind, memory entries by scope and
# layer, the Redis hit ratio of the hot context, job runs and durations by job, open erasure requests and the
# age of the oldest, outbox lag.
ASKED_FOR = {
    "memory_checkpoint_save_seconds_bucket",
    "memory_recoveries_total",
    "memory_entries",
    "memory_context_reads_total",
    "memory_lifecycle_job_runs",
    "memory_lifecycle_job_last_duration_seconds",
    "memory_erasure_requests_open",
    "memory_erasure_oldest_open_age_seconds",
    "memory_outbox_lag_seconds",
}


def queried_metrics() -> set[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    expressions = [target["expr"] for panel in panels for target in panel["targets"]]
    return {name for expr in expressions for name in re.findall(r"\b((?:memory|django)_[a-z0-9_]+)", expr)}


def family(name: str) -> str:
    return re.sub(r"_(bucket|count|sum|total)$", "", name)


def test_every_metric_asked_for_is_on_the_dashboard() -> None:
    assert not ASKED_FOR - queried_metrics(), ASKED_FOR - queried_metrics()


def test_every_metric_the_dashboard_queries_is_exported(world: World) -> None:
    forget_scraped_figures()  # a fresh read, not the collectors' 15-second cache
    text = Client().get("/metrics").content.decode()

    exported = set(re.findall(r"^# TYPE (\S+) ", text, re.MULTILINE))

    missing = {name for name in queried_metrics() if family(name) not in {family(e) for e in exported}}
    assert not missing, missing
