"""Celery tasks of the LangGraph app: thin and idempotent."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import OperationalError

from langgraph_app import store


@shared_task(
    name="langgraph_app.tasks.sweep_expired_store_items",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=2,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def sweep_expired_store_items(**_: Any) -> int:
    """Remove the LangGraph store items whose TTL ran out, in every tenant (beat, every few minutes)."""
    return store.sweep_expired()
