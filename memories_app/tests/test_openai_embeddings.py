"""The OpenAI provider, exercised through the real `openai` client against a local server speaking its protocol."""

from __future__ import annotations

from django.test import override_settings

from memories_app.embeddings import active_provider, get_embedder, reset_embedder
from memories_app.models import Memory
from memories_app.tests.conftest import FAKE_KEY, create


def test_create_embeds_through_the_openai_server_with_the_configured_key_and_model(world, fake_openai):
    response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 201, response.json()
    calls = fake_openai.embeddings_calls()
    assert len(calls) == 1
    assert calls[0]["auth"] == f"Bearer {FAKE_KEY}"
    assert calls[0]["body"]["model"] == "text-embedding-3-small"
    assert calls[0]["body"]["input"] == ["Alice prefers dark mode."]
    memory = Memory.objects.get(pk=response.json()["id"])
    assert memory.embedding_model == "openai:text-embedding-3-small-1536" and len(memory.embedding) == 1536


def test_search_by_text_through_openai_finds_the_near_duplicate(world, fake_openai):
    create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")
    create(world.acme.client, scope="user", user_id="alice", content="Alice is allergic to peanuts.")

    response = world.acme.client.post(
        "/api/v1/memories/search", {"query": "Alice prefers dark mode", "user_id": "alice", "k": 1}, format="json"
    )

    assert response.json()["results"][0]["memory"]["content"] == "Alice prefers dark mode."


def test_batch_sends_texts_in_batches_of_the_configured_size(world, fake_openai):
    items = [{"scope": "user", "user_id": "alice", "content": f"Fact {n}."} for n in range(5)]

    with override_settings(EMBEDDING_BATCH_SIZE=2):
        reset_embedder()
        response = world.acme.client.post("/api/v1/memories/batch", {"memories": items}, format="json")

    assert response.status_code == 201
    assert [len(call["body"]["input"]) for call in fake_openai.embeddings_calls()] == [2, 2, 1]


def test_configured_dimensions_are_requested_from_the_server(world, fake_openai):
    with override_settings(EMBEDDING_DIMENSIONS=256):
        reset_embedder()
        response = create(world.acme.client, scope="user", user_id="alice", content="Short vectors.")

    assert response.status_code == 201
    assert fake_openai.embeddings_calls()[0]["body"]["dimensions"] == 256
    assert len(Memory.objects.get(pk=response.json()["id"]).embedding) == 256


def test_create_when_the_embedder_is_down_returns_503_with_retry_after_and_stores_nothing(world, fake_openai):
    fake_openai.failing_status = 500

    response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"  # as the schema says every 503 carries
    assert response.json()["error"]["code"] == "unavailable"
    assert "HTTP 500" in response.json()["error"]["message"]
    assert Memory.objects.count() == 0


def test_create_when_the_embedder_is_unreachable_returns_503(world, fake_openai, unused_tcp_port):
    with override_settings(OPENAI_BASE_URL=f"http://127.0.0.1:{unused_tcp_port}/v1"):
        reset_embedder()
        response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 503
    assert "cannot be reached" in response.json()["error"]["message"]
    assert Memory.objects.count() == 0


def test_create_with_a_client_vector_does_not_call_the_embedder(world, fake_openai):
    response = create(world.acme.client, scope="user", user_id="alice", content="x", embedding=[0.5] * 1536)

    assert response.status_code == 201
    assert fake_openai.embeddings_calls() == []


def test_auto_provider_picks_openai_when_a_key_is_set_and_hashing_otherwise():
    with override_settings(EMBEDDING_PROVIDER="auto", OPENAI_API_KEY="sk-x"):
        assert active_provider() == "openai"
    with override_settings(EMBEDDING_PROVIDER="auto", OPENAI_API_KEY=None):
        reset_embedder()
        assert active_provider() == "hashing"  # sentence-transformers is not installed in the test venv
        assert get_embedder().model_id == "hashing-384"


def test_create_of_a_text_the_embedder_refuses_returns_422_with_its_reason_and_stores_nothing(world, fake_openai):
    fake_openai.refuse_text = "TOO LONG"

    response = create(world.acme.client, scope="user", user_id="alice", content="TOO LONG for the model")

    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "unprocessable" and error["details"] == {"layer": "embeddings"}
    assert "refused the text" in error["message"] and "maximum context length" in error["message"]
    assert Memory.objects.count() == 0


def test_a_batch_the_server_refuses_for_its_size_is_an_outage_not_a_refusal_of_its_texts(world, fake_openai):
    # A short probe text alone passed, so the size limit of a misconfigured server was blamed on the texts.
    fake_openai.max_inputs = 1
    batch = {"memories": [{"scope": "user", "user_id": "alice", "content": text} for text in ("tea", "cake")]}

    response = world.acme.client.post("/api/v1/memories/batch", batch, format="json")

    assert response.status_code == 503, response.json()
    assert Memory.objects.count() == 0


def test_an_update_to_a_text_the_embedder_refuses_returns_422_and_changes_nothing(world, fake_openai):
    memory = create(world.acme.client, scope="user", user_id="alice", content="Alice likes tea.").json()
    fake_openai.refuse_text = "TOO LONG"

    response = world.acme.client.patch(
        f"/api/v1/memories/{memory['id']}", {"content": "TOO LONG for the model"}, format="json"
    )

    assert response.status_code == 422
    stored = Memory.objects.get()
    assert (stored.content, stored.version) == ("Alice likes tea.", 1)


def test_a_server_that_answers_400_to_every_text_is_down_not_refusing_the_text(world, fake_openai):
    fake_openai.failing_status = 400

    response = create(world.acme.client, scope="user", user_id="alice", content="Alice prefers dark mode.")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable" and "HTTP 400" in response.json()["error"]["message"]
