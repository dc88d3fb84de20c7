"""A search's `query` asks the embedder only when there is something to rank: a store without an index config
drops it (LangGraph's InMemoryStore and PostgresStore ignore a query then), and the service answers a query
whose candidates carry no vector of its embedder unranked, newest first and without scores, as it answers no
query. So such a search neither costs an embedding nor fails while the embedder is down."""

from __future__ import annotations

import time
from typing import Any

import pytest
from agent_memory_client.store import AgentMemoryStore

from conftest import World
from memories_app.tests.conftest import FakeOpenAI, fake_openai  # noqa: F401 - the fixture

BATCH = "/api/v1/langgraph/store/batch"


@pytest.fixture
def embedder_down(fake_openai: FakeOpenAI) -> FakeOpenAI:  # noqa: F811
    fake_openai.failing_status = 503
    return fake_openai


def _put(world: World, namespace: list[str], key: str, index: list[str] | bool) -> None:
    op = {"op": "put", "namespace": namespace, "key": key, "value": {"text": f"about {key}"}, "index": index}
    response = world.acme.client.post(BATCH, {"ops": [op]}, format="json")
    assert response.status_code == 200, response.json()
    time.sleep(0.002)  # distinct updated_at: newest first is one order


def _search(world: World, **search: Any) -> list[tuple[str, Any]]:
    response = world.acme.client.post(BATCH, {"ops": [{"op": "search", **search}]}, format="json")
    assert response.status_code == 200, response.json()
    return [(item["key"], item["score"]) for item in response.json()["results"][0]]


def test_a_store_without_an_index_answers_a_query_newest_first_without_asking_the_embedder(
    in_process: dict[str, Any],
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    # The items carry vectors (another store, with an index config, put them): this one ignores the query all
    # the same, as PostgresStore without an index config does.
    indexed = AgentMemoryStore(api_key=world.acme.raw_key, index={"fields": ["text"]}, **in_process)
    for key in ("first", "second", "third"):
        indexed.put(("docs",), key, {"text": f"about {key}"})
        time.sleep(0.002)
    fake_openai.failing_status = 503
    puts = len(fake_openai.embeddings_calls())
    store = AgentMemoryStore(api_key=world.acme.raw_key, **in_process)

    found = store.search(("docs",), query="about second", limit=10)

    assert [(item.key, item.score) for item in found] == [("third", None), ("second", None), ("first", None)]
    assert len(fake_openai.embeddings_calls()) == puts


def test_a_query_whose_candidates_have_no_vectors_is_answered_newest_first_without_the_embedder(
    world: World, embedder_down: FakeOpenAI
) -> None:
    for key in ("old", "new"):
        _put(world, ["plain"], key, False)

    assert _search(world, namespace_prefix=["plain"], query="about old") == [("new", None), ("old", None)]
    assert embedder_down.embeddings_calls() == []


def test_a_query_ranks_with_the_embedder_only_where_a_candidate_has_a_vector(
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    _put(world, ["ranked"], "cats", ["text"])
    _put(world, ["ranked"], "dogs", ["text"])
    _put(world, ["plain"], "cats", False)
    _put(world, ["ranked"], "unindexed", False)
    puts = len(fake_openai.embeddings_calls())

    # Only unembedded items match the filter: nothing to rank, no embedding.
    unranked = _search(world, namespace_prefix=["ranked"], filter={"text": "about unindexed"}, query="about cats")
    plain = _search(world, namespace_prefix=["plain"], query="about cats")
    assert unranked == [("unindexed", None)] and plain == [("cats", None)]
    assert len(fake_openai.embeddings_calls()) == puts

    ranked = _search(world, namespace_prefix=["ranked"], query="about cats")
    assert [key for key, _ in ranked] == ["cats", "dogs", "unindexed"]
    assert ranked[0][1] is not None and ranked[2][1] is None
    assert len(fake_openai.embeddings_calls()) == puts + 1
