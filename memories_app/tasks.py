"""Celery tasks: thin, idempotent, taking ids. The durable state is in Postgres rows; the broker only rings
the bell, and beat re-rings it for anything a lost message or a crashed worker left behind.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from memories_app import background
from memories_app.embeddings import EmbedderUnavailable
from memories_app.erased_keys import drop_expired_erased_request_keys
from memories_app.services import request_distillation

# Retries back off exponentially (2, 4, 8 … seconds, at most 10 minutes apart) with jitter.
_RETRY_FOR = (EmbedderUnavailable,)


@shared_task(
    name="memories_app.tasks.run_promotion_job",
    ignore_result=True,
    autoretry_for=_RETRY_FOR,
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def run_promotion_job(job_id: str) -> None:
    background.run_promotion(job_id)


@shared_task(name="memories_app.tasks.resume_promotions", ignore_result=True)
def resume_promotions() -> None:
    for job_id in background.unfinished_jobs():
        run_promotion_job.delay(job_id)


@shared_task(name="memories_app.tasks.distill_completed_sessions", ignore_result=True)
def distill_completed_sessions() -> None:
    """Queue a distillation for every completed (or lately archived) session that has none (at most once per
    session; see `background.sessions_to_distill`)."""
    for session in background.sessions_to_distill():
        request_distillation(session=session)


@shared_task(
    name="memories_app.tasks.drain_profile_outbox",
    ignore_result=True,
    autoretry_for=_RETRY_FOR,
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def drain_profile_outbox(limit: int = 500) -> int:
    applied = 0
    while applied < limit and background.apply_next_outbox_entry():
        applied += 1
    return applied


@shared_task(name="memories_app.tasks.flush_access_stats", ignore_result=True)
def flush_access_stats() -> int:
    return background.flush_access_stats()


@shared_task(name="memories_app.tasks.evict_decayed_memories", ignore_result=True)
def evict_decayed_memories() -> int:
    return background.evict_decayed()


@shared_task(name="memories_app.tasks.purge_deleted_memories", ignore_result=True)
def purge_deleted_memories() -> int:
    return background.purge_deleted()


@shared_task(name="memories_app.tasks.drop_expired_erased_keys", ignore_result=True)
def drop_expired_erased_keys() -> int:
    """Beat: forget the keys of erased memories' creates once no retry of theirs is expected."""
    return drop_expired_erased_request_keys()


__all__: list[Any] = [
    "distill_completed_sessions",
    "drain_profile_outbox",
    "drop_expired_erased_keys",
    "evict_decayed_memories",
    "flush_access_stats",
    "purge_deleted_memories",
    "resume_promotions",
    "run_promotion_job",
]
