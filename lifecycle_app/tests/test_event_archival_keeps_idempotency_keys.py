"""Event archival leaves in Postgres the events a retried append may still name by its Idempotency-Key: for the
tenant's idempotency lifetime a retry with Redis lost is answered as the first, not appended again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from lifecycle_app import jobs
from lifecycle_app.services import set_retention_policy
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event, EventSnapshot, EventType
from sessions_app.selectors import rebuild_state, save_snapshot
from sessions_app.services import NewEvent, append_events, create_session

pytestmark = pytest.mark.django_db

KEYED = {"events": [{"type": EventType.NODE_TRANSITION, "payload": {"node": "charge-card"}}]}


@pytest.fixture(autouse=True)
def _policy() -> None:
    # Both values are ones /lifecycle/ accepts: keys honoured for a week, events kept for a day.
    set_retention_policy(
        tenant=None, values={"idempotency_ttl_seconds": 7 * 86400, "event_retention_days": 1}, updated_by="test"
    )


def steps(session: AgentSession, count: int) -> None:
    append_events(session=session, events=[NewEvent(EventType.NODE_TRANSITION, {"node": "n"})] * count)


def keyed_session(world: World) -> tuple[AgentSession, Any]:
    """A session of 200 events with snapshots at 100 and 200, version 150 appended with Idempotency-Key pay-1."""
    session, _ = create_session(tenant=world.acme.tenant, user_id="alice", session_id="s")
    steps(session, 149)
    first = world.acme.client.post("/api/v1/sessions/s/events", KEYED, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert first.status_code == 201, first.content
    steps(session, 50)
    session.refresh_from_db()
    for version in (100, 200):
        if not EventSnapshot.objects.filter(session=session, version=version).exists():
            save_snapshot(session, version=version, state=rebuild_state(session, version=version).state)
    return session, first


def age(session: AgentSession, *, days: int, from_version: int = 1) -> None:
    when = timezone.now() - timedelta(days=days)
    Event.objects.filter(session=session, version__gte=from_version).update(created_at=when)


def test_a_keyed_append_retried_with_redis_lost_after_event_archival_is_answered_as_the_first(world: World) -> None:
    session, first = keyed_session(world)
    age(session, days=10)
    age(session, days=2, from_version=101)  # past the event retention, inside the key's lifetime

    preview = jobs.archive_events(dry_run=True, triggered_by="manual")
    run = jobs.archive_events(dry_run=False, triggered_by="manual")
    redis_client().flushall()  # Redis is a cache: losing it must lose nothing
    retry = world.acme.client.post("/api/v1/sessions/s/events", KEYED, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    # Up to the snapshot at 100 only: from there on the events are younger than the key's lifetime.
    assert preview.counts["events"] == run.counts["events"] == 100
    assert Event.objects.filter(session=session).order_by("version").values_list("version", flat=True)[0] == 101
    assert retry.status_code == first.status_code
    assert [event["version"] for event in retry.json()["events"]] == [150]
    assert AgentSession.objects.get(pk=session.pk).head_version == 200


def test_events_older_than_the_idempotency_lifetime_are_archived_keyed_or_not(world: World) -> None:
    session, _ = keyed_session(world)
    head = rebuild_state(session, version=200).state
    age(session, days=8)

    run = jobs.archive_events(dry_run=False, triggered_by="manual")

    assert run.counts["events"] == 200
    assert not Event.objects.filter(session=session).exists()
    assert rebuild_state(session, version=200).state == head
