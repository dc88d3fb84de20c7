from __future__ import annotations

from memories_app.models import Memory
from memories_app.tests.conftest import create, make_session


def test_create_user_memory_returns_201_with_etag_and_stores_an_embedding(world):
    response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["scope"] == "user" and body["user_id"] == "alice" and body["version"] == 1
    assert response["ETag"] == '"1"'
    memory = Memory.objects.get(pk=body["id"])
    assert memory.embedding_model == "hashing-384" and len(memory.embedding) == 384


def test_create_session_memory_takes_the_user_from_the_session(world):
    make_session(world, user_id="alice", session_id="s-1")

    response = create(world.acme.client, scope="session", session_id="s-1", content="Looking at flights to Oslo.")

    assert response.status_code == 201, response.json()
    assert response.json()["user_id"] == "alice" and response.json()["session_id"] == "s-1"


def test_create_global_memory_belongs_to_no_user(world):
    response = create(world.acme.client, scope="global", content="Support hours are 9 to 5 CET.")

    assert response.status_code == 201
    assert response.json()["user_id"] == "" and response.json()["session_id"] is None


def test_create_with_a_client_vector_of_the_right_dimension_stores_it_as_given(world):
    vector = [0.0] * 384
    vector[7] = 1.0

    response = create(world.acme.client, scope="user", user_id="alice", content="x marks the spot", embedding=vector)

    assert response.status_code == 201, response.json()
    assert Memory.objects.get(pk=response.json()["id"]).embedding[7] == 1.0


def test_get_returns_the_memory_with_its_decay_score(world):
    created = create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.").json()

    response = world.acme.client.get(f"/api/v1/memories/{created['id']}")

    assert response.status_code == 200
    assert response.json()["content"] == "Alice likes tea."
    assert 0.69 < response.json()["decay_score"] < 0.7
    assert response.json()["eviction_candidate"] is False


def test_create_with_an_idempotency_key_twice_stores_one_memory(world):
    body = {"scope": "user", "user_id": "alice", "content": "Alice likes tea."}
    first = world.acme.client.post("/api/v1/memories", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = world.acme.client.post("/api/v1/memories", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true"
    assert first.json()["id"] == second.json()["id"]
    assert Memory.objects.count() == 1
