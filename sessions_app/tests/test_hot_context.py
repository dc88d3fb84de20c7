"""The dialogue window in Redis: written through to events, rebuilt after a Redis loss, never losing a message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from conftest import World
from lifecycle_app.archival import claim_inactive_sessions, complete_archival
from memory_admin.health import redis_client
from sessions_app import context
from sessions_app.models import AgentSession, Event
from sessions_app.selectors import read_context
from sessions_app.tests.helpers import append, cache_unreachable, create_session, say

pytestmark = pytest.mark.django_db


def _context(world: World, session_id: str = "s") -> dict[str, Any]:
    response = world.acme.client.get(f"/api/v1/sessions/{session_id}/context")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def session(world: World, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        create_session(world.acme.client, "s", "alice")
    return "s"


def test_appended_messages_are_served_from_redis_with_the_time_left(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = say(world.acme.client, session, "hello", "how are you?")
    assert response.status_code == 201

    body = _context(world)

    assert [m["content"] for m in body["messages"]] == ["hello", "how are you?"]
    assert body["source"] == "redis"
    assert body["version"] == 2
    assert 7000 < body["ttl_seconds"] <= 7200


def test_every_appended_message_is_also_an_event_in_postgres(world: World, session: str) -> None:
    say(world.acme.client, session, "one", "two")
    events = world.acme.client.get(f"/api/v1/sessions/{session}/events").json()["results"]
    assert [(e["type"], e["payload"]["content"]) for e in events] == [
        ("MESSAGE_ADDED", "one"),
        ("MESSAGE_ADDED", "two"),
    ]


def test_after_redis_is_flushed_the_context_is_rebuilt_from_events_and_marked_so(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "one", "two", "three")

    redis_client().flushall()
    rebuilt = _context(world)
    again = _context(world)

    assert [m["content"] for m in rebuilt["messages"]] == ["one", "two", "three"]
    assert rebuilt["source"] == "rebuilt"
    assert again["source"] == "rebuilt"
    assert again["messages"] == rebuilt["messages"]


def test_a_cache_that_missed_an_append_catches_up_from_postgres(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "cached")
    # This append's after-commit update never reaches Redis (as if the process died right after COMMIT).
    say(world.acme.client, session, "missed by the cache")

    body = _context(world)

    assert [m["content"] for m in body["messages"]] == ["cached", "missed by the cache"]
    assert body["version"] == 2


def test_a_read_that_an_append_overtakes_serves_the_newer_cached_window_not_a_rebuild(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "one")
    row_read_before = AgentSession.objects.get(session_id=session)  # the reader's row: head 1
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "two")  # committed and cached before the reader reaches Redis

    view = read_context(session=row_read_before)

    assert (view.source, view.version) == ("redis", 2)
    assert [message["content"] for message in view.messages] == ["one", "two"]


def test_a_cache_ahead_of_what_postgres_holds_is_not_served(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "one")
    row = AgentSession.objects.get(session_id=session)
    ghost = context.ContextEffect(replace=False, messages=[{"role": "user", "content": "lost in a restore"}])
    context.advance(row.pk, first=2, last=2, effect=ghost, ttl=60)  # Redis kept what Postgres no longer has

    view = read_context(session=row)

    assert (view.source, view.version) == ("rebuilt", 1)
    assert [message["content"] for message in view.messages] == ["one"]


@override_settings(CONTEXT_WINDOW_MESSAGES=3)
def test_the_window_keeps_only_the_latest_messages_in_both_layers(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, *[f"m{i}" for i in range(5)])
    cached = _context(world)
    redis_client().flushall()
    rebuilt = _context(world)

    assert [m["content"] for m in cached["messages"]] == ["m2", "m3", "m4"]
    assert rebuilt["messages"] == cached["messages"]


def test_replacing_the_context_starts_a_new_window(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "old")
        world.acme.client.put(
            f"/api/v1/sessions/{session}/context",
            {"messages": [{"role": "system", "content": "summary of before"}]},
            format="json",
        )
        say(world.acme.client, session, "new")
    cached = _context(world)
    redis_client().flushall()
    rebuilt = _context(world)

    assert [m["content"] for m in cached["messages"]] == ["summary of before", "new"]
    assert rebuilt["messages"] == cached["messages"]


def test_other_events_do_not_disturb_the_cached_window(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "hi")
        append(world.acme.client, session, ("NODE_TRANSITION", {"node": "think"}))
        say(world.acme.client, session, "there")

    body = _context(world)

    assert body["source"] == "redis"
    assert [m["content"] for m in body["messages"]] == ["hi", "there"]


def test_with_redis_unreachable_the_context_is_served_from_postgres(
    world: World, session: str, unused_tcp_port: int
) -> None:
    say(world.acme.client, session, "kept in postgres")
    with cache_unreachable(unused_tcp_port):
        body = _context(world)
        written = say(world.acme.client, session, "written while redis is down")

    assert body["source"] == "postgres"
    assert [m["content"] for m in body["messages"]] == ["kept in postgres"]
    assert written.status_code == 201
    assert AgentSession.objects.get(session_id=session).head_version == 2


def test_a_message_without_a_role_is_refused_and_nothing_is_stored(world: World, session: str) -> None:
    response = world.acme.client.post(
        f"/api/v1/sessions/{session}/context/messages", {"messages": [{"content": "who am i"}]}, format="json"
    )
    assert response.status_code == 400
    assert AgentSession.objects.get(session_id=session).head_version == 0


def test_a_message_list_evicted_without_its_head_is_rebuilt_from_events(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "one", "two", "three")
    pk = AgentSession.objects.get(session_id=session).pk
    redis_client().delete(f"mem:ctx:{pk}:msgs")  # volatile-lru took the list and left the meta hash

    body = _context(world)
    again = _context(world)

    assert [m["content"] for m in body["messages"]] == ["one", "two", "three"]
    assert (body["source"], body["version"]) == ("rebuilt", 3)
    assert again["messages"] == body["messages"]


def test_an_append_after_the_message_list_was_evicted_loses_no_earlier_message(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "one", "two")
    pk = AgentSession.objects.get(session_id=session).pk
    redis_client().delete(f"mem:ctx:{pk}:msgs")
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "three")

    body = _context(world)

    assert [m["content"] for m in body["messages"]] == ["one", "two", "three"]
    assert body["version"] == 3


def test_an_archived_sessions_context_is_its_window_at_the_head_from_the_kept_snapshot(
    world: World, session: str, django_capture_on_commit_callbacks, settings, tmp_path
) -> None:
    settings.ARCHIVE_DIR = tmp_path / "archive"
    settings.ARCHIVE_STORAGE_BACKEND = ""
    with django_capture_on_commit_callbacks(execute=True):
        say(world.acme.client, session, "m0", "m1", "m2")
    row = AgentSession.objects.get(session_id=session)
    long_ago = timezone.now() - timedelta(days=100)
    AgentSession.objects.filter(pk=row.pk).update(last_activity_at=long_ago, updated_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        assert claim_inactive_sessions(row.tenant_id, cutoff=timezone.now() - timedelta(days=90), limit=10)
    complete_archival(row.pk, limit=500, wait=True)
    assert not Event.objects.filter(session=row).exists()

    body = _context(world)
    cached = _context(world)

    assert [m["content"] for m in body["messages"]] == ["m0", "m1", "m2"]
    assert body["version"] == 3
    assert cached["messages"] == body["messages"]


def test_a_window_whose_older_events_went_without_a_snapshot_is_what_is_left_not_an_error(
    world: World, session: str
) -> None:
    # Only an archival made by hand can take events the window needs with no snapshot this side of them; the
    # rebuild then found no state to start from, and the context read (and the session's page) failed.
    say(world.acme.client, session, "m0", "m1", "m2", "m3")
    Event.objects.filter(session__session_id=session, version__lte=2).delete()
    redis_client().flushdb()

    body = _context(world)

    assert [m["content"] for m in body["messages"]] == ["m2", "m3"]
    assert body["version"] == 4
