"""Fixtures for the lifecycle tests: archives under a temporary directory, and sessions with real history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from sessions_app.models import AgentSession, Event, EventSnapshot, EventType, Operation
from sessions_app.selectors import rebuild_state, save_snapshot
from sessions_app.services import NewEvent, append_events, create_session, finish_operation, record_operation


@pytest.fixture(autouse=True)
def archive_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.ARCHIVE_STORAGE_BACKEND = ""
    settings.EVENT_SNAPSHOT_EVERY = 100
    return tmp_path / "archive"


def grow_session(world: World, *, steps: int, session_id: str = "run-1", user_id: str = "user-1") -> AgentSession:
    """A session with `steps` events of every built-in kind, snapshots every 100, and a few operations."""
    session, _ = create_session(tenant=world.acme.tenant, user_id=user_id, session_id=session_id)
    batch: list[NewEvent] = []
    for step in range(1, steps + 1):
        kind = step % 4
        if kind == 0:
            batch.append(NewEvent(EventType.MESSAGE_ADDED, {"role": "user", "content": f"message {step}"}))
        elif kind == 1:
            batch.append(NewEvent(EventType.NODE_TRANSITION, {"node": f"node-{step % 7}"}))
        elif kind == 2:
            batch.append(NewEvent(EventType.TOOL_EXECUTED, {"tool": "search", "result": {"hits": step}}))
        else:
            batch.append(NewEvent(EventType.STATE_PATCHED, {"patch": [{"op": "add", "path": "/step", "value": step}]}))
        if len(batch) == 50:
            append_events(session=session, events=batch)
            batch = []
    if batch:
        append_events(session=session, events=batch)
    session.refresh_from_db()
    for version in range(100, session.head_version + 1, 100):
        save_snapshot(session, version=version, state=rebuild_state(session, version=version).state)
    for number in range(3):
        operation, _ = record_operation(session=session, name="send_email", key=f"op-{number}", params={"n": number})
        if number:
            finish_operation(session=session, operation_id=operation.pk, status="completed", outcome={"ok": number})
    return session


def age(session: AgentSession, *, days: int) -> None:
    """Make a session's rows (and its last activity and update) `days` old."""
    when = timezone.now() - timedelta(days=days)
    AgentSession.objects.filter(pk=session.pk).update(last_activity_at=when, created_at=when, updated_at=when)
    Event.objects.filter(session=session).update(created_at=when)
    EventSnapshot.objects.filter(session=session).update(created_at=when)
    Operation.objects.filter(session=session).update(created_at=when)
    Operation.objects.filter(session=session, finished_at__isnull=False).update(finished_at=when)


def rows_of(session: AgentSession) -> dict[str, list[tuple[Any, ...]]]:
    """Every column of a session's events, snapshots and operations, payload bytes included."""
    return {
        "events": sorted(
            (e.pk, e.version, e.type, bytes(e.payload), e.schema_version, e.idempotency_key, e.created_at)
            for e in Event.objects.filter(session=session)
        ),
        "snapshots": sorted(
            (s.pk, s.version, bytes(s.state), s.schema_version, s.created_at)
            for s in EventSnapshot.objects.filter(session=session)
        ),
        "operations": sorted(
            (
                str(o.pk),
                o.name,
                o.key,
                o.status,
                bytes(o.params),
                None if o.result is None else bytes(o.result),
                None if o.error is None else bytes(o.error),
                o.created_at,
                o.finished_at,
            )
            for o in Operation.objects.filter(session=session)
        ),
    }


@pytest.fixture(autouse=True)
def _hashing_embedder(settings: Any) -> Iterator[None]:
    from memories_app.embeddings import reset_embedder

    settings.EMBEDDING_PROVIDER = "hashing"
    settings.EMBEDDING_DIMENSIONS = 0
    reset_embedder()
    yield
    reset_embedder()
