"""Per-tool intermediate state: 30 minutes in Redis, written through, expiring the same way in both layers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from conftest import World
from memory_admin.health import redis_client
from sessions_app.models import Event
from sessions_app.tests.helpers import create_session, say

pytestmark = pytest.mark.django_db


@pytest.fixture
def session(world: World) -> str:
    create_session(world.acme.client, "s", "alice")
    return "s"


def _put(world: World, tool: str, state: object) -> Any:
    return world.acme.client.put(f"/api/v1/sessions/s/tools/{tool}", {"state": state}, format="json")


def test_a_tool_state_is_stored_and_read_back_with_its_time_left(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = _put(world, "crawler", {"page": 3})
    assert response.status_code == 200

    body = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()

    assert body["state"] == {"page": 3}
    assert body["source"] == "redis"
    assert 1700 < body["ttl_seconds"] <= 1800


def test_after_a_redis_flush_the_tool_state_comes_back_from_events(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
        _put(world, "crawler", {"page": 2})
    redis_client().flushall()

    body = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()

    assert body["state"] == {"page": 2}
    assert body["source"] == "rebuilt"


def test_an_expired_tool_state_is_gone_from_both_layers(world: World, session: str) -> None:
    _put(world, "crawler", {"page": 1})
    Event.objects.filter(type="TOOL_STATE_SET").update(
        created_at=Event.objects.get().created_at - timedelta(minutes=31)
    )
    redis_client().flushall()

    response = world.acme.client.get("/api/v1/sessions/s/tools/crawler")

    assert response.status_code == 404


@override_settings(TOOL_STATE_TTL_SECONDS=1)
def test_the_redis_copy_expires_with_the_configured_ttl(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
    key = next(redis_client().scan_iter(match="mem:tool:*"))
    assert 0 < redis_client().pttl(key) <= 1000


def test_clearing_a_tool_state_makes_it_404(world: World, session: str, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
        assert world.acme.client.delete("/api/v1/sessions/s/tools/crawler").status_code == 204

    assert world.acme.client.get("/api/v1/sessions/s/tools/crawler").status_code == 404
    redis_client().flushall()
    assert world.acme.client.get("/api/v1/sessions/s/tools/crawler").status_code == 404


def test_the_tool_list_shows_each_live_tool_once(world: World, session: str) -> None:
    _put(world, "crawler", {"page": 1})
    _put(world, "search", {"q": "x"})
    _put(world, "crawler", {"page": 2})

    body = world.acme.client.get("/api/v1/sessions/s/tools").json()

    assert [(t["tool"], t["state"]) for t in body] == [("crawler", {"page": 2}), ("search", {"q": "x"})]


def test_a_malformed_tool_name_is_not_found(world: World, session: str) -> None:
    assert world.acme.client.get("/api/v1/sessions/s/tools/bad%20name").status_code == 404


def test_a_tool_state_write_that_redis_missed_is_not_served_stale_from_redis(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
    # The second write's after-commit update never reaches Redis (a Redis hiccup right after COMMIT).
    _put(world, "crawler", {"page": 2})

    body = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()
    again = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()

    assert (body["state"], body["version"], body["source"]) == ({"page": 2}, 2, "rebuilt")
    assert (again["state"], again["source"]) == ({"page": 2}, "redis")


def test_a_clear_that_redis_missed_makes_the_tool_state_404(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
    assert world.acme.client.delete("/api/v1/sessions/s/tools/crawler").status_code == 204  # missed by Redis

    assert world.acme.client.get("/api/v1/sessions/s/tools/crawler").status_code == 404
    assert world.acme.client.get("/api/v1/sessions/s/tools/crawler").status_code == 404


def test_an_older_value_left_in_redis_is_not_served(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
    key = next(redis_client().scan_iter(match="mem:tool:*"))
    older = redis_client().get(key)
    assert older is not None
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 2})
    redis_client().set(key, older, ex=1800)  # as if the newer write's update had been lost

    body = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()

    assert body["state"] == {"page": 2}


def test_a_current_cached_tool_state_is_served_without_reading_events(
    world: World, session: str, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _put(world, "crawler", {"page": 1})
        _put(world, "search", {"q": "x"})
        say(world.acme.client, "s", "other events since")
    world.acme.client.get("/api/v1/sessions/s/tools/crawler")  # finds nothing newer: cached as current at head

    with CaptureQueriesContext(connection) as queries:
        body = world.acme.client.get("/api/v1/sessions/s/tools/crawler").json()

    assert (body["state"], body["source"]) == ({"page": 1}, "redis")
    assert not [query for query in queries.captured_queries if Event._meta.db_table in query["sql"]]


def _unreachable(port: int) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }


# Committed, as in production: a write's update of the cache runs before its answer is made.
@pytest.mark.django_db(transaction=True)
def test_a_tool_state_write_the_cache_took_says_it_is_in_redis(world: World, session: str) -> None:
    written = _put(world, "crawler", {"page": 1})

    assert written.status_code == 200
    assert (written.json()["state"], written.json()["version"], written.json()["source"]) == ({"page": 1}, 1, "redis")
    assert 1790 < written.json()["ttl_seconds"] <= 1800


@pytest.mark.django_db(transaction=True)
def test_with_redis_unreachable_a_tool_state_write_and_its_reads_say_postgres_holds_it(
    world: World, session: str, unused_tcp_port: int
) -> None:
    with override_settings(CACHES=_unreachable(unused_tcp_port)):
        written = _put(world, "crawler", {"page": 1})
        read = world.acme.client.get("/api/v1/sessions/s/tools/crawler")
        listed = world.acme.client.get("/api/v1/sessions/s/tools")

    assert written.status_code == read.status_code == listed.status_code == 200
    assert (written.json()["state"], written.json()["source"]) == ({"page": 1}, "postgres")
    assert (read.json()["state"], read.json()["source"]) == ({"page": 1}, "postgres")
    assert [(tool["tool"], tool["source"]) for tool in listed.json()] == [("crawler", "postgres")]
