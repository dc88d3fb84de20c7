"""Memory writes reach the dashboard's live groups after commit: a batch announces every row it stored."""

from __future__ import annotations

import pytest

from memories_app import background
from memories_app.models import Memory
from memories_app.tests.conftest import make_session
from memory_admin.health import redis_client
from memory_admin.live import channel_name, session_group, tenant_group
from tests.live import drain

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_batch_announces_each_memory_to_its_tenant_and_session_bound_ones_to_their_session(world):
    session = make_session(world, user_id="alice", session_id="s-live")
    tenant_feed, session_feed = redis_client().pubsub(), redis_client().pubsub()
    tenant_feed.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))
    session_feed.subscribe(channel_name(session_group(session.pk)))

    response = world.acme.client.post(
        "/api/v1/memories/batch",
        {
            "memories": [
                {"scope": "user", "user_id": "alice", "content": "Likes tea."},
                {"scope": "session", "session_id": "s-live", "content": "Asked about trains."},
                {"scope": "global", "content": "Office opens at nine."},
            ]
        },
        format="json",
    )
    assert response.status_code == 201
    ids = [memory["id"] for memory in response.json()["memories"]]

    to_tenant = drain(tenant_feed, 3)
    to_session = drain(session_feed, 2, timeout=1)
    assert [(m["type"], m["memory"], m["scope"]) for m in to_tenant] == [
        ("memory.created", ids[0], "user"),
        ("memory.created", ids[1], "session"),
        ("memory.created", ids[2], "global"),
    ]
    assert [(m["type"], m["memory"]) for m in to_session] == [("memory.created", ids[1])]


def test_a_refused_batch_announces_nothing(world):
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))

    response = world.acme.client.post(
        "/api/v1/memories/batch",
        {"memories": [{"scope": "user", "user_id": "alice", "content": "ok"}, {"scope": "nope", "content": "x"}]},
        format="json",
    )

    assert response.status_code == 400
    assert drain(feed, 1, timeout=1) == []


def test_a_profile_fact_announces_the_memory_it_creates_updates_and_removes(world):
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))

    def change_fact(value):
        response = world.acme.client.patch("/api/v1/users/alice/profile", {"facts": {"city": value}}, format="json")
        assert response.status_code == 200, response.json()
        assert [m["type"] for m in drain(feed, 1)] == ["profile.updated"]
        while background.apply_next_outbox_entry():
            pass
        return [(m["type"], m["memory"]) for m in drain(feed, 2, timeout=1)]

    created = change_fact("Lives in Oslo")
    memory = Memory.objects.get(user_id="alice", source="profile")
    updated = change_fact("Lives in Bergen")
    deleted = change_fact(None)

    assert created == [("memory.created", str(memory.pk))]
    assert updated == [("memory.updated", str(memory.pk))]
    assert deleted == [("memory.deleted", str(memory.pk))]


def test_a_promotion_announces_the_user_memories_it_creates_and_updates(world, django_capture_on_commit_callbacks):
    make_session(world, user_id="alice", session_id="s-1")
    feed = redis_client().pubsub()
    feed.subscribe(channel_name(tenant_group(world.acme.tenant.pk)))

    def promote(text):
        with django_capture_on_commit_callbacks(execute=False):
            response = world.acme.client.post("/api/v1/sessions/s-1/promote", {"texts": [text]}, format="json")
        assert response.status_code == 202, response.json()
        with django_capture_on_commit_callbacks(execute=True):
            background.run_promotion(response.json()["id"])
        return [(m["type"], m["memory"]) for m in drain(feed, 2, timeout=1) if m["type"].startswith("memory.")]

    created = promote("Alice's dog is called Rex.")
    memory = Memory.objects.get(scope="user", user_id="alice")
    updated = promote("Alice's dog is called Rex!")

    assert created == [("memory.created", str(memory.pk))]
    assert updated == [("memory.updated", str(memory.pk))]
