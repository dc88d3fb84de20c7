"""A store batch embeds its puts' indexed texts together, once, before it runs: a batch waiting on the embedder
holds no lock on the items it writes, and one run again after a deadlock pays for no text twice (a query's
vector, made when a run first finds something it ranks, is kept for the runs after it too)."""

from __future__ import annotations

import threading
from typing import Any

from django.db import connections

from conftest import World
from langgraph_app import store
from langgraph_app.models import StoreItem
from memories_app.tests.conftest import FakeOpenAI, fake_openai  # noqa: F401 - the fixture
from tests.langgraph.test_store_concurrent_batches import _deadlocking_writer

BATCH = "/api/v1/langgraph/store/batch"


def _indexed_put(key: str) -> store.Op:
    return store.Op(
        "put", {"namespace": ["shared"], "key": key, "value": {"text": f"text of {key}"}, "index": ["text"]}
    )


def _embedded(server: FakeOpenAI) -> list[list[str]]:
    return [call["body"]["input"] for call in server.embeddings_calls()]


def test_a_batch_run_again_after_a_deadlock_embeds_its_puts_texts_once_in_one_request(
    transactional_db: None,
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    with _deadlocking_writer(world) as errors:
        results = store.run_batch(tenant=world.acme.tenant, ops=[_indexed_put("b"), _indexed_put("a")])

    assert results == [None, None] and errors == []
    assert _embedded(fake_openai) == [["text of b", "text of a"]]
    assert {item.key: item.embedding is not None for item in StoreItem.objects.all()} == {"a": True, "b": True}


def test_a_batch_run_again_after_a_deadlock_embeds_a_query_its_first_run_embedded_once(
    transactional_db: None,
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    # The search runs before the put the deadlock stops, and ranks the item put before it: the first run embeds
    # the query, the second uses its vector.
    search = store.Op("search", {"namespace_prefix": ["shared"], "query": "b, please"})
    with _deadlocking_writer(world) as errors:
        results = store.run_batch(tenant=world.acme.tenant, ops=[_indexed_put("b"), search, _indexed_put("a")])

    assert errors == [] and results[1][0]["key"] == "b" and results[1][0]["score"] is not None
    assert _embedded(fake_openai) == [["text of b", "text of a"], ["b, please"]]


def test_a_batch_waiting_on_the_embedder_holds_no_lock_on_the_items_it_writes(
    transactional_db: None,
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    # While the embedder answers the batch, another batch writes the same items: it must not wait for it.
    other_done = threading.Event()
    other_errors: list[BaseException] = []

    def other_batch() -> None:
        try:
            ops = [store.Op("put", {"namespace": ["shared"], "key": key, "value": {"by": "other"}}) for key in "ab"]
            store.run_batch(tenant=world.acme.tenant, ops=ops)
            other_done.set()
        except BaseException as exc:
            other_errors.append(exc)
        finally:
            connections.close_all()

    written_meanwhile: list[bool] = []

    def answer_once_the_other_batch_is_done(answer: dict[str, Any]) -> dict[str, Any]:
        thread = threading.Thread(target=other_batch)
        thread.start()
        written_meanwhile.append(other_done.wait(3))  # (a guard: it takes milliseconds unless it waits on a lock)
        return answer

    fake_openai.tamper = answer_once_the_other_batch_is_done
    results = store.run_batch(tenant=world.acme.tenant, ops=[_indexed_put("a"), _indexed_put("b")])

    assert results == [None, None] and written_meanwhile == [True] and other_errors == []
    # The other batch committed first: this one's values are the items' last.
    assert {item.key: item.value for item in StoreItem.objects.all()} == {
        "a": {"text": "text of a"},
        "b": {"text": "text of b"},
    }


def test_a_batch_refused_for_an_unknown_filter_operator_asks_the_embedder_nothing(
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    search = {"op": "search", "namespace_prefix": ["shared"], "filter": {"n": {"$near": 1}}}
    put = {"op": "put", "namespace": ["shared"], "key": "a", "value": {"text": "text of a"}, "index": ["text"]}

    response = world.acme.client.post(BATCH, {"ops": [search, put]}, format="json")

    assert response.status_code == 400, response.json()
    assert fake_openai.embeddings_calls() == [] and not StoreItem.objects.exists()


def test_a_batch_whose_puts_the_embedder_cannot_embed_is_unavailable_and_stores_nothing(
    world: World,
    fake_openai: FakeOpenAI,  # noqa: F811
) -> None:
    fake_openai.failing_status = 503
    ops = [
        {"op": "put", "namespace": ["shared"], "key": "plain", "value": {"text": "not indexed"}, "index": False},
        {"op": "put", "namespace": ["shared"], "key": "a", "value": {"text": "text of a"}, "index": ["text"]},
    ]

    response = world.acme.client.post(BATCH, {"ops": ops}, format="json")

    assert response.status_code == 503, response.json()
    assert not StoreItem.objects.exists()
