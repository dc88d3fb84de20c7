"""The outsider tenant must never see or touch acme's memories, sessions or profiles: every route is 404."""

from __future__ import annotations

import pytest

from memories_app.models import Memory
from memories_app.tests.conftest import create, make_session


@pytest.fixture
def acme_memory(world):
    make_session(world, user_id="alice", session_id="s-1")
    response = create(world.acme.client, scope="user", user_id="alice", content="Alice's secret preference.")
    return response.json()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/api/v1/memories/{id}", None),
        ("patch", "/api/v1/memories/{id}", {"content": "taken over"}),
        ("delete", "/api/v1/memories/{id}", None),
        ("get", "/api/v1/memories/{id}/history", None),
        ("get", "/api/v1/sessions/s-1/recall", None),
        ("post", "/api/v1/sessions/s-1/promote", {}),
        ("get", "/api/v1/users/alice/profile", None),
    ],
)
def test_outsider_gets_404_for_acmes_resources(world, acme_memory, method, path, body):
    world.acme.client.patch("/api/v1/users/alice/profile", {"preferences": {"theme": "dark"}}, format="json")

    response = getattr(world.outsider.client, method)(path.format(id=acme_memory["id"]), body, format="json")

    assert response.status_code == 404, response.content
    assert Memory.objects.get(pk=acme_memory["id"]).content == "Alice's secret preference."
    assert Memory.objects.get(pk=acme_memory["id"]).deleted_at is None


def test_outsider_list_and_search_do_not_show_acmes_memories(world, acme_memory):
    listed = world.outsider.client.get("/api/v1/memories?user_id=alice")
    found = world.outsider.client.post(
        "/api/v1/memories/search", {"query": "secret preference", "user_id": "alice"}, format="json"
    )

    assert listed.status_code == 200 and listed.json()["results"] == []
    assert found.status_code == 200 and found.json()["results"] == []


def test_outsider_global_search_does_not_show_acmes_global_memories(world):
    create(world.acme.client, scope="global", content="Acme internal escalation policy.")

    found = world.outsider.client.post(
        "/api/v1/memories/search", {"query": "escalation policy", "scopes": ["global"]}, format="json"
    )

    assert found.json()["results"] == []


def test_search_in_another_tenants_session_returns_404(world):
    make_session(world, session_id="theirs", outsider=True)

    response = world.acme.client.post(
        "/api/v1/memories/search", {"query": "x", "scopes": ["session"], "session_id": "theirs"}, format="json"
    )

    assert response.status_code == 404
