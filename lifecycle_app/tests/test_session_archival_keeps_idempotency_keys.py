"""Session archival waits for the tenant's idempotency lifetime since a session's last event, whatever the idle
time its policy says: it moves every event, and a retried append (Redis lost) finds its Idempotency-Key on them
only in Postgres. Until then the retry is answered as the first, not refused because the session is archived."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Agent, World
from lifecycle_app import jobs
from lifecycle_app.services import set_retention_policy
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event, EventType, SessionStatus

from .conftest import age

pytestmark = pytest.mark.django_db

KEYED = {"events": [{"type": EventType.NODE_TRANSITION, "payload": {"node": "charge-card"}}]}


@pytest.fixture(autouse=True)
def _policy() -> None:
    # Both values are ones /lifecycle/ accepts: keys honoured for a week, sessions archived after a day idle.
    set_retention_policy(
        tenant=None, values={"idempotency_ttl_seconds": 7 * 86400, "session_archive_after_days": 1}, updated_by="test"
    )


def keyed_session(agent: Agent, *, idle_days: int) -> tuple[AgentSession, Any]:
    """Session "s" with one append sent with Idempotency-Key pay-1, idle for `idle_days`."""
    created = agent.client.post("/api/v1/sessions", {"id": "s", "user_id": "alice"}, format="json")
    assert created.status_code == 201, created.content
    first = agent.client.post("/api/v1/sessions/s/events", KEYED, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")
    assert first.status_code == 201, first.content
    session = AgentSession.objects.get(tenant=agent.tenant, session_id="s")
    age(session, days=idle_days)
    return session, first


def versions(answer: Any) -> list[tuple[int, str]]:
    return [(event["version"], event["type"]) for event in answer.json()["events"]]


def test_a_keyed_append_retried_with_redis_lost_after_a_session_archival_run_is_answered_as_the_first(
    world: World,
) -> None:
    session, first = keyed_session(world.acme, idle_days=2)  # past the idle time, inside the key's lifetime

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")
    redis_client().flushall()  # Redis is a cache: losing it must lose nothing
    retry = world.acme.client.post("/api/v1/sessions/s/events", KEYED, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    assert preview.counts["sessions"] == run.counts["sessions_claimed"] == 0
    assert AgentSession.objects.get(pk=session.pk).status == SessionStatus.ACTIVE
    assert (retry.status_code, versions(retry)) == (first.status_code, versions(first))
    assert Event.objects.filter(session=session).count() == 1


def test_a_session_idle_for_longer_than_the_idempotency_lifetime_is_archived(world: World) -> None:
    session, _ = keyed_session(world.acme, idle_days=8)

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    assert preview.counts["sessions"] == run.counts["sessions_claimed"] == run.counts["sessions_archived"] == 1
    assert AgentSession.objects.get(pk=session.pk).status == SessionStatus.ARCHIVED
    assert not Event.objects.filter(session=session).exists()


def test_session_archival_follows_each_tenants_own_idempotency_lifetime(world: World) -> None:
    set_retention_policy(tenant=world.acme.tenant, values={"idempotency_ttl_seconds": 3600}, updated_by="test")
    ours, _ = keyed_session(world.acme, idle_days=2)
    theirs, _ = keyed_session(world.outsider, idle_days=2)

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")

    # acme honours a retry for an hour; globex has the global week.
    assert preview.counts["sessions"] == run.counts["sessions_claimed"] == 1
    assert AgentSession.objects.get(pk=ours.pk).status == SessionStatus.ARCHIVED
    assert AgentSession.objects.get(pk=theirs.pk).status == SessionStatus.ACTIVE


def test_a_session_its_client_archived_keeps_its_events_for_a_retry_within_the_key_lifetime(world: World) -> None:
    # A session its client archived waits a week at least (its distillation); the key lives longer here.
    set_retention_policy(tenant=None, values={"idempotency_ttl_seconds": 20 * 86400}, updated_by="test")
    session, first = keyed_session(world.acme, idle_days=0)
    for status in ("completed", "archived"):
        answer = world.acme.client.patch("/api/v1/sessions/s", {"status": status}, format="json")
        assert answer.status_code == 200, answer.content
    age(session, days=10)

    preview = jobs.archive_sessions(dry_run=True, triggered_by="manual")
    run = jobs.archive_sessions(dry_run=False, triggered_by="manual")
    redis_client().flushall()
    retry = world.acme.client.post("/api/v1/sessions/s/events", KEYED, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    assert preview.counts["sessions"] == run.counts["sessions_claimed"] == 0
    assert (retry.status_code, versions(retry)) == (first.status_code, versions(first))
