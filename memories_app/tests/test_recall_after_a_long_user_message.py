"""Recall without ?query= after the user pasted a document: its latest user message is longer than the embedding
model's context (OpenAI answers 400 'maximum context length' past 8,191 tokens, which the fake server does for a
text holding `refuse_text`). Recall ranks by the message's end, or newest first when even that is refused; the
agent asked for no query, and a 422 would cost it the session's context until the user spoke again."""

from __future__ import annotations

from django.test import override_settings

from memories_app.tests.conftest import create, make_session
from sessions_app.services import append_messages

PASTED = "PASTED-DOCUMENT " + "lorem ipsum dolor sit amet " * 3000  # ~80,000 characters


def _seed(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    create(world.acme.client, scope="user", user_id="alice", content="Alice is vegetarian.")
    create(world.acme.client, scope="user", user_id="alice", content="Alice prefers window seats on flights.")
    return session


def test_recall_without_a_query_ranks_by_the_end_of_a_user_message_longer_than_the_embedder_takes(world, fake_openai):
    session = _seed(world)
    fake_openai.refuse_text = "PASTED-DOCUMENT"
    append_messages(
        session=session, messages=[{"role": "user", "content": f"{PASTED}\n\nWhat should a vegetarian eat?"}]
    )

    response = world.acme.client.get("/api/v1/sessions/s-1/recall?user_limit=1")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["query"].endswith("What should a vegetarian eat?") and len(body["query"]) <= 8000
    assert body["query"].startswith("lorem ")  # from a word's start, not the middle of one
    assert [m["memory"]["content"] for m in body["user_memories"]] == ["Alice is vegetarian."]
    assert body["context"][0]["content"].startswith("PASTED-DOCUMENT")  # the context is as the agent sent it
    embedded = fake_openai.embeddings_calls()[-1]["body"]["input"]
    assert embedded == [body["query"]]


def test_the_end_of_a_long_user_message_recall_ranks_by_is_as_long_as_configured(world):
    session = _seed(world)
    append_messages(session=session, messages=[{"role": "user", "content": f"{PASTED}Am I vegetarian?"}])

    with override_settings(MEMORY_RECALL_QUERY_MAX_CHARS=30):
        body = world.acme.client.get("/api/v1/sessions/s-1/recall").json()

    assert body["query"] == "sit amet Am I vegetarian?"


def test_recall_without_a_query_ranks_newest_first_when_the_embedder_refuses_even_the_messages_end(world, fake_openai):
    session = _seed(world)
    fake_openai.refuse_text = "REFUSED-TAIL"
    append_messages(session=session, messages=[{"role": "user", "content": f"{PASTED} REFUSED-TAIL"}])

    response = world.acme.client.get("/api/v1/sessions/s-1/recall")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["query"] == ""  # nothing ranked by
    assert [m["memory"]["content"] for m in body["user_memories"]] == [
        "Alice prefers window seats on flights.",
        "Alice is vegetarian.",
    ]
    assert {m["score"] for m in body["user_memories"]} == {0.0}


def test_recall_with_a_query_the_embedder_refuses_returns_422(world, fake_openai):
    _seed(world)
    fake_openai.refuse_text = "REFUSED"

    response = world.acme.client.get("/api/v1/sessions/s-1/recall?query=REFUSED text")

    assert response.status_code == 422, response.json()
    assert response.json()["error"]["details"] == {"layer": "embeddings"}
