from __future__ import annotations

from memories_app.tests.conftest import create, make_session
from sessions_app.services import append_messages


def _seed(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    client = world.acme.client
    create(client, scope="session", session_id="s-1", content="We are planning a trip to Oslo in May.")
    create(client, scope="user", user_id="alice", content="Alice prefers window seats on flights.")
    create(client, scope="user", user_id="alice", content="Alice is vegetarian.")
    create(client, scope="user", user_id="bob", content="Bob prefers aisle seats on flights.")
    create(client, scope="global", content="Flights to Oslo leave from gate B.")
    return session


def test_recall_merges_context_session_user_and_global_memories(world):
    session = _seed(world)
    append_messages(session=session, messages=[{"role": "user", "content": "Book me seats on flights to Oslo"}])

    response = world.acme.client.get("/api/v1/sessions/s-1/recall?user_limit=1")

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["query"] == "Book me seats on flights to Oslo"
    assert [m["content"] for m in body["context"]] == ["Book me seats on flights to Oslo"]
    assert [m["memory"]["content"] for m in body["session_memories"]] == ["We are planning a trip to Oslo in May."]
    assert [m["memory"]["content"] for m in body["user_memories"]] == ["Alice prefers window seats on flights."]
    assert [m["memory"]["content"] for m in body["global_memories"]] == ["Flights to Oslo leave from gate B."]


def test_recall_with_an_explicit_query_ranks_by_it(world):
    _seed(world)

    body = world.acme.client.get("/api/v1/sessions/s-1/recall?query=vegetarian&user_limit=1").json()

    assert [m["memory"]["content"] for m in body["user_memories"]] == ["Alice is vegetarian."]


def test_recall_leaves_out_a_memory_already_in_a_higher_priority_part(world):
    _seed(world)
    create(world.acme.client, scope="user", user_id="alice", content="We are planning a trip to Oslo in May.")

    body = world.acme.client.get("/api/v1/sessions/s-1/recall?query=trip to Oslo in May").json()

    texts = [m["memory"]["content"] for m in body["session_memories"] + body["user_memories"]]
    assert texts.count("We are planning a trip to Oslo in May.") == 1
    assert body["session_memories"][0]["memory"]["content"] == "We are planning a trip to Oslo in May."


def test_recall_without_query_or_context_returns_newest_memories(world):
    _seed(world)

    body = world.acme.client.get("/api/v1/sessions/s-1/recall").json()

    assert body["query"] == ""
    assert [m["memory"]["content"] for m in body["user_memories"]] == [
        "Alice is vegetarian.",
        "Alice prefers window seats on flights.",
    ]


def test_recall_with_zero_limits_returns_empty_parts(world):
    _seed(world)

    body = world.acme.client.get(
        "/api/v1/sessions/s-1/recall?query=x&session_limit=0&user_limit=0&global_limit=0&context_limit=0"
    ).json()

    assert body["session_memories"] == body["user_memories"] == body["global_memories"] == body["context"] == []


def test_recall_for_an_unknown_session_returns_404(world):
    assert world.acme.client.get("/api/v1/sessions/nope/recall").status_code == 404


def test_recall_with_a_negative_limit_returns_400(world):
    _seed(world)

    assert world.acme.client.get("/api/v1/sessions/s-1/recall?user_limit=-1").status_code == 400


def test_recall_with_an_unknown_parameter_returns_400(world):
    _seed(world)

    assert world.acme.client.get("/api/v1/sessions/s-1/recall?colour=red").status_code == 400
