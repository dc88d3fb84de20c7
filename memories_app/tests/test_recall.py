from __future__ import annotations

import uuid

from memories_app import recall as recall_module
from memories_app.models import Memory
from memories_app.selectors import ScoredMemory
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


def test_recall_keeps_a_user_memory_whose_copy_in_the_session_was_cut_by_the_session_limit(world):
    make_session(world, user_id="alice", session_id="s-1")
    client = world.acme.client
    create(client, scope="session", session_id="s-1", content="Prefers window seats on trains")
    create(client, scope="session", session_id="s-1", content="Prefers aisle seats on planes")
    create(client, scope="user", user_id="alice", content="Prefers aisle seats on planes")

    body = client.get(
        "/api/v1/sessions/s-1/recall",
        {"query": "Prefers window seats on trains", "session_limit": 1, "user_limit": 5, "global_limit": 0},
    ).json()

    assert [m["memory"]["content"] for m in body["session_memories"]] == ["Prefers window seats on trains"]
    assert [m["memory"]["content"] for m in body["user_memories"]] == ["Prefers aisle seats on planes"]


def test_recall_fills_a_part_with_memories_past_those_that_repeat_the_context(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    said = [f"I am planning a trip to Japan in {month}" for month in ("March", "April", "May", "June", "July")]
    append_messages(session=session, messages=[{"role": "user", "content": text} for text in said])
    facts = ["The user is planning to travel with a dog", "The user wants to visit Kyoto temples on the trip"]
    for text in said + facts:
        create(world.acme.client, scope="session", session_id="s-1", content=text)

    body = world.acme.client.get(
        "/api/v1/sessions/s-1/recall",
        {"query": "I am planning a trip to Japan", "session_limit": 2, "user_limit": 0, "global_limit": 0},
    ).json()

    assert len(body["context"]) == 5
    assert sorted(m["memory"]["content"] for m in body["session_memories"]) == sorted(facts)


def test_recall_fills_a_part_with_distinct_memories_past_many_copies_of_one_text(world):
    make_session(world, user_id="alice", session_id="s-1")
    copies = ["Likes green tea", "likes green tea", "LIKES GREEN TEA", "Likes  green tea", " likes green  tea "]
    distinct = ["Likes green tea with honey", "Likes green tea in the morning", "Likes green tea cold"]
    for text in copies + distinct:
        create(world.acme.client, scope="user", user_id="alice", content=text)

    body = world.acme.client.get(
        "/api/v1/sessions/s-1/recall",
        {"query": "Likes green tea", "user_limit": 3, "session_limit": 0, "global_limit": 0, "context_limit": 0},
    ).json()

    got = [m["memory"]["content"] for m in body["user_memories"]]
    assert len(got) == 3
    assert len({" ".join(text.lower().split()) for text in got}) == 3


def test_recall_without_a_query_fills_a_part_with_older_memories_past_copies_of_the_context(world):
    session = make_session(world, user_id="alice", session_id="s-1")
    create(world.acme.client, scope="session", session_id="s-1", content="The user has a dog")
    said = [f"Message number {n}" for n in range(6)]
    for text in said:
        create(world.acme.client, scope="session", session_id="s-1", content=text)
    append_messages(session=session, messages=[{"role": "assistant", "content": text} for text in said])

    body = world.acme.client.get(
        "/api/v1/sessions/s-1/recall", {"session_limit": 1, "user_limit": 0, "global_limit": 0}
    ).json()

    assert body["query"] == ""
    assert [m["memory"]["content"] for m in body["session_memories"]] == ["The user has a dog"]


def test_recall_reads_a_part_full_of_copies_in_growing_pages_and_stops_at_the_bound():
    copies = [ScoredMemory(Memory(id=uuid.uuid4(), content="Likes tea"), 1.0) for _ in range(5000)]
    asked = []

    def fetch(k):
        asked.append(k)
        return copies[:k]

    kept = recall_module._first_unseen(fetch, limit=5, seen=set())

    assert [item.memory.content for item in kept] == ["Likes tea"]
    assert asked == [10, 40, 160, 640, recall_module._MAX_CANDIDATES]


def test_recall_with_nothing_to_rank_by_keeps_its_unranked_memories_only_when_min_score_allows_a_score_of_zero(world):
    _seed(world)

    strict = world.acme.client.get("/api/v1/sessions/s-1/recall?min_score=0.5").json()
    lenient = world.acme.client.get("/api/v1/sessions/s-1/recall?min_score=0").json()

    assert strict["session_memories"] == strict["user_memories"] == strict["global_memories"] == []
    assert [m["memory"]["content"] for m in lenient["global_memories"]] == ["Flights to Oslo leave from gate B."]
    assert {m["score"] for m in lenient["session_memories"] + lenient["user_memories"]} == {0.0}
