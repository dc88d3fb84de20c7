"""Celery tasks of checkpoints: thin and idempotent (a second run finds nothing left to do)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.db import OperationalError

from checkpoints_app.services import apply_checkpoint_retention as apply_retention


@shared_task(
    name="checkpoints_app.tasks.apply_checkpoint_retention",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def apply_checkpoint_retention() -> dict[str, Any]:
    """Daily (beat): remove expired checkpoints. Each step commits on its own, so a retry after a lost
    connection resumes where the last run stopped."""
    report = apply_retention(dry_run=False)
    return {**asdict(report), "cutoff": report.cutoff.isoformat()}
