"""/metrics scraped from the real web server with two workers: the checkpoint save latency histogram, recoveries by
kind and hot context reads add up over every worker on every scrape (prometheus_client's multiprocess mode,
PROMETHEUS_MULTIPROC_DIR), next to the gauges read from Postgres; every metric the dashboards use is there."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from conftest import World
from tests.servers import running, web_server

pytestmark = pytest.mark.django_db(transaction=True)

EXPORTED = [
    "memory_checkpoint_save_seconds_bucket",
    "memory_event_append_seconds_bucket",
    "memory_recoveries_total",
    "memory_context_reads_total",
    "memory_entries",
    "memory_lifecycle_job_runs",
    "memory_lifecycle_job_last_duration_seconds",
    "memory_erasure_requests_open",
    "memory_erasure_oldest_open_age_seconds",
    "memory_outbox_lag_seconds",
    "memory_outbox_pending",
    "memory_table_bytes",
    "memory_embedder_info",  # memories_app's scrape-time collector, registered by another app
    "django_http_requests_latency_seconds_by_view_method_bucket",
]


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert match, f"{series} not exported"
    return float(match.group(1))


def test_counters_and_histograms_add_up_over_both_workers_on_every_scrape(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from compliance_app.models import ErasureRequest
    from lifecycle_app import jobs

    jobs.evict_memories(dry_run=True, triggered_by="manual")
    ErasureRequest.objects.create(
        tenant=world.acme.tenant,
        subject="0" * 64,
        legal_basis="gdpr_art_17",
        filed_by="cora",
        due_at=timezone.now() + timedelta(days=29),
    )
    (tmp_path / "prometheus").mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "prometheus"))
    headers = {"Authorization": f"Bearer {world.acme.raw_key}"}
    with running(web_server(workers=2, threads=2)) as server:
        api = f"{server.url}/api/v1/sessions"
        # A new connection per request, so the kernel hands them to either worker.
        created = httpx.post(api, json={"id": "metrics-run", "user_id": "u-1"}, headers=headers)
        assert created.status_code == 201, created.text
        for step in range(6):
            saved = httpx.post(
                f"{api}/metrics-run/checkpoints", json={"node_id": "n", "state": {"step": step}}, headers=headers
            )
            assert saved.status_code == 201, saved.text
        for _ in range(3):
            assert httpx.get(f"{api}/metrics-run/checkpoints/latest", headers=headers).status_code == 200
        for _ in range(4):
            assert httpx.get(f"{api}/metrics-run/context", headers=headers).status_code == 200

        scrapes = [httpx.get(f"{server.url}/metrics").text for _ in range(4)]

    workers = {path.name.rsplit("_", 1)[-1] for path in (tmp_path / "prometheus").glob("*.db")}
    assert len(workers) == 2, workers  # both workers wrote their share
    for text in scrapes:
        for name in EXPORTED:
            assert re.search(rf"^{name}[{{ ]", text, re.MULTILINE), f"{name} not exported"
        assert value(text, "memory_checkpoint_save_seconds_count") == 6
        assert value(text, 'memory_recoveries_total{kind="checkpoint"}') == 3
        assert value(text, 'memory_context_reads_total{source="redis"}') == 4
