"""The outbox draining job: it applies pending profile changes to the vector store and records its run, removes
entries applied long ago (keeping those set aside as failed), leaves no run row when beat finds the outbox empty,
and an embedder outage stops the run as failed with the entry left for the next one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.models import Job, JobRun, RunStatus
from lifecycle_app.tasks import drain_profile_outbox
from memories_app.embeddings import reset_embedder
from memories_app.models import Memory, ProfileFactOutbox, Source

pytestmark = pytest.mark.django_db


def pending_fact(world: World, key: str, content: str, **fields: Any) -> ProfileFactOutbox:
    return ProfileFactOutbox.objects.create(
        tenant=world.acme.tenant,
        user_id="u-1",
        fact_key=key,
        operation="upsert",
        content=content,
        profile_version=1,
        **fields,
    )


def test_pending_changes_are_applied_and_the_run_is_recorded(world: World) -> None:
    for number in range(3):
        pending_fact(world, f"fact-{number}", f"likes colour {number}")

    run = jobs.drain_outbox(dry_run=False, triggered_by="manual")

    assert run.job == Job.OUTBOX_DRAIN and run.status == RunStatus.SUCCEEDED and run.finished_at is not None
    assert run.counts == {"applied": 3, "pruned": 0}
    assert not ProfileFactOutbox.objects.filter(processed_at__isnull=True).exists()
    assert Memory.objects.alive().filter(source=Source.PROFILE).count() == 3


def test_entries_applied_long_ago_are_removed_and_recent_ones_kept(world: World, settings) -> None:
    settings.OUTBOX_KEEP_PROCESSED_DAYS = 7
    old = pending_fact(world, "old", "x", processed_at=timezone.now() - timedelta(days=8))
    recent = pending_fact(world, "recent", "y", processed_at=timezone.now() - timedelta(days=6))

    run = jobs.drain_outbox(dry_run=False, triggered_by="manual")

    assert run.counts == {"applied": 0, "pruned": 1}
    assert list(ProfileFactOutbox.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not ProfileFactOutbox.objects.filter(pk=old.pk).exists()


def test_entries_set_aside_as_failed_stay_with_their_error_when_applied_ones_are_removed(
    world: World, settings
) -> None:
    settings.OUTBOX_KEEP_PROCESSED_DAYS = 7
    long_ago = timezone.now() - timedelta(days=8)
    applied = pending_fact(world, "city", "Oslo", processed_at=long_ago)
    failed = pending_fact(
        world, "bio", "x", processed_at=long_ago, failed_at=long_ago, attempts=20, last_error="EmbedderRefused"
    )

    preview = jobs.drain_outbox(dry_run=True, triggered_by="manual")
    run = jobs.drain_outbox(dry_run=False, triggered_by="manual")

    assert preview.counts["would_prune"] == 1 and run.counts == {"applied": 0, "pruned": 1}
    assert list(ProfileFactOutbox.objects.values_list("pk", "last_error")) == [(failed.pk, "EmbedderRefused")]
    assert not ProfileFactOutbox.objects.filter(pk=applied.pk).exists()
    # Nothing is left for a drain to do: beat records no run for the failed entry every 30 s.
    drain_profile_outbox.apply(kwargs={"triggered_by": "beat"})
    assert JobRun.objects.filter(triggered_by="beat").count() == 0


def test_the_dry_run_counts_without_applying(world: World) -> None:
    pending_fact(world, "tea", "likes tea", created_at=timezone.now() - timedelta(minutes=5))

    preview = jobs.drain_outbox(dry_run=True, triggered_by="manual")

    assert preview.dry_run and preview.counts["pending"] == 1 and preview.counts["would_prune"] == 0
    assert 290 <= preview.counts["lag_seconds"] <= 400
    assert ProfileFactOutbox.objects.filter(processed_at__isnull=True).count() == 1


def test_beat_leaves_no_run_row_when_the_outbox_is_empty_but_records_one_when_it_is_not(world: World) -> None:
    drain_profile_outbox.apply(kwargs={"triggered_by": "beat"})
    assert not JobRun.objects.exists()

    pending_fact(world, "tea", "likes tea")
    drain_profile_outbox.apply(kwargs={"triggered_by": "beat"})

    run = JobRun.objects.get()
    assert run.job == Job.OUTBOX_DRAIN and run.triggered_by == "beat" and run.counts["applied"] == 1


def test_an_embedder_outage_stops_the_run_as_failed_and_leaves_the_entry(world: World, settings) -> None:
    settings.EMBEDDING_PROVIDER = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT_SECONDS = 2.0
    reset_embedder()
    pending_fact(world, "tea", "likes tea")

    run = jobs.drain_outbox(dry_run=False, triggered_by="manual")

    assert run.status == RunStatus.FAILED and run.finished_at is not None
    assert run.counts == {"applied": 0, "pruned": 0}
    assert run.errors[-1]["type"] == "EmbedderUnavailable"
    assert ProfileFactOutbox.objects.get().processed_at is None
