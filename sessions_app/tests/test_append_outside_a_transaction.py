"""The production append path (one autocommit statement) gives the same answers as the transactional one.

Most tests run inside a transaction, where appends take the transactional path; these run committed, as a
web request does.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from conftest import World
from memory_admin.health import redis_client
from sessions_app.models import AgentSession, Event
from sessions_app.tests.helpers import append, create_session, say

pytestmark = pytest.mark.django_db(transaction=True)


def _node(name: str) -> tuple[str, Any]:
    return ("NODE_TRANSITION", {"node": name})


def test_a_batch_gets_consecutive_versions_and_is_readable(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    first = append(world.acme.client, "s", _node("a"))
    batch = append(world.acme.client, "s", _node("b"), _node("c"), ("CUSTOM_NOTE", {"x": 1}))

    assert first.status_code == batch.status_code == 201
    assert [e["version"] for e in batch.json()["events"]] == [2, 3, 4]
    assert world.acme.client.get("/api/v1/sessions/s/state").json()["state"]["current_node"] == "c"


def test_a_stale_expected_version_is_a_409_with_the_current_version(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    append(world.acme.client, "s", _node("a"))

    response = append(world.acme.client, "s", _node("b"), expected_version=0)

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"current_version": 1, "expected_version": 0}
    assert Event.objects.count() == 1


def test_a_closed_session_refuses_events_and_nothing_is_stored(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    world.acme.client.patch("/api/v1/sessions/s", {"status": "completed"}, format="json")

    response = append(world.acme.client, "s", _node("late"))

    assert response.status_code == 409
    assert response.json()["error"]["details"] == {"status": "completed"}
    assert AgentSession.objects.get().head_version == 0


def test_an_erased_session_is_not_found(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    AgentSession.objects.update(erased_at=timezone.now())

    assert append(world.acme.client, "s", _node("a")).status_code == 404
    assert not Event.objects.exists()


def test_a_retry_after_a_redis_flush_returns_the_first_batch(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    body = {"type": "NODE_TRANSITION", "payload": {"node": "pay"}}
    first = world.acme.client.post("/api/v1/sessions/s/events", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    redis_client().flushall()

    retry = world.acme.client.post("/api/v1/sessions/s/events", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert retry.json() == first.json()
    assert Event.objects.count() == 1


def test_appended_messages_reach_the_cached_window_at_once(world: World) -> None:
    create_session(world.acme.client, "s", "alice")
    say(world.acme.client, "s", "one", "two")

    context = world.acme.client.get("/api/v1/sessions/s/context").json()

    assert context["source"] == "redis"
    assert [m["content"] for m in context["messages"]] == ["one", "two"]
