"""Background work for event streams."""

from __future__ import annotations

from celery import shared_task

from memory_admin.errors import Archived
from sessions_app.models import AgentSession
from sessions_app.selectors import rebuild_state, save_snapshot


@shared_task(
    name="sessions_app.take_snapshot", ignore_result=True, autoretry_for=(Exception,), retry_backoff=True, max_retries=5
)
def take_snapshot(session_pk: str, version: int) -> None:
    """Fold a stream up to `version` and store it as a snapshot. Idempotent: an existing snapshot is kept."""
    session = AgentSession.objects.filter(pk=session_pk).first()
    if session is None or session.head_version < version:
        return
    try:
        view = rebuild_state(session, version=version)
    except Archived:
        return  # the events were archived meanwhile; archival keeps the snapshot it needs
    if view.snapshot_version != version:
        save_snapshot(session, version=version, state=view.state)
