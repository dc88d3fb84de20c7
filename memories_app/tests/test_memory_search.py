from __future__ import annotations

from django.test import override_settings

from memories_app.tests.conftest import create, make_session


def search(client, **body):
    return client.post("/api/v1/memories/search", body, format="json")


def _seed(world):
    make_session(world, user_id="alice", session_id="s-1")
    client = world.acme.client
    create(client, scope="user", user_id="alice", content="Alice prefers dark mode in the editor.", metadata={"k": 1})
    create(client, scope="user", user_id="alice", content="Alice is allergic to peanuts.", metadata={"k": 2})
    create(client, scope="user", user_id="bob", content="Bob prefers dark mode in the editor.")
    create(client, scope="session", session_id="s-1", content="Alice asked about dark mode settings today.")
    create(client, scope="global", content="Dark mode is available on every plan.")


def test_search_by_text_ranks_the_closest_memory_first_with_scores(world):
    _seed(world)

    response = search(world.acme.client, query="prefers dark mode in the editor", user_id="alice")

    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert [r["memory"]["content"] for r in results] == [
        "Alice prefers dark mode in the editor.",
        "Alice is allergic to peanuts.",
    ]
    assert results[0]["score"] > results[1]["score"]


def test_search_in_the_user_scope_never_returns_another_users_memories(world):
    _seed(world)

    results = search(world.acme.client, query="Bob prefers dark mode", user_id="alice").json()["results"]

    assert all(r["memory"]["user_id"] == "alice" for r in results)


def test_search_over_several_scopes_merges_them_by_score(world):
    _seed(world)

    response = search(
        world.acme.client, query="dark mode", scopes=["session", "user", "global"], session_id="s-1", k=10
    )

    scopes = {r["memory"]["scope"] for r in response.json()["results"]}
    assert scopes == {"session", "user", "global"}
    scores = [r["score"] for r in response.json()["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_with_min_score_drops_weak_matches(world):
    _seed(world)

    results = search(world.acme.client, query="prefers dark mode in the editor", user_id="alice", min_score=0.8)

    assert [r["memory"]["content"] for r in results.json()["results"]] == ["Alice prefers dark mode in the editor."]


def test_search_with_metadata_filter_returns_only_matching_memories(world):
    _seed(world)

    results = search(world.acme.client, query="dark mode", user_id="alice", metadata={"k": 2}).json()["results"]

    assert [r["memory"]["content"] for r in results] == ["Alice is allergic to peanuts."]


def test_search_by_vector_finds_the_memory_with_that_vector(world):
    vector = [0.0] * 384
    vector[3] = 1.0
    create(world.acme.client, scope="user", user_id="alice", content="marked", embedding=vector)
    create(world.acme.client, scope="user", user_id="alice", content="something else")

    results = search(world.acme.client, embedding=vector, user_id="alice", k=1).json()["results"]

    assert results[0]["memory"]["content"] == "marked" and results[0]["score"] > 0.999


def test_search_with_wrong_dimension_returns_400(world):
    response = search(world.acme.client, embedding=[0.5, 0.5], user_id="alice")

    assert response.status_code == 400


def test_search_with_both_query_and_vector_returns_400(world):
    response = search(world.acme.client, query="x", embedding=[0.1] * 384, user_id="alice")

    assert response.status_code == 400


def test_search_in_the_user_scope_without_a_user_returns_400(world):
    assert search(world.acme.client, query="x").status_code == 400


def test_search_in_the_session_scope_without_a_session_returns_400(world):
    assert search(world.acme.client, query="x", scopes=["session"], user_id="alice").status_code == 400


@override_settings(MEMORY_SEARCH_MAX_K=5)
def test_search_with_k_above_the_limit_returns_400(world):
    assert search(world.acme.client, query="x", user_id="alice", k=6).status_code == 400


def test_search_with_an_unknown_scope_returns_400(world):
    assert search(world.acme.client, query="x", user_id="alice", scopes=["team"]).status_code == 400
